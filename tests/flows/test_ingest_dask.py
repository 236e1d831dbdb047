"""The ingest flow's per-video stages on a local Dask cluster (the flow parameter `task_runner`)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from flows.ingest import IngestRequest, ingest
from flows.task_runners import StageRunner
from tests.conftest import Project
from tests.flows.prefect_api import task_run_names
from tests.helpers.media import make_video
from videobert.db.models import StageRun

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_ingest_on_a_local_dask_cluster_of_two_processes(project: Project) -> None:
    videos = project.root / "videos"
    for name in ("alpha", "bravo"):
        make_video(videos / f"{name}.mp4", seconds=2)
    params = project.write_params("features:\n  extractor: baseline\n")
    request = IngestRequest(local_dir=str(videos), concurrency=2)  # two videos in flight: two Dask processes
    summary = ingest(request=request, params_file=str(params), task_runner=StageRunner.dask)

    stages = ("download", "transcript", "punctuate", "features")
    assert summary.results == {stage: {"done": 2} for stage in stages}
    assert sorted(task_run_names(summary.flow_run_id, 8)) == sorted(f"{s}-{v}" for s in stages for v in ("alpha", "bravo"))
    with project.runtime().db.session() as session:
        owners = set(session.scalars(select(StageRun.claimed_by)))  # host:pid:start of the process that ran it
    pids = {int(owner.split(":")[1]) for owner in owners}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2, owners  # in the cluster's processes, not the flow's
