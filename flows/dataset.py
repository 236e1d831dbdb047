"""Dataset flows: the manifest of finished videos (and their sentences), the visual codebook, every video's
tokens, and the training corpus.

`dvc repro` runs the same steps through the CLI (`videobert dataset manifest|codebook|tokens|corpus`), one DVC
stage each; the `dataset` flow runs them all for the Prefect UI.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.futures import run_per_video
from flows.summaries import (
    MAX_LISTED,
    CodebookSummary,
    CorpusSummary,
    DatasetSummary,
    ManifestSummary,
    TokensSummary,
)
from tasks.dataset import codebook_task, corpus_task, tokens_task
from videobert.core.params import load_params
from videobert.core.runtime import get_runtime
from videobert.core.stages import StageOptions
from videobert.dataset.codebook import load_codebook
from videobert.dataset.corpus import read_index
from videobert.dataset.files import DatasetError, write_json
from videobert.dataset.manifest import build_manifest, build_sentences_index, read_manifest
from videobert.dataset.tokens import TOKENS, tokens_index, tokens_todo

TOKENS_TASK_THREADS = 16  # threads of the tokens flow's task runner; `concurrency` videos use them at once


@flow(name="manifest")
def manifest_flow(out: str = "dataset/manifest.json", params_file: str = "params.yaml",
                  sentences_out: str = "dataset/sentences.json") -> ManifestSummary:
    """Write the manifest of videos whose features are done with the current parameters, and beside it the
    index of their current sentences."""
    rt = get_runtime()
    params = load_params(params_file)
    manifest = build_manifest(rt, params)
    sentences = build_sentences_index(rt, manifest, params)
    write_json(Path(out), manifest)
    write_json(Path(sentences_out), sentences)
    summary = ManifestSummary(path=out, videos=len(manifest["videos"]), clips=manifest["clips"],
                              stale=manifest["stale"], sentences=len(sentences["videos"]),
                              stale_sentences=sentences["stale"])
    get_run_logger().info("manifest: %d videos, %d clips (%d stale, left out); %d with sentences", summary.videos,
                          summary.clips, len(summary.stale), summary.sentences)
    return summary


@flow(name="codebook")
def codebook_flow(manifest: str = "dataset/manifest.json", out: str = "dataset/codebook",
                  params_file: str = "params.yaml") -> CodebookSummary:
    """Fit the codebook of a manifest into `out` (and the store, and the database)."""
    result = codebook_task(read_manifest(Path(manifest)), load_params(params_file), out)
    get_run_logger().info("codebook %s: %s", result["content_hash"][:12], result["metrics"])
    return CodebookSummary(path=out, **result)


@flow(name="tokens", task_runner=ThreadPoolTaskRunner(max_workers=TOKENS_TASK_THREADS))
def tokens_flow(manifest: str = "dataset/manifest.json", codebook: str = "dataset/codebook",
                out: str = "dataset/tokens.json", concurrency: int = 4, force: bool = False,
                allow_missing: bool = False) -> TokensSummary:
    """Label every manifest video with the codebook (one task run per video), then write the tokens index.

    A manifest video left without tokens (its stage failed, now or before) is a DatasetError naming it, and the
    index is not written, so that `dvc repro` never caches an index that lacks it; with `allow_missing` the
    index is written without those videos (listed under `missing`).
    """
    rt = get_runtime()
    m = read_manifest(Path(manifest))
    book = load_codebook(rt, codebook)
    pending, skipped = tokens_todo(rt, m, book.content_hash(), StageOptions(force=force))
    summary = TokensSummary(path=out, codebook=book.content_hash(), submitted={TOKENS.name: len(pending)},
                            skipped_before_submit={TOKENS.name: skipped} if skipped else {})
    outcomes = run_per_video({vid: [TOKENS.name] for vid in pending},
                             lambda vid, _stage: tokens_task.submit(vid, codebook, force), {}, concurrency, "tokens")
    summary.add_outcomes(outcomes)
    index = tokens_index(rt, m, book.content_hash())
    summary.indexed, summary.missing = len(index["videos"]), index["missing"]
    get_run_logger().info("tokens: %s; %d videos indexed, %d missing", summary.results, summary.indexed,
                          len(summary.missing))
    if summary.missing and not allow_missing:
        raise DatasetError(f"{missing_tokens(summary)}; {out} not written: see `videobert "
                           "status`, re-run what failed, or pass --allow-missing (allow_missing) for an index "
                           "without them")
    write_json(Path(out), index)
    return summary


def missing_tokens(summary: TokensSummary) -> str:
    """Which manifest videos have no tokens, and this run's errors."""
    videos = summary.indexed + len(summary.missing)
    names = ", ".join(summary.missing[:MAX_LISTED])
    more = f" and {len(summary.missing) - MAX_LISTED} more" if len(summary.missing) > MAX_LISTED else ""
    errors = ", ".join(f"{e.error_type} x{e.count}" for e in summary.top_errors)
    return (f"no tokens with codebook {summary.codebook[:16]} for {len(summary.missing)} of {videos} manifest "
            f"videos: {names}{more}" + (f" (this run: {errors})" if errors else ""))


@flow(name="corpus")
def corpus_flow(manifest: str = "dataset/manifest.json", sentences: str = "dataset/sentences.json",
                tokens: str = "dataset/tokens.json", out: str = "dataset/corpus",
                params_file: str = "params.yaml") -> CorpusSummary:
    """Build the training corpus (Parquet shards and corpus.json) from the manifest, sentences and tokens."""
    doc = corpus_task(read_manifest(Path(manifest)), read_index(Path(sentences), "sentences index", "videos"),
                      read_index(Path(tokens), "tokens index", "codebook", "videos"), load_params(params_file), out)
    summary = CorpusSummary(path=out, content_hash=doc["content_hash"], codebook=doc["codebook"],
                            tokenizer=doc["tokenizer"], stats=doc["stats"])
    _publish_corpus(summary)
    return summary


def _publish_corpus(summary: CorpusSummary) -> None:
    """The corpus figures as a table artifact, for whoever reads the run in the Prefect UI."""
    from prefect.artifacts import create_table_artifact

    examples = summary.stats["examples"]
    rows = [{"split": split, **by_kind, "total": sum(by_kind.values())} for split, by_kind in examples.items()]
    create_table_artifact(rows, key="corpus-examples",
                          description=f"corpus {summary.content_hash[:16]} (codebook {summary.codebook[:16]}): "
                                      f"{summary.stats['negatives']} negative pairs; share of clips without a "
                                      f"sentence {summary.stats['clips_without_sentence_share']:.1%}")


@flow(name="dataset")
def dataset_flow(folder: str = "dataset", params_file: str = "params.yaml", concurrency: int = 4,
                 corpus: bool = True, allow_missing: bool = False) -> DatasetSummary:
    """Manifest, codebook, tokens and corpus, one after the other (what `dvc repro` runs as four stages)."""
    base = Path(folder)
    manifest = manifest_flow(str(base / "manifest.json"), params_file, str(base / "sentences.json"))
    codebook = codebook_flow(str(base / "manifest.json"), str(base / "codebook"), params_file)
    tokens = tokens_flow(str(base / "manifest.json"), str(base / "codebook"), str(base / "tokens.json"), concurrency,
                         allow_missing=allow_missing)
    built = None
    if corpus:
        built = corpus_flow(str(base / "manifest.json"), str(base / "sentences.json"), str(base / "tokens.json"),
                            str(base / "corpus"), params_file)
    return DatasetSummary(manifest=manifest, codebook=codebook, tokens=tokens, corpus=built)
