"""What a person who has only the Prefect UI sees of a run: its artifacts, its logs and its result."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.artifacts import SKIPPED_PREFIX, artifact_key, summary_rows
from flows.ingest import IngestRequest, ingest
from tests.conftest import Project
from tests.flows.prefect_api import flow_run_artifacts
from tests.helpers.media import make_video

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

    s2 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    rows2 = flow_run_artifacts(s2.flow_run_id)["ingest-summary"]
    assert {"stage": "download", "status": SKIPPED_PREFIX + "up to date", "count": 1} in rows2
    assert {"stage": "download", "status": SKIPPED_PREFIX + "failed permanently", "count": 1} in rows2
    assert "No stage failed" in flow_run_artifacts(s2.flow_run_id)["ingest-errors"]
