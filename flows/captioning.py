"""The captioning flow: a captioner trained on the training split's segments over the frozen VideoBERT's features
and the clip features, and the same captioner on clip features alone (the ablation), both decoded on the scored
split and scored with BLEU, METEOR, ROUGE-L and CIDEr; the scores table and (reference, prediction) examples are
flow-run artifacts. `dvc repro` runs the same through `videobert caption` (the `caption` stage)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel

from flows.artifacts import publish_table
from tasks.captioning import score_captions_task, train_captioner_task
from videobert.captioning.metrics import LABELS, METRICS
from videobert.captioning.run import CaptionRequest, rows_of
from videobert.core.params import load_params
from videobert.core.runtime import get_runtime


class CaptionSummary(BaseModel):
    """The captioning flow's result: where it is, metrics.json, and each row's training figures."""

    out: str
    checkpoint: str
    annotations: str
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]

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


@flow(name="caption")
def caption_flow(checkpoint: str = "models/videobert", annotations: str | None = None,
                 tokens: str = "dataset/tokens.json", out: str = "caption", params_file: str = "params.yaml"
                 ) -> CaptionSummary:
    """Train and score captioners over `checkpoint`'s (a trained VideoBERT folder) features on `annotations`
    (YouCook II format; default: caption.annotations of the params file), for the videos of the `tokens` index;
    with caption.ablation also on clip features alone; results in `out`."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    params = load_params(params_file)
    get_runtime()  # settings and backends checked before a task starts
    annotations = annotations or params.caption.annotations
    request = CaptionRequest(checkpoint=checkpoint, annotations=annotations, tokens=tokens, out=out,
                             flow_run_id=str(flow_run.id) if flow_run.id else None)
    rows = []
    for inputs in rows_of(params.caption):
        def progress(epoch: int, epochs: int, figures: dict[str, float], inputs: str = inputs) -> None:
            logger.info("%s: epoch %d/%d, train loss %.4g, validation loss %.4g", inputs, epoch, epochs,
                        figures["train_loss"], figures["eval_loss"])

        rows.append(train_captioner_task(asdict(request), inputs, params_file, progress))
    metrics = score_captions_task(out, rows, params_file)
    summary = CaptionSummary(out=out, checkpoint=checkpoint, annotations=annotations, metrics=metrics, rows=rows)
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
