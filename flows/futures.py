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

log = logging.getLogger(__name__)

K = TypeVar("K")
NOT_RUN = "not run"  # a stage whose input stage failed in this run: no task run at all
# Errors that no other video can get past: once a stage fails with one, no new video is started, the ones in
# flight finish, and the run fails naming it (the next run, once the database is back, takes over what was left).
STOP_RUN_ERRORS = frozenset({"DatabaseUnavailableError"})


def next_finished(in_flight: dict[PrefectFuture[Any], K]) -> tuple[K, str, str | None]:
    """Wait for the first of `in_flight` to finish and remove it; returns its key, its status (a stage result's
    status, or "failed" when the task raised) and the error type of a failure."""
    future = next(as_completed(list(in_flight)))
    key = in_flight.pop(future)
    outcome = future.result(raise_on_failure=False)
    if isinstance(outcome, dict):
        return key, outcome["status"], outcome["reason"] if outcome["status"] == "failed" else None
    # the task raised: retries exhausted on a transient error, or a bug
    return key, "failed", type(outcome).__name__ if isinstance(outcome, BaseException) else "unknown"


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

    def finish(vid: str, stage: str, status: str) -> None:
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
            (vid, stage), status, error_type = next_finished(in_flight)
            if error_type:
                out.errors[(stage, error_type)] += 1
                out.examples.setdefault((stage, error_type), vid)
                if error_type in STOP_RUN_ERRORS and not out.stopped_by:
                    out.stopped_by = error_type
                    log.warning("%s (%s of %s): no new video is started; the %d in flight finish first",
                                error_type, stage, vid, len(remaining))
            finish(vid, stage, status)
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
