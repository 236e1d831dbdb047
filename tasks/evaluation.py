"""The evaluation task: zero-shot action classification of a checkpoint on annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from tasks.common import TASK_OPTIONS, task_params
from videobert.core.runtime import get_runtime
from videobert.evaluation.zero_shot import evaluate


@task(name="zero-shot", **TASK_OPTIONS)
def evaluate_task(checkpoint: str, annotations: str, tokens: str, out: str, params_file: str | None,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score `checkpoint` on `annotations` (videos labelled in the `tokens` index) with the params file's
    values and `overrides` ("section.key" -> value); returns the metrics."""
    params = task_params(params_file, overrides)
    return evaluate(get_runtime(), Path(checkpoint), Path(annotations), Path(tokens), params.evaluate, Path(out))
