"""One task run per video (`ingest.task_runs: video`): a stage that raises is counted with the stages before it and
after it, the task is retried only when its cause is, and a database outage still stops the run."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow, task

from flows.futures import run_per_video
from videobert.core.errors import DatabaseUnavailableError
from videobert.core.params import Params
from videobert.core.stages import DEFAULT_OPTIONS, StageResult
from videobert.ingest import video as video_mod
from videobert.ingest.download import NetworkError
from videobert.ingest.video import VideoStageError, run_video

UPSTREAM = {"transcript": "download", "punctuate": "transcript", "features": "download"}
STAGES = ["download", "transcript", "punctuate", "features"]


def _runners(monkeypatch: pytest.MonkeyPatch, transcript: Any) -> list[str]:
    """Stage bodies that record their calls: download done, transcript as given, the others done."""
    calls: list[str] = []

    def make(stage: str) -> Any:
        def run(rt: Any, video_id: str, params: Params, opts: Any) -> StageResult:
            calls.append(stage)
            if stage == "transcript" and transcript is not None:
                return transcript(video_id)
            return StageResult(video_id, stage, "done")
        return run

    monkeypatch.setattr(video_mod, "RUNNERS", {s: make(s) for s in STAGES})
    return calls


def test_a_failed_stage_leaves_its_dependents_not_run_and_the_others_run(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _runners(monkeypatch, lambda vid: StageResult(vid, "transcript", "failed", "MalformedSubtitleError"))
    results = run_video(None, "v1", STAGES, Params(), DEFAULT_OPTIONS, UPSTREAM)  # type: ignore[arg-type]
    assert [(r["stage"], r["status"]) for r in results] == [
        ("download", "done"), ("transcript", "failed"), ("punctuate", "not run"), ("features", "done")]
    assert calls == ["download", "transcript", "features"]


@pytest.mark.parametrize(("cause", "retryable"), [(NetworkError("503"), True),
                                                  (DatabaseUnavailableError("gone"), False)])
def test_a_stage_that_raises_carries_the_results_so_far(monkeypatch: pytest.MonkeyPatch, cause: Exception,
                                                        retryable: bool) -> None:
    def raise_(vid: str) -> StageResult:
        raise cause

    _runners(monkeypatch, raise_)
    with pytest.raises(VideoStageError) as raised:
        run_video(None, "v1", STAGES, Params(), DEFAULT_OPTIONS, UPSTREAM)  # type: ignore[arg-type]
    err = raised.value
    assert (err.stage, err.cause, err.remaining, err.retryable) == ("transcript", cause, ["punctuate", "features"],
                                                                    retryable)
    assert [r["stage"] for r in err.results] == ["download"]


@pytest.mark.usefixtures("prefect_api")
def test_the_scheduler_counts_each_stage_of_a_video_task_and_stops_on_a_database_outage() -> None:
    @task(persist_result=False)
    def video(video_id: str) -> list[dict[str, Any]]:
        done = [{"stage": "download", "status": "done", "reason": ""}]
        if video_id == "bad":
            raise VideoStageError(video_id, "transcript", DatabaseUnavailableError("gone"), done,
                                  ["punctuate", "features"])
        if video_id == "flaky":  # a transient error, the task's retries spent
            raise VideoStageError(video_id, "transcript", NetworkError("503"), done, ["punctuate", "features"])
        return [{"stage": s, "status": "done", "reason": ""} for s in STAGES]

    @flow(persist_result=False)
    def schedule() -> Any:
        try:
            return run_per_video({"ok": ["video"], "bad": ["video"]}, lambda vid, _: video.submit(vid), {}, 1, "t")
        except DatabaseUnavailableError as exc:
            return exc

    stopped = schedule()
    assert isinstance(stopped, DatabaseUnavailableError)  # the run stops, naming the outage

    @flow(persist_result=False)
    def counted() -> Any:
        return run_per_video({"ok": ["video"], "ok2": ["video"], "flaky": ["video"]},
                             lambda vid, _: video.submit(vid), {}, 2, "t")

    out = counted()
    # the stages, not the task's pseudo-stage; the one that raised failed, those after it not run
    assert dict(out.results) == {("download", "done"): 3, ("transcript", "done"): 2, ("transcript", "failed"): 1,
                                 ("punctuate", "done"): 2, ("punctuate", "not run"): 1, ("features", "done"): 2,
                                 ("features", "not run"): 1}
    assert dict(out.errors) == {("transcript", "NetworkError"): 1} and out.examples[("transcript", "NetworkError")] == "flaky"
