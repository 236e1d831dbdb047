"""The captioning tasks: train and decode one row (VideoBERT features, or clip features alone), then score the
rows together."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import task

from tasks.common import TASK_OPTIONS
from videobert.captioning.run import CaptionRequest, Progress, RowResult, score_rows, train_row
from videobert.core.params import load_params
from videobert.core.runtime import get_runtime


@task(name="train-captioner", **TASK_OPTIONS)
def train_captioner_task(request: dict[str, Any], inputs: str, params_file: str | None,
                         progress: Progress | None = None) -> dict[str, Any]:
    """Train the captioner of one row and decode the scored split; returns its RowResult as a dict."""
    return asdict(train_row(get_runtime(), load_params(params_file).caption, CaptionRequest(**request), inputs,
                            progress))


@task(name="score-captions", **TASK_OPTIONS)
def score_captions_task(out: str, rows: list[dict[str, Any]], params_file: str | None) -> dict[str, Any]:
    """BLEU, METEOR, ROUGE-L and CIDEr of every row's predictions; returns metrics.json's document."""
    return score_rows(get_runtime(), load_params(params_file).caption, Path(out), [RowResult(**r) for r in rows])
