"""Prefect server processes on this machine, found on the process table: the shared local servers that CLI runs
start (`videobert_cli.local_server`), and the temporary ones Prefect itself starts inside a process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import psutil

LOCAL_SERVER = "videobert_cli.local_server"
PREFECT_SERVER_APP = "prefect.server.api.server:create_app"


def _home(proc: psutil.Process, argv: list[str]) -> Path | None:
    """The Prefect home a server process serves: its --home argument, else its PREFECT_HOME variable."""
    if "--home" in argv:
        return Path(argv[argv.index("--home") + 1])
    with contextlib.suppress(psutil.Error):
        home = proc.environ().get("PREFECT_HOME")
        return Path(home) if home else None
    return None


def prefect_servers(under: Iterable[Path]) -> list[psutil.Process]:
    """Running Prefect server processes (ours or Prefect's own) whose Prefect home lies under one of `under`."""
    roots = [Path(r).resolve() for r in under]
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        argv = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE or not (LOCAL_SERVER in argv or PREFECT_SERVER_APP in argv):
            continue
        home = _home(proc, argv)
        if home is not None and any(home.resolve().is_relative_to(root) for root in roots):
            found.append(proc)
    return found


def stop_prefect_servers(under: Iterable[Path]) -> int:
    """Terminate (then kill) the server processes `prefect_servers` finds; returns how many there were."""
    procs = prefect_servers(under)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return len(procs)
