"""One video's planned ingest stages run in order in one call: the body of a task run per video
(`ingest.task_runs: video`), for runs at a scale where one Prefect task run per (video, stage) costs more than the
stages themselves (docs/SCALING.md). The database still records every (video, stage) as its own row and claim."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from videobert.core.errors import DatabaseUnavailableError, VideobertError
from videobert.core.params import Params
from videobert.core.runtime import Runtime
from videobert.core.stages import NOT_RUN, StageOptions, StageResult
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download, run_punctuate, run_transcript

RUNNERS: dict[str, Callable[[Runtime, str, Params, StageOptions], StageResult]] = {
    "download": run_download, "transcript": run_transcript, "punctuate": run_punctuate, "features": run_features}


class VideoStageError(VideobertError):
    """A stage of a video's task run raised (a transient error, recorded on its row): the stages before it and
    the one that raised, so that the flow counts each; retryable like its cause, so that the orchestrator runs
    the video's task again (the stages already done are then skipped as up to date)."""

    def __init__(self, video_id: str, stage: str, cause: BaseException, results: list[dict[str, Any]],
                 remaining: list[str]) -> None:
        super().__init__(f"video {video_id}, stage {stage}: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.cause = cause
        self.results = results  # the stages that ended before it, as dicts
        self.remaining = remaining  # the planned stages after it, not attempted
        self.retryable = bool(getattr(cause, "retryable", False)) and not isinstance(cause, DatabaseUnavailableError)


def run_video(rt: Runtime, video_id: str, stages: Sequence[str], params: Params, opts: StageOptions,
              upstream: Mapping[str, str]) -> list[dict[str, Any]]:
    """Run `stages` of one video in order; a stage whose upstream stage (`upstream[stage]`) did not end done or
    skipped is not attempted (NOT_RUN). Returns every stage's result as a dict; a stage that raises (transient,
    with `opts.raise_retryable`) raises VideoStageError with the results so far."""
    results: list[dict[str, Any]] = []
    ended: dict[str, str] = {}
    for i, stage in enumerate(stages):
        before = upstream.get(stage)
        if before in ended and ended[before] not in ("done", "skipped"):
            result = StageResult(video_id, stage, NOT_RUN, before)
        else:
            try:
                result = RUNNERS[stage](rt, video_id, params, opts)
            except Exception as exc:  # recorded on the stage's row by the stage itself
                raise VideoStageError(video_id, stage, exc, results, list(stages[i + 1:])) from exc
        ended[stage] = result.status
        results.append(asdict(result))
    return results
