"""The captioning flow: a captioner trained on the training split's segments over the frozen VideoBERT's features
and the clip features, and the same captioner on clip features alone (the ablation), both decoded on the scored
split and scored with BLEU, METEOR, ROUGE-L and CIDEr; the scores table and (reference, prediction) examples are
flow-run artifacts. `dvc repro` runs the same through `videobert caption` (the `caption` stage)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.artifacts import publish_table
from flows.inputs import effective_params, input_path, with_notes
from tasks.captioning import score_captions_task, train_captioner_task
from videobert.captioning.metrics import LABELS, METRICS
from videobert.captioning.run import CaptionRequest, rows_of
from videobert.core.params import ParamsOverride
from videobert.core.runtime import get_runtime
from videobert.dataset import registry
from videobert.training.run import resolve_model


class CaptionSummary(BaseModel):
    """The captioning flow's result: where it is, metrics.json, and each row's training figures."""

    out: str
    checkpoint: str
    annotations: str
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    params_file: str | None = Field(None, description="the params file read, absolute; None: the paper's defaults")
    overrides: dict[str, Any] = Field(default_factory=dict, description="section.key -> value overridden for this run")

    def table(self) -> list[dict[str, Any]]:
        """One row per captioner: inputs, segments, then each metric (BLEU, METEOR, ROUGE-L in %, CIDEr)."""
        out = []
        for row in self.rows:
            m = self.metrics[row["inputs"]]
            out.append({"inputs": row["inputs"], "segments": m["segments"],
                        **{LABELS[k]: round(m[k], 2 if k != "cider" else 3) for k in METRICS}})
        return out

    def headline(self) -> str:
        return "; ".join(f"{r['inputs']}: BLEU-4 {r['BLEU-4']:.2f}, METEOR {r['METEOR']:.2f}, CIDEr {r['CIDEr']:.3f}"
                         for r in self.table())


@flow(name="caption", persist_result=True, result_serializer="json")
@with_notes
def caption_flow(checkpoint: str = "", annotations: str | None = None, tokens: str = "", out: str = "caption",
                 params_file: str = "params.yaml",
                 overrides: ParamsOverride = ParamsOverride()) -> CaptionSummary:  # type: ignore[valid-type]
    """Train and score captioners over a trained VideoBERT's features (and, with caption.ablation, over the clip
    features alone) on YouCook II-format annotations, for the videos of a tokens index; results in `out`.

    Args:
        checkpoint: MODEL_NOTE.
        annotations: annotations in the YouCook II format; empty: caption.annotations of the params file (after
            the overrides); BASE_NOTE.
        tokens: TOKENS_INDEX_NOTE.
        out: the folder of the captioners, their predictions and metrics.json; BASE_NOTE.
        params_file: PARAMS_FILE_NOTE
        overrides: OVERRIDES_NOTE (the caption section is read here).
    """
    from prefect.runtime import flow_run

    logger = get_run_logger()
    effective = effective_params(params_file, overrides, logger)
    params = effective.params
    rt = get_runtime()  # settings and backends checked before a task starts
    ckpt, ckpt_source = resolve_model(rt, checkpoint)
    notes = input_path(annotations or params.caption.annotations, "annotation file")
    tok = registry.resolve_index(rt, registry.TOKENS_INDEX, tokens)
    folder = input_path(out, "output folder", must_exist=False)
    logger.info("captioning over %s on %s with tokens index %s (%s)", ckpt_source, notes, tok.content_hash[:16],
                tok.source)
    request = CaptionRequest(checkpoint=str(ckpt), annotations=str(notes), tokens=str(registry.local_file(rt, tok)),
                             out=str(folder), flow_run_id=str(flow_run.id) if flow_run.id else None)
    rows = []
    for inputs in rows_of(params.caption):
        def progress(epoch: int, epochs: int, figures: dict[str, float], inputs: str = inputs) -> None:
            logger.info("%s: epoch %d/%d, train loss %.4g, validation loss %.4g", inputs, epoch, epochs,
                        figures["train_loss"], figures["eval_loss"])

        rows.append(train_captioner_task(asdict(request), inputs, effective.params_file, progress,
                                         effective.overrides))
    metrics = score_captions_task(str(folder), rows, effective.params_file, effective.overrides)
    summary = CaptionSummary(out=str(folder), checkpoint=str(ckpt), annotations=str(notes), metrics=metrics,
                             rows=rows, params_file=effective.params_file, overrides=effective.overrides)
    logger.info("captioning: %s", summary.headline())
    _publish(summary)
    return summary


def _publish(summary: CaptionSummary) -> None:
    """The scores of both rows as a table, and (reference, prediction) examples as markdown, for the Prefect UI."""
    from prefect.artifacts import create_markdown_artifact

    publish_table(summary.table(), "caption-scores",
                  f"captioners over {summary.checkpoint} on {summary.annotations}: BLEU, METEOR, ROUGE-L in %, CIDEr "
                  "as is (the paper's scales)")
    examples = summary.metrics.get("examples", [])
    if examples:
        names = [r["inputs"] for r in summary.rows]
        lines = ["| reference | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        lines += ["| " + " | ".join([e["reference"], *(e.get(n, "") for n in names)]).replace("\n", " ") + " |"
                  for e in examples]
        create_markdown_artifact("\n".join(lines), key="caption-examples",
                                 description="held-out segments: the reference and each captioner's caption")
