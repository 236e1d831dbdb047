"""What every Prefect task of the pipeline shares: its options, its retry policy, and result conversion.

Retries are the orchestrator's: a task is retried only when its error says it is retryable (network, 5xx,
throttling, a store or database that went away), with exponential backoff; permanent errors are recorded once.
The retry counts and first delays of the download and transcript stages come from `params.yaml`; the
others are here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from videobert.core.errors import DatabaseUnavailableError
from videobert.core.params import Params, apply_override, load_params, override_from_items
from videobert.core.stages import StageResult


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only errors that say they are retryable (network, 5xx, throttling); never permanent ones, nor a
    database that went away: the flow stops on it (`flows.futures.STOP_RUN_ERRORS`) and the next run takes over,
    instead of minutes of backoff for every stage in flight."""
    try:
        state.result(raise_on_failure=True)
    except DatabaseUnavailableError:
        return False
    except Exception as exc:  # the task's own exception, re-raised by the state
        return bool(getattr(exc, "retryable", False))
    return False


# The database decides what runs (fingerprints), not Prefect's cache; results go back to the flow in memory.
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False,
                                "retry_condition_fn": retry_if_transient}

# (retries, first delay in seconds) of the stages whose retries are not in params.yaml
PUNCTUATE_RETRIES = (1, 5.0)
FEATURES_RETRIES = (1, 10.0)
TOKENS_RETRIES = (2, 5.0)


def backoff(retries: int, first_s: float) -> dict[str, Any]:
    """Task options for `retries` retries, the first after `first_s` seconds, each next one twice as late."""
    return {"retries": retries, "retry_delay_seconds": [first_s * 2**i for i in range(max(retries, 1))]}


def as_dict(result: StageResult) -> dict[str, Any]:
    """A StageResult as a plain dict (what tasks return to the flow)."""
    return asdict(result)


def task_params(params_file: str | None, overrides: dict[str, Any] | None = None) -> Params:
    """A run's effective params in a task: the params file's values with the flow's `overrides` ("section.key" ->
    value, as `flows.inputs.effective_params` recorded them) applied."""
    return apply_override(load_params(params_file), override_from_items(overrides or {}))
