"""What a person who has only the Prefect UI sees of a run: its artifacts, its logs and its result."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from flows.artifacts import SKIPPED_PREFIX, artifact_key, summary_rows
from flows.ingest import IngestRequest, ingest
from flows.summaries import IngestSummary
from tests.conftest import Project
from tests.flows.prefect_api import flow_run_artifacts, flow_run_logs
from tests.helpers.media import make_video
from videobert.core.errors import SettingsError
from videobert.db import repository as repo

pytestmark = pytest.mark.usefixtures("prefect_api")

BASELINE = "features:\n  extractor: baseline\n"


def _videos(folder: Path) -> Path:
    make_video(folder / "alpha.mp4", seconds=2)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    return folder


def test_artifact_keys_are_valid() -> None:
    assert artifact_key("ingest", "summary") == "ingest-summary"
    assert artifact_key("Zero_Shot scores") == "zero-shot-scores"
    with pytest.raises(ValueError):
        artifact_key("__")


def test_an_ingest_run_publishes_its_summary_and_errors(project: Project) -> None:
    videos = _videos(project.root / "videos")
    params = project.write_params(BASELINE)
    s1 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    assert s1.top_errors and s1.top_errors[0].example_video == "corrupt"

    arts = flow_run_artifacts(s1.flow_run_id)
    rows = arts["ingest-summary"]
    assert rows == summary_rows(s1)
    assert {"stage": "download", "status": "failed", "count": 1} in rows
    assert {"stage": "features", "status": "not run", "count": 1} in rows
    errors = arts["ingest-errors"]
    assert "| download | CorruptVideoError | 1 | corrupt |" in errors

    # the plan and the outcome are in the run's logs at INFO (the UI's Logs tab), with the params file used
    logs = flow_run_logs(s1.flow_run_id, contains="ingest finished")
    info = [m for level, m in logs if level == logging.INFO]
    assert any(m.startswith("plan: ") for m in info) and any(m.startswith("ingest finished: ") for m in info)
    assert any(m.startswith(f"params: {params.resolve()}") for m in info), info
    # the result is persisted: the API's state of the run gives the summary back
    assert IngestSummary.model_validate(_api_result(s1.flow_run_id)) == s1

    s2 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    rows2 = flow_run_artifacts(s2.flow_run_id)["ingest-summary"]
    assert {"stage": "download", "status": SKIPPED_PREFIX + "up to date", "count": 1} in rows2
    assert {"stage": "download", "status": SKIPPED_PREFIX + "failed permanently", "count": 1} in rows2
    assert "No stage failed" in flow_run_artifacts(s2.flow_run_id)["ingest-errors"]

    # an override of a features value re-runs the features stage only, and is recorded with the run
    s3 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params),
                overrides={"features": {"fps": 10}})
    assert s3.submitted == {"download": 0, "transcript": 0, "punctuate": 0, "features": 1}
    assert s3.results == {"features": {"done": 1}} and s3.overrides == {"features.fps": 10.0}
    assert any("overridden: {'features.fps': 10.0}" in m for _, m in flow_run_logs(s3.flow_run_id, "overridden"))
    s4 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params),
                overrides={"features": {"fps": 10}})
    assert sum(s4.submitted.values()) == 0
    # a transcript value: the transcript stage (and the punctuation that waits on it), not download or features
    s5 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params),
                overrides={"features": {"fps": 10}, "transcript": {"languages": ["de", "en"]}})
    assert s5.submitted == {"download": 0, "transcript": 2, "punctuate": 2, "features": 0}


def _api_result(flow_run_id: str) -> dict:
    """The persisted result of a flow run, read through the API's record of its final state (JSON: a dict)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    assert state is not None and state.is_completed()
    return state.result()


def test_typed_youtube_ids_are_registered_and_bad_ones_refused(project: Project) -> None:
    summary = ingest(request=IngestRequest(youtube=["dQw4w9WgXcQ", "https://youtu.be/jNQXAC9IVRw?t=3"], stages=[]))
    assert summary.videos == 2 and summary.new_videos == 2
    # no params.yaml in the working folder: the paper's defaults, and the run's log says so, with the full path
    assert summary.params_file is None
    expected = f"params: the paper's built-in defaults (no {Path.cwd() / 'params.yaml'})"
    assert any(m.startswith(expected) for _, m in flow_run_logs(summary.flow_run_id, expected))
    videos = repo.get_videos(project.runtime().db, ["dQw4w9WgXcQ", "jNQXAC9IVRw"])
    assert {v.url for v in videos.values()} == {"https://www.youtube.com/watch?v=dQw4w9WgXcQ",
                                                 "https://www.youtube.com/watch?v=jNQXAC9IVRw"}
    with pytest.raises(ValueError, match=r"youtube\[1\]: not a YouTube video id or an http\(s\) URL: 'not an id'"):
        IngestRequest(youtube=["dQw4w9WgXcQ", "not an id"])


def test_wrong_form_values_are_refused_with_a_clear_message(project: Project) -> None:
    state = ingest(overrides={"features": {"extractor": "s4d"}}, return_state=True)
    assert state.is_failed() and "overrides.features.extractor: Input should be 's3d', 'i3d', 'efficientnet' or 'baseline'" in state.message
    state = ingest(request={"stages": ["downlaod"]}, return_state=True)
    assert state.is_failed() and "request.stages.0: Input should be 'download'" in state.message, state.message
    # a relative path: the error names the absolute path and the folder it resolved against
    for kwargs in ({"request": IngestRequest(ids_file="ids.txt")}, {"params_file": "custom.yaml"}):
        state = ingest(**kwargs, return_state=True)
        with pytest.raises(SettingsError) as err:
            state.result()
        assert f"{Path.cwd()}/" in str(err.value) and "relative paths resolve against" in str(err.value), err.value
