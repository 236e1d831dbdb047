"""Scheduling per-video task runs from a flow: bounded concurrency, upstream waiting, and their outcomes.

Every flow that runs per-video stages (ingest, tokens, and the ones to come) hands `run_per_video` its plan
(video id -> stages in order), how to submit one (video, stage), and which stage reads which; it gets back the
counts by stage and status and by error type. A flow body stays a short list of steps.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect.futures import PrefectFuture, as_completed

from flows.progress import reporter
from videobert.core.stages import NOT_RUN

log = logging.getLogger(__name__)

K = TypeVar("K")
# Errors that no other video can get past: once a stage fails with one, no new video is started, the ones in
# flight finish, and the run fails naming it (the next run, once the database is back, takes over what was left).
STOP_RUN_ERRORS = frozenset({"DatabaseUnavailableError"})


def next_finished(in_flight: dict[PrefectFuture[Any], K]) -> tuple[K, list[tuple[str | None, str, str | None]]]:
    """Wait for the first of `in_flight` to finish and remove it; returns its key and how its stages ended:
    (stage, status, the error type of a failure) for each, stage None standing for the key's own (a task of one
    stage). A task that ran several stages of one video (`ingest.task_runs: video`) returns their results, or
    raises with those that ended before the one that raised (`videobert.ingest.video.VideoStageError`)."""
    future = next(as_completed(list(in_flight)))
    key = in_flight.pop(future)
    outcome = future.result(raise_on_failure=False)
    if isinstance(outcome, dict):
        return key, [(None, outcome["status"], outcome["reason"] if outcome["status"] == "failed" else None)]
    if isinstance(outcome, list):
        return key, [_part(r) for r in outcome]
    if isinstance(outcome, BaseException) and hasattr(outcome, "stage"):
        cause = type(getattr(outcome, "cause", outcome)).__name__
        return key, ([_part(r) for r in outcome.results] + [(outcome.stage, "failed", cause)]
                     + [(stage, NOT_RUN, None) for stage in getattr(outcome, "remaining", [])])
    # the task raised: retries exhausted on a transient error, or a bug
    return key, [(None, "failed", type(outcome).__name__ if isinstance(outcome, BaseException) else "unknown")]


def _part(result: dict[str, Any]) -> tuple[str | None, str, str | None]:
    return result["stage"], result["status"], result["reason"] if result["status"] == "failed" else None


@dataclass
class Outcomes:
    """How the submitted (video, stage) pairs of one flow run ended."""

    results: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, status) -> count
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, error type) -> count
    examples: dict[tuple[str, str], str] = field(default_factory=dict)  # (stage, error type) -> first video id
    stopped_by: str | None = None  # an error of STOP_RUN_ERRORS that stopped the run early
    not_started: int = 0  # planned videos never started because the run stopped


def run_per_video(
    plan: Mapping[str, Sequence[str]],
    submit: Callable[[str, str], PrefectFuture[Any]],
    upstream: Mapping[str, str] | Callable[[str], Mapping[str, str]],
    concurrency: int,
    description: str,
) -> Outcomes:
    """Run every (video, stage) of `plan` with at most `concurrency` videos in flight; wait for the outcomes.

    A stage whose upstream stage (`upstream[stage]`, or `upstream(video id)[stage]` where the order differs per
    video) is in the same video's plan is submitted only once that stage is done or skipped, and is counted as
    "not run" when it failed. Progress goes to the installed reporter (the CLI's progress bar), one step per
    (video, stage).
    """
    out = Outcomes()
    queue = deque(plan.items())
    in_flight: dict[PrefectFuture[Any], tuple[str, str]] = {}
    remaining: Counter[str] = Counter()  # per video in flight: planned stages not finished yet
    waiting: dict[tuple[str, str], list[str]] = {}  # (video, stage) -> stages to submit once it succeeds
    progress = reporter()
    progress.start(total=sum(len(stages) for stages in plan.values()), description=description)

    def start_video(vid: str, stages: Sequence[str]) -> None:
        remaining[vid] = len(stages)
        for stage in stages:
            before = (upstream(vid) if callable(upstream) else upstream).get(stage)
            if before in stages:
                waiting.setdefault((vid, before), []).append(stage)
            else:
                in_flight[submit(vid, stage)] = (vid, stage)

    def finish(vid: str, stage: str, status: str, count: bool = True) -> None:
        if count:
            out.results[(stage, status)] += 1
        progress.advance(f"{stage} {vid}: {status}")
        remaining[vid] -= 1
        if remaining[vid] == 0:
            del remaining[vid]
        for child in waiting.pop((vid, stage), []):
            if status in {"done", "skipped"}:
                in_flight[submit(vid, child)] = (vid, child)
            else:
                finish(vid, child, NOT_RUN)

    try:
        while queue or in_flight:
            while queue and len(remaining) < concurrency and not out.stopped_by:
                start_video(*queue.popleft())
            if not in_flight:
                break
            (vid, stage), parts = next_finished(in_flight)
            for name, status, error_type in parts:
                name = name or stage
                if name != stage:  # one of several stages the task ran: counted here, the task below
                    out.results[(name, status)] += 1
                if error_type:
                    out.errors[(name, error_type)] += 1
                    out.examples.setdefault((name, error_type), vid)
                    if error_type in STOP_RUN_ERRORS and not out.stopped_by:
                        out.stopped_by = error_type
                        log.warning("%s (%s of %s): no new video is started; the %d in flight finish first",
                                    error_type, name, vid, len(remaining))
            own = [status for name, status, _ in parts if name is None]
            overall = "done" if all(s in ("done", "skipped") for _, s, _ in parts) else "failed"
            finish(vid, stage, own[0] if own else overall, count=bool(own))
    finally:
        progress.stop()
    if out.stopped_by:
        out.not_started = len(queue)
        from videobert.core.errors import DatabaseUnavailableError

        lost = sum(n for (_, error), n in out.errors.items() if error == out.stopped_by)
        raise DatabaseUnavailableError(
            f"the database went away during the run ({lost} stage runs could not be recorded, {out.not_started} "
            "planned videos not started): the run stopped; run the same command again once the database is back "
            "(it takes over what was left)")
    return out
