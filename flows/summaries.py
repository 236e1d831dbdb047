"""What the flows return: typed summaries that the CLI, the demo and the Prefect UI read the same way."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from flows.futures import Outcomes

TOP_ERRORS = 10  # most frequent (stage, error type) pairs kept in a summary
MAX_LISTED = 20  # rejected entries, unknown ids ... listed by name (the rest are counted)


class ErrorCount(BaseModel):
    """How many (video, stage) pairs failed with one error type."""

    stage: str
    error_type: str
    count: int
    example_video: str | None = Field(None, description="one video that failed so (its stage row holds the error)")


class StageRunSummary(BaseModel):
    """How the per-video stages of one flow run ended."""

    flow_run_id: str | None = None
    submitted: dict[str, int] = Field(default_factory=dict, description="stage -> task runs planned")
    results: dict[str, dict[str, int]] = Field(default_factory=dict, description="stage -> status -> count")
    skipped_before_submit: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="stage -> reason -> count, decided from the database before submitting"
    )
    top_errors: list[ErrorCount] = Field(default_factory=list)
    params_file: str | None = Field(None, description="the params file read, absolute; None: the paper's defaults")
    overrides: dict[str, Any] = Field(default_factory=dict, description="section.key -> value overridden for this run")

    def add_outcomes(self, outcomes: Outcomes) -> None:
        """Fill `results` and `top_errors` from the scheduler's counters."""
        for (stage, status), n in sorted(outcomes.results.items()):
            self.results.setdefault(stage, {})[status] = n
        self.top_errors = [ErrorCount(stage=s, error_type=e, count=n, example_video=outcomes.examples.get((s, e)))
                           for (s, e), n in outcomes.errors.most_common(TOP_ERRORS)]

    def count(self, stage: str, status: str) -> int:
        """Task runs of `stage` that ended with `status` in this run."""
        return self.results.get(stage, {}).get(status, 0)

    def failed(self) -> int:
        """(video, stage) pairs that failed or did not run because their input failed."""
        return sum(n for by_status in self.results.values() for st, n in by_status.items() if st in {"failed", "not run"})


class IngestSummary(StageRunSummary):
    """The ingest flow's result."""

    videos: int = 0
    new_videos: int = 0
    rejected: list[tuple[str, str]] = Field(default_factory=list, description="(entry, reason), the first ones")
    rejected_count: int = 0
    unknown_ids: list[str] = Field(default_factory=list)


class DatasetStepSummary(BaseModel):
    """What every dataset step's result records: the params it read."""

    params_file: str | None = Field(None, description="the params file read, absolute; None: the paper's defaults")
    overrides: dict[str, Any] = Field(default_factory=dict, description="section.key -> value overridden for this run")


class ManifestSummary(DatasetStepSummary):
    """The manifest flow's result."""

    path: str
    videos: int
    clips: int
    stale: list[str]
    sentences: int = Field(0, description="manifest videos with current sentences")
    stale_sentences: list[str] = Field(default_factory=list)
    content_hash: str = Field("", description="the manifest's content hash (registered)")
    sentences_hash: str = Field("", description="the sentences index's content hash (registered)")


class CodebookSummary(DatasetStepSummary):
    """The codebook flow's result."""

    path: str
    content_hash: str
    metrics: dict[str, Any]
    manifest: str = Field("", description="the content hash of the manifest it was fitted on")
    fitted: bool = Field(True, description="fitted in this run (false: a registered one of the same manifest, "
                                           "parameters and code version was reused)")


class TokensSummary(StageRunSummary):
    """The tokens flow's result."""

    path: str = ""
    codebook: str = ""
    manifest: str = ""
    content_hash: str = Field("", description="the tokens index's content hash (registered; empty: not written)")
    indexed: int = 0
    missing: list[str] = Field(default_factory=list)


class CorpusSummary(DatasetStepSummary):
    """The corpus flow's result: where it is and its corpus.json figures."""

    path: str
    content_hash: str
    codebook: str
    tokenizer: str
    stats: dict[str, Any]
    manifest: str = ""


class DatasetSummary(BaseModel):
    """The dataset flow's result: its steps."""

    manifest: ManifestSummary
    codebook: CodebookSummary
    tokens: TokensSummary
    corpus: CorpusSummary | None = None


def reasons(counter: Counter[str]) -> dict[str, int]:
    """A Counter as a plain sorted dict."""
    return dict(sorted(counter.items()))


class TrainSummary(BaseModel):
    """The training flow's result."""

    run_key: str
    status: str = Field(description="done, stopped (resumable) or skipped (already done)")
    corpus_hash: str
    codebook_hash: str | None
    out_dir: str
    steps: int
    resumed_from: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = Field(default_factory=list)
    model_prefix: str | None = None
    loss_curve: str | None = None
    params_file: str | None = Field(None, description="the params file read, absolute; None: the paper's defaults")
    overrides: dict[str, Any] = Field(default_factory=dict, description="section.key -> value overridden for this run")


class EvaluationSummary(BaseModel):
    """The evaluation flow's result: where it is and its metrics.json."""

    out: str
    checkpoint: str
    annotations: str
    metrics: dict[str, Any]
    params_file: str | None = Field(None, description="the params file read, absolute; None: the paper's defaults")
    overrides: dict[str, Any] = Field(default_factory=dict, description="section.key -> value overridden for this run")

    def rows(self) -> list[dict[str, Any]]:
        """One row per (what, figure): the model, chance, the frequency prior, the shuffled control."""
        out = []
        for what in ("verb", "object"):
            m = self.metrics[what]
            k = next(key for key in m if key.startswith("top") and key != "top1")
            control = self.metrics.get(f"shuffled_{what}", {})
            for fig in ("top1", k):
                out.append({"what": what, "figure": fig, "model": round(m[fig], 4),
                            "chance": round(m[f"chance_{fig}"], 4), "frequency prior": round(m[f"prior_{fig}"], 4),
                            "shuffled video": round(control[fig], 4) if control else None})
        return out

    def headline(self) -> str:
        """verb top-1 x% (chance y%), object top-1 ... in one line."""
        return "; ".join(f"{r['what']} {r['figure']} {r['model']:.1%} (chance {r['chance']:.1%}"
                         + (f", shuffled {r['shuffled video']:.1%}" if r["shuffled video"] is not None else "") + ")"
                         for r in self.rows())
