"""The training flow: VideoBERT pre-trained on a corpus version (its hash, the latest registered by default, or
a local corpus folder), with the loss curve and final metrics as flow-run artifacts.

`dvc repro` runs the same through the CLI (`videobert train`, the `train` stage of dvc.yaml).
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, get_run_logger

from flows.artifacts import publish_image, publish_table
from flows.inputs import effective_params, input_path, with_notes
from flows.progress import reporter
from flows.summaries import TrainSummary
from tasks.training import train_task
from videobert.core.params import ParamsOverride
from videobert.core.runtime import get_runtime
from videobert.training.run import TrainRequest


@flow(name="train", persist_result=True, result_serializer="json")
@with_notes
def train_flow(corpus: str | None = None, corpus_dir: str | None = None, out: str | None = None,
               params_file: str = "params.yaml", force: bool = False, stop_after_step: int | None = None,
               overrides: ParamsOverride = ParamsOverride()) -> TrainSummary:  # type: ignore[valid-type]
    """Pre-train VideoBERT on a corpus version; a stopped run started again resumes from its last checkpoint.

    Args:
        corpus: a corpus hash or a unique prefix of one (`videobert dataset corpus` prints it); empty: the latest
            registered corpus.
        corpus_dir: a local corpus folder instead of a registered version (e.g. dataset/corpus); BASE_NOTE.
        out: the final model folder; empty: the data folder's training/<run>/final; BASE_NOTE.
        params_file: PARAMS_FILE_NOTE
        force: train a finished run again, or take over a run another process holds.
        stop_after_step: stop after this optimizer step (the run stays resumable: start it again to go on);
            empty: train to train.max_steps.
        overrides: OVERRIDES_NOTE (the model and train sections make the training run's key).
    """
    from prefect.runtime import flow_run

    logger = get_run_logger()
    effective = effective_params(params_file, overrides, logger)
    params = effective.params
    get_runtime()  # settings and backends checked before the task starts
    if corpus_dir:
        corpus_dir = str(input_path(corpus_dir, "corpus folder", kind="folder"))
    if out:
        out = str(input_path(out, "model folder", must_exist=False))
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
        result = train_task(asdict(request), effective.params_file, progress, effective.overrides)
    finally:
        if shown["step"]:
            bar.stop()
    summary = TrainSummary(**result, params_file=effective.params_file, overrides=effective.overrides)
    logger.info("training run %s: %s after %d steps; %s", summary.run_key[:16], summary.status, summary.steps,
                ", ".join(f"{k} {v:.4g}" for k, v in summary.metrics.items()))
    _publish(summary)
    return summary


def _publish(summary: TrainSummary) -> None:
    """Final metrics as a table artifact and the loss curve as a markdown artifact, for the Prefect UI."""
    publish_table([{"figure": k, "value": round(v, 5)} for k, v in summary.metrics.items()], "training-metrics",
                  f"run {summary.run_key[:16]} ({summary.status}) on corpus {summary.corpus_hash[:16]}; model in "
                  f"{summary.out_dir}")
    if summary.loss_curve:
        publish_image(summary.loss_curve, "training-loss-curve", f"Loss curve of run {summary.run_key[:16]}")
