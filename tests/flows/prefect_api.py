"""Reading task runs back from the Prefect server; stopping the Prefect processes a test started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from uuid import UUID


def task_run_names(flow_run_id: str, expected: int, settle_s: float = 1.5, timeout_s: float = 30.0) -> list[str]:
    """Names of the task runs of a flow run, once the server has recorded `expected` of them (or timed out).

    Prefect records task runs from events, a little after they happen: wait for the expected count, then a
    little more to make sure no further ones arrive.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    names: list[str] = []
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
            names = sorted(r.name for r in runs)
            if len(names) >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        time.sleep(settle_s)
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
        return sorted(r.name for r in runs)


def flow_run_artifacts(flow_run_id: str) -> dict[str, object]:
    """The artifacts of a flow run by key: a table's rows (parsed), a markdown artifact's text."""
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
    return {a.key: json.loads(a.data) if a.type == "table" else a.data for a in found if a.key}


def flow_run_logs(flow_run_id: str, contains: str = "", timeout_s: float = 30.0) -> list[tuple[int, str]]:
    """(level, message) of a flow run's logs on the server, once one holds `contains` (logs are sent in batches)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])))
            found = [(log.level, log.message) for log in logs]
            if any(contains in m for _, m in found) or time.monotonic() > deadline:
                return found
            time.sleep(0.3)


def stop_session(proc: subprocess.Popen[str]) -> str:
    """Stop a process started in its own session and what it started, politely first; the end of its output."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue
    out = proc.stdout.read() if proc.stdout else ""
    return out[-3000:]
