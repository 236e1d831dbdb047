"""The evaluation flow: zero-shot verb and object classification of a trained checkpoint on annotations in the
YouCook II format, scored against chance and a shuffled-video control; the scores and pictures are flow-run
artifacts. `dvc repro` runs the same through `videobert evaluate` (the `evaluate` stage)."""

from __future__ import annotations

import base64
from pathlib import Path

from prefect import flow, get_run_logger

from flows.summaries import EvaluationSummary
from tasks.evaluation import evaluate_task
from videobert.core.params import load_params


@flow(name="evaluate")
def evaluate_flow(checkpoint: str = "models/videobert", annotations: str | None = None,
                  tokens: str = "dataset/tokens.json", out: str = "eval", params_file: str = "params.yaml"
                  ) -> EvaluationSummary:
    """Zero-shot classification of `checkpoint` (a trained model folder) on `annotations` (YouCook II format;
    default: evaluate.annotations of the params file), for the videos of the `tokens` index; results in `out`."""
    params = load_params(params_file)
    annotations = annotations or params.evaluate.annotations
    metrics = evaluate_task(checkpoint, annotations, tokens, out, params_file)
    summary = EvaluationSummary(out=out, checkpoint=checkpoint, annotations=annotations, metrics=metrics)
    get_run_logger().info("zero-shot on %d segments: %s", metrics["segments"], summary.headline())
    _publish(summary)
    return summary


def _publish(summary: EvaluationSummary) -> None:
    """The scores beside chance and the control as a table, the pictures as markdown, for the Prefect UI."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(summary.rows(), key="zero-shot-scores",
                          description=f"{summary.checkpoint} on {summary.annotations}: "
                                      f"{summary.metrics['segments']} segments")
    parts = []
    for name in ("confusion_verbs.png", "confusion_objects.png", "text_to_video.png"):
        path = Path(summary.out) / name
        if path.exists():
            parts.append(f"### {name}\n\n![{name}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})")
    if parts:
        create_markdown_artifact("\n\n".join(parts), key="zero-shot-pictures", description="confusion and strips")
