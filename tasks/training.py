"""The training task: one training run, in this process or under torchrun (`train.nproc_per_node` > 1)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task

from tasks.common import TASK_OPTIONS, task_params
from videobert.core.runtime import get_runtime
from videobert.training.run import TrainRequest, train, train_distributed
from videobert.training.store import Progress


@task(name="train", **TASK_OPTIONS)
def train_task(request: dict[str, Any], params_file: str | None, progress: Progress | None = None,
               overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or resume, or skip when done) the run of `request` with the params file's values and `overrides`
    ("section.key" -> value); returns its TrainResult as a dict."""
    from prefect import get_run_logger

    logger = get_run_logger()
    params = task_params(params_file, overrides)
    req = TrainRequest(**request)
    processes = params.train.nproc_per_node
    if processes > 1:
        logger.info("training in %d processes under torchrun (DDP)", processes)
        return asdict(train_distributed(params, req, processes))

    def report(step: int, total: int, logs: dict[str, float]) -> None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items() if k.endswith(("loss", "accuracy")))
        logger.info("step %d/%d: %s", step, total, shown)
        if progress is not None:
            progress(step, total, logs)

    return asdict(train(get_runtime(), params, req, progress=report))
