"""Shared pieces of the Prefect tasks: retry conditions and result conversion."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from videobert.stages import StageResult


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only errors that say they are retryable (network, 5xx, throttling); never permanent ones."""
    try:
        state.result(raise_on_failure=True)
    except Exception as exc:  # the task's own exception, re-raised by the state
        return bool(getattr(exc, "retryable", False))
    return False


def as_dict(result: StageResult) -> dict[str, Any]:
    """A StageResult as a plain dict (what tasks return to the flow)."""
    return asdict(result)
