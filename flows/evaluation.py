"""The evaluation flow: zero-shot verb and object classification of a trained checkpoint on annotations in the
YouCook II format, scored against chance and a shuffled-video control; the scores and pictures are flow-run
artifacts. `dvc repro` runs the same through `videobert evaluate` (the `evaluate` stage)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.artifacts import publish_image, publish_table
from flows.inputs import effective_params, input_path, with_notes
from flows.summaries import EvaluationSummary
from tasks.evaluation import evaluate_task
from videobert.core.params import ParamsOverride
from videobert.core.runtime import get_runtime
from videobert.dataset import registry
from videobert.training.run import resolve_model


@flow(name="evaluate", persist_result=True, result_serializer="json")
@with_notes
def evaluate_flow(checkpoint: str = "", annotations: str | None = None,
                  tokens: str = "", out: str = "eval", params_file: str = "params.yaml",
                  overrides: ParamsOverride = ParamsOverride()) -> EvaluationSummary:  # type: ignore[valid-type]
    """Zero-shot classification of a trained checkpoint on annotated segments, against chance and a shuffled
    control.

    Args:
        checkpoint: MODEL_NOTE.
        annotations: annotations in the YouCook II format; empty: evaluate.annotations of the params file (after
            the overrides); BASE_NOTE.
        tokens: TOKENS_INDEX_NOTE.
        out: the folder for metrics.json, segments.jsonl and the pictures; BASE_NOTE.
        params_file: PARAMS_FILE_NOTE
        overrides: OVERRIDES_NOTE (the evaluate section is read here).
    """
    logger = get_run_logger()
    effective = effective_params(params_file, overrides, logger)
    rt = get_runtime()
    ckpt, ckpt_source = resolve_model(rt, checkpoint)
    notes = input_path(annotations or effective.params.evaluate.annotations, "annotation file")
    tok = registry.resolve_index(rt, registry.TOKENS_INDEX, tokens)
    index = registry.local_file(rt, tok)
    logger.info("evaluating %s on %s with tokens index %s (%s)", ckpt_source, notes, tok.content_hash[:16], tok.source)
    folder = input_path(out, "output folder", must_exist=False)
    metrics = evaluate_task(str(ckpt), str(notes), str(index), str(folder), effective.params_file,
                            effective.overrides)
    summary = EvaluationSummary(out=str(folder), checkpoint=str(ckpt), annotations=str(notes), metrics=metrics,
                                params_file=effective.params_file, overrides=effective.overrides)
    logger.info("zero-shot on %d segments: %s", metrics["segments"], summary.headline())
    _publish(summary)
    return summary


def _publish(summary: EvaluationSummary) -> None:
    """The scores beside chance and the control as a table, the pictures as markdown, for the Prefect UI."""
    publish_table(summary.rows(), "zero-shot-scores",
                  f"{summary.checkpoint} on {summary.annotations}: {summary.metrics['segments']} segments")
    for name, title in (("confusion_verbs.png", "Confusion of the verbs"),
                        ("confusion_objects.png", "Confusion of the objects"),
                        ("text_to_video.png", "Text to video strips")):
        publish_image(Path(summary.out) / name, f"zero-shot-{name.removesuffix('.png')}", title)
