"""Waiting on the task runs a flow keeps in flight."""

from __future__ import annotations

from typing import Any, TypeVar

from prefect.futures import PrefectFuture, as_completed

K = TypeVar("K")


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
