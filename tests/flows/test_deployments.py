"""The deployments users start from the Prefect UI."""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
import time

import pytest
from prefect.utilities.callables import parameter_schema

from flows.deployments import build_deployments, deployed_flows
from flows.ingest import ingest
from tests.conftest import Project
from tests.flows.prefect_api import flow_run_artifacts, flow_run_logs, stop_session
from tests.helpers.media import make_video
from videobert.core.params import Params, load_params
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
    assert set(schema["properties"]) == {"request", "params_file", "overrides", "task_runner"}
    assert schema["properties"]["task_runner"]["default"] == "threads"  # a choice per run: threads or Dask
    assert schema["definitions"]["StageRunner"]["enum"] == ["threads", "dask"]
    request = schema["definitions"]["IngestRequest"]["properties"]
    assert {"youtube", "ids_file", "howto100m_csv", "local_dir", "limit", "concurrency", "retry_error_type",
            "force"} <= set(request)
    assert request["limit"]["anyOf"][0]["minimum"] == 1
    assert request["stages"]["items"]["enum"] == ["download", "transcript", "punctuate", "features"]  # a picker
    assert "relative path resolves against the working folder" in request["local_dir"]["description"]


@pytest.mark.parametrize("fn", [d[0] for d in deployed_flows()], ids=lambda f: f.name)
def test_every_form_field_says_what_it_is_and_has_a_default(fn) -> None:  # noqa: ANN001
    schema = parameter_schema(fn).model_dump()
    assert set(schema["properties"]) == set(inspect.signature(fn.fn).parameters)
    assert not schema.get("required")
    for name, prop in schema["properties"].items():
        assert prop.get("description") and "default" in prop, (fn.name, name, prop)
    for model, definition in schema.get("definitions", {}).items():
        if "enum" in definition:  # a choice (e.g. StageRunner): a picker, described where it is used
            continue
        for name, prop in definition["properties"].items():
            assert prop.get("description"), (model, name)
            assert "default" in prop or "$ref" in prop, (model, name)  # a section: its fields' defaults
    if "params_file" in schema["properties"]:
        assert "relative path resolves against" in schema["properties"]["params_file"]["description"]
    if fn.name == "tokens":
        return  # reads no params.yaml value
    # every params.yaml value can be overridden from the form, with its choices as a picker
    assert "overrides" in schema["properties"], fn.name
    assert set(schema["definitions"]["ParamsOverride"]["properties"]) == set(Params.model_fields)
    extractor = schema["definitions"]["FeaturesOverride"]["properties"]["extractor"]
    assert extractor["anyOf"][0]["enum"] == ["s3d", "i3d", "efficientnet", "baseline"]


def _wait(client, flow_run_id, proc: subprocess.Popen[str], deadline: float):  # noqa: ANN001, ANN202
    """The final state of a flow run the serving process runs."""
    while True:
        state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_final():
            return state
        assert proc.poll() is None, stop_session(proc)
        assert time.monotonic() < deadline, f"flow run still {state and state.name}"
        time.sleep(0.5)


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

    # two videos for a served ingest run, in a folder the form names relative to the serving process's folder
    make_video(project.root / "served" / "alpha.mp4", seconds=2)
    make_video(project.root / "served" / "bravo.mp4", seconds=2)
    env = {**os.environ, "VIDEOBERT_PREFECT_API_URL": prefect_api, "VIDEOBERT_DATA_DIR": str(project.data),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    for name in ("PREFECT_LOGGING_LEVEL", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"):  # `videobert`'s own defaults
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "videobert_cli.cli", "serve"], cwd=project.root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while True:  # registered
                deployments = {d.name: d for d in client.read_deployments() if "videobert" in (d.tags or [])}
                if sorted(deployments) == FLOWS:
                    break
                assert proc.poll() is None, stop_session(proc)
                assert time.monotonic() < deadline, f"deployments registered: {sorted(deployments)}"
                time.sleep(0.5)
            # started from the API with the form's defaults, as a user does from the UI
            flow_run = client.create_flow_run_from_deployment(deployments["manifest"].id)
            state = _wait(client, flow_run.id, proc, deadline)
            assert state.is_completed(), (state, stop_session(proc))
            # the ingest form filled in: a relative folder, a params.yaml value overridden
            ingest_run = client.create_flow_run_from_deployment(deployments["ingest"].id, parameters={
                "request": {"local_dir": "served", "stages": ["download", "features"]},
                "overrides": {"features": {"fps": 10}}})
            ingest_state = _wait(client, ingest_run.id, proc, time.monotonic() + 120)
            assert ingest_state.is_completed(), (ingest_state, stop_session(proc))
            result = ingest_state.result()  # persisted: read back through the API's record of the state
            # the run's logs, sent in batches: read while the serving process lives
            logs = [m for level, m in flow_run_logs(str(ingest_run.id), "ingest finished") if level == logging.INFO]
    finally:
        console = stop_session(proc)
    assert proc.poll() is not None  # the serving process is gone
    assert result["results"] == {"download": {"done": 2}, "features": {"done": 2}}
    assert result["overrides"] == {"features.fps": 10.0} and result["params_file"] == str(params_file)
    assert flow_run_artifacts(str(ingest_run.id))["ingest-summary"] == [
        {"stage": "download", "status": "done", "count": 2}, {"stage": "features", "status": "done", "count": 2}]
    # the plan and the outcome in the run's logs at INFO, not on the serving process's console
    assert any(m.startswith("plan: ") for m in logs) and any(m.startswith("ingest finished: ") for m in logs), logs
    assert "plan: " not in console and "ingest finished" not in console, console
    manifest = json.loads((project.root / "dataset" / "manifest.json").read_text())  # in the worker's folder
    assert [v["id"] for v in manifest["videos"]] == ["clip"]
