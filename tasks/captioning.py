"""The captioning tasks: train and decode one row (VideoBERT features, or clip features alone), then score the
rows together."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import task

from tasks.common import TASK_OPTIONS, task_params
from videobert.captioning.run import CaptionRequest, Progress, RowResult, score_rows, train_row
from videobert.core.runtime import get_runtime


@task(name="train-captioner", **TASK_OPTIONS)
def train_captioner_task(request: dict[str, Any], inputs: str, params_file: str | None,
                         progress: Progress | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the captioner of one row and decode the scored split, with the params file's values and `overrides`
    ("section.key" -> value); returns its RowResult as a dict."""
    return asdict(train_row(get_runtime(), task_params(params_file, overrides).caption, CaptionRequest(**request), inputs,
                            progress))


@task(name="score-captions", **TASK_OPTIONS)
def score_captions_task(out: str, rows: list[dict[str, Any]], params_file: str | None,
                        overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """BLEU, METEOR, ROUGE-L and CIDEr of every row's predictions; returns metrics.json's document."""
    return score_rows(get_runtime(), task_params(params_file, overrides).caption, Path(out),
                      [RowResult(**r) for r in rows])

