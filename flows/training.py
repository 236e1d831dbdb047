"""The training flow: VideoBERT pre-trained on a corpus version (its hash, the latest registered by default, or
a local corpus folder), with the loss curve and final metrics as flow-run artifacts.

`dvc repro` runs the same through the CLI (`videobert train`, the `train` stage of dvc.yaml).
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger

from flows.progress import reporter
from flows.summaries import TrainSummary
from tasks.training import train_task
from videobert.core.params import load_params
from videobert.core.runtime import get_runtime
from videobert.training.run import TrainRequest


@flow(name="train")
def train_flow(corpus: str | None = None, corpus_dir: str | None = None, out: str | None = None,
               params_file: str = "params.yaml", force: bool = False,
               stop_after_step: int | None = None) -> TrainSummary:
    """Pre-train VideoBERT on a corpus version.

    corpus: a corpus hash or a unique prefix of one (default: the latest registered); corpus_dir: a local corpus
    folder instead (dataset/corpus); out: the final model folder (default: under the data folder's training/);
    force: train a finished run again, or take over a run another process holds; stop_after_step: stop early
    (the run stays resumable: start it again to go on).
    """
    from prefect.runtime import flow_run

    logger = get_run_logger()
    params = load_params(params_file)
    get_runtime()  # settings and backends checked before the task starts
    logger.info("training on corpus %s: %d steps of %d examples, lr %g", corpus_dir or corpus or "(latest)",
                params.train.max_steps, params.train.batch_size, params.train.learning_rate)
    request = TrainRequest(corpus=corpus, corpus_dir=corpus_dir, out_dir=out, force=force,
                           stop_after_step=stop_after_step, flow_run_id=str(flow_run.id) if flow_run.id else None)
    bar = reporter()
    shown = {"step": 0}

    def progress(step: int, total: int, logs: dict[str, float]) -> None:
        if shown["step"] == 0:
            bar.start(total, "train")
        for _ in range(step - shown["step"]):
            bar.advance(", ".join(f"{k} {v:.3g}" for k, v in logs.items() if k.endswith("loss")))
        shown["step"] = step

    try:
        result = train_task(asdict(request), params_file, progress)
    finally:
        if shown["step"]:
            bar.stop()
    summary = TrainSummary(**result)
    logger.info("training run %s: %s after %d steps; %s", summary.run_key[:16], summary.status, summary.steps,
                ", ".join(f"{k} {v:.4g}" for k, v in summary.metrics.items()))
    _publish(summary)
    return summary


def _publish(summary: TrainSummary) -> None:
    """Final metrics as a table artifact and the loss curve as a markdown artifact, for the Prefect UI."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact([{"figure": k, "value": round(v, 5)} for k, v in summary.metrics.items()],
                          key="training-metrics",
                          description=f"run {summary.run_key[:16]} ({summary.status}) on corpus "
                                      f"{summary.corpus_hash[:16]}; model in {summary.out_dir}")
    if summary.loss_curve and Path(summary.loss_curve).exists():
        png = base64.b64encode(Path(summary.loss_curve).read_bytes()).decode()
        create_markdown_artifact(f"## Loss curve of run {summary.run_key[:16]}\n\n"
                                 f"![loss curve](data:image/png;base64,{png})\n\n{summary.loss_curve}",
                                 key="training-loss-curve", description="training and validation loss")
