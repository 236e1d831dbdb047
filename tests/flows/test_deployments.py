"""The deployments users start from the Prefect UI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from prefect.utilities.callables import parameter_schema

from flows.deployments import build_deployments
from flows.ingest import ingest
from tests.conftest import Project
from tests.helpers.media import make_video
from videobert.core.params import load_params
from videobert.db import repository as repo
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download

FLOWS = ["caption", "codebook", "corpus", "dataset", "evaluate", "ingest", "manifest", "tokens", "train"]


def test_every_flow_has_a_deployment() -> None:
    deployments = {d.name: d for d in build_deployments(limit=2)}
    assert sorted(deployments) == FLOWS
    assert deployments["ingest"].entrypoint == "flows/ingest.py:ingest"
    assert all("videobert" in d.tags and d.concurrency_limit == 2 for d in deployments.values())


def test_ingest_parameters_become_a_form() -> None:
    """Prefect builds the UI form from this schema: the request model's fields appear in it."""
    schema = parameter_schema(ingest).model_dump()
    assert set(schema["properties"]) == {"request", "params_file"}
    request = schema["definitions"]["IngestRequest"]["properties"]
    assert {"ids_file", "howto100m_csv", "local_dir", "limit", "concurrency", "retry_error_type", "force"} <= set(request)
    assert request["limit"]["anyOf"][0]["minimum"] == 1


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop the serving process and what it started (its own session), politely first; its output."""
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


def test_serve_registers_every_deployment_and_runs_a_flow_run_started_through_the_api(
    project: Project, prefect_api: str
) -> None:
    from prefect.client.orchestration import get_client

    # a video with features, for the served manifest flow to list
    params_file = project.write_params("features:\n  extractor: baseline\n")
    rt = project.runtime()
    src = make_video(project.root / "clip.mp4", seconds=2)
    repo.register_videos(rt.db, [repo.NewVideo("clip", "local", str(src))])
    for run in (run_download, run_features):
        assert run(rt, "clip", load_params(params_file)).status == "done"

    env = {**os.environ, "VIDEOBERT_PREFECT_API_URL": prefect_api, "VIDEOBERT_DATA_DIR": str(project.data),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "videobert_cli.cli", "serve"], cwd=project.root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while True:  # registered
                deployments = {d.name: d for d in client.read_deployments() if "videobert" in (d.tags or [])}
                if sorted(deployments) == FLOWS:
                    break
                assert proc.poll() is None, _stop(proc)
                assert time.monotonic() < deadline, f"deployments registered: {sorted(deployments)}"
                time.sleep(0.5)
            # started from the API with the form's defaults, as a user does from the UI
            flow_run = client.create_flow_run_from_deployment(deployments["manifest"].id)
            while True:
                state = client.read_flow_run(flow_run.id).state
                if state is not None and state.is_final():
                    break
                assert proc.poll() is None, _stop(proc)
                assert time.monotonic() < deadline, f"flow run still {state and state.name}"
                time.sleep(0.5)
        assert state.is_completed(), (state, _stop(proc))
    finally:
        _stop(proc)
    assert proc.poll() is not None  # the serving process is gone
    manifest = json.loads((project.root / "dataset" / "manifest.json").read_text())  # in the worker's folder
    assert [v["id"] for v in manifest["videos"]] == ["clip"]
