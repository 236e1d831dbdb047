"""Dataset flows: the manifest of finished videos (and their sentences), the visual codebook, every video's
tokens, and the training corpus.

`dvc repro` runs the same steps through the CLI (`videobert dataset manifest|codebook|tokens|corpus`), one DVC
stage each, on the local files it versions; the `dataset` flow runs them all for the Prefect UI. Every step also
puts what it writes in the store under its content hash and records it in the database
(`videobert.dataset.registry`), and finds its inputs there by default (the latest registered), so that any
worker, in any working folder, can run any step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import publish_image, publish_stage_summary, publish_table
from flows.futures import run_per_video
from flows.inputs import effective_params, input_path, with_notes
from flows.summaries import (
    MAX_LISTED,
    CodebookSummary,
    CorpusSummary,
    DatasetSummary,
    ManifestSummary,
    TokensSummary,
)
from tasks.dataset import codebook_task, corpus_task, tokens_task
from videobert.core.params import ParamsOverride
from videobert.core.runtime import get_runtime
from videobert.core.stages import StageOptions
from videobert.dataset import registry
from videobert.dataset.codebook import fetch_codebook, load_codebook, reusable_codebook
from videobert.dataset.files import DatasetError, write_json
from videobert.dataset.manifest import build_manifest, build_sentences_index
from videobert.dataset.tokens import TOKENS, tokens_index, tokens_todo

TOKENS_TASK_THREADS = 16  # threads of the tokens flow's task runner; `concurrency` videos use them at once
FITTED = "fitted in this run"
REUSED = "skipped: the registered codebook of this manifest, these parameters and this code version"
RESULT = {"persist_result": True, "result_serializer": "json"}  # the return value is shown in the UI and the API


@flow(name="manifest", **RESULT)
@with_notes
def manifest_flow(out: str = "dataset/manifest.json", params_file: str = "params.yaml",
                  sentences_out: str = "dataset/sentences.json",
                  overrides: ParamsOverride = ParamsOverride()) -> ManifestSummary:  # type: ignore[valid-type]
    """Write the manifest of videos whose features are done with the current parameters, and beside it the
    index of their current sentences; both also go to the store and the database, for the next steps.

    Args:
        out: the manifest file to write (the DVC output); BASE_NOTE.
        params_file: PARAMS_FILE_NOTE
        sentences_out: the sentences index file to write (the DVC output); BASE_NOTE.
        overrides: OVERRIDES_NOTE (the features section decides which videos are current).
    """
    logger = get_run_logger()
    effective = effective_params(params_file, overrides, logger)
    rt = get_runtime()
    manifest = build_manifest(rt, effective.params)
    m = registry.register(rt, registry.MANIFEST, manifest,
                          summary={"videos": len(manifest["videos"]), "clips": manifest["clips"]})
    sentences = {**build_sentences_index(rt, manifest, effective.params), "manifest": m.content_hash}
    sent = registry.register(rt, registry.SENTENCES, sentences, manifest_hash=m.content_hash,
                             summary={"videos": len(sentences["videos"])})
    out_path, sentences_path = input_path(out, "", must_exist=False), input_path(sentences_out, "", must_exist=False)
    write_json(out_path, manifest)
    write_json(sentences_path, sentences)
    summary = ManifestSummary(path=str(out_path), videos=len(manifest["videos"]), clips=manifest["clips"],
                              stale=manifest["stale"], sentences=len(sentences["videos"]),
                              stale_sentences=sentences["stale"], content_hash=m.content_hash,
                              sentences_hash=sent.content_hash, params_file=effective.params_file,
                              overrides=effective.overrides)
    logger.info("manifest %s: %d videos, %d clips (%d stale, left out); sentences %s: %d videos; written to %s",
                m.content_hash[:16], summary.videos, summary.clips, len(summary.stale), sent.content_hash[:16],
                summary.sentences, out_path)
    publish_table([{"figure": "videos", "value": summary.videos}, {"figure": "clips", "value": summary.clips},
                   {"figure": "videos with stale features (left out)", "value": len(summary.stale)},
                   {"figure": "videos with sentences", "value": summary.sentences},
                   {"figure": "videos with stale sentences (left out)", "value": len(summary.stale_sentences)}],
                  "manifest-summary", f"manifest {m.content_hash[:16]}, sentences {sent.content_hash[:16]} (in the "
                  f"store and the database; local copies {out_path}, {sentences_path})")
    return summary


@flow(name="codebook", **RESULT)
@with_notes
def codebook_flow(manifest: str = "", out: str = "dataset/codebook", params_file: str = "params.yaml",
                  force: bool = False,
                  overrides: ParamsOverride = ParamsOverride()) -> CodebookSummary:  # type: ignore[valid-type]
    """Fit the hierarchical k-means codebook of a manifest into `out`, the store and the database; skipped (the
    registered codebook copied into `out`) when one was fitted on the same manifest with the same parameters and
    code version.

    Args:
        manifest: the manifest: a content hash or a unique prefix of one, or a manifest file (BASE_NOTE);
            empty: the latest registered.
        out: the codebook folder to write (the DVC output); BASE_NOTE.
        params_file: PARAMS_FILE_NOTE
        force: fit again even when a codebook of this manifest and these parameters is registered.
        overrides: OVERRIDES_NOTE (the codebook section: levels, k, seed ...).
    """
    logger = get_run_logger()
    effective = effective_params(params_file, overrides, logger)
    rt = get_runtime()
    m = registry.resolve_index(rt, registry.MANIFEST, manifest)
    out_path = input_path(out, "", must_exist=False)
    logger.info("codebook of manifest %s (%s): %d videos, %d clips; %d x %d", m.content_hash[:16], m.source,
                len(m.doc["videos"]), m.doc.get("clips", 0), effective.params.codebook.levels,
                effective.params.codebook.k)
    found = None if force else reusable_codebook(rt, m.doc, effective.params)
    if found is not None:
        metrics = fetch_codebook(rt, found["content_hash"], out_path)
        logger.info("codebook %s was fitted on this manifest with these parameters: fit skipped (force fits "
                    "again), copied into %s", found["content_hash"][:16], out_path)
        result = {"content_hash": found["content_hash"], "metrics": metrics}
    else:
        result = codebook_task(m.doc, effective.params, str(out_path))
    summary = CodebookSummary(path=str(out_path), fitted=found is None, manifest=m.content_hash,
                              params_file=effective.params_file, overrides=effective.overrides, **result)
    logger.info("codebook %s (%s): %s", summary.content_hash[:16], "fitted" if summary.fitted else "reused",
                summary.metrics)
    _publish_codebook(summary)
    return summary


def _publish_codebook(summary: CodebookSummary) -> None:
    """The codebook's quality figures as a table artifact and its gallery as a picture, for the Prefect UI."""
    rows: list[dict[str, Any]] = [{"figure": "fit", "value": FITTED if summary.fitted else REUSED}]
    rows += [{"figure": k, "value": round(v, 5) if isinstance(v, float) else v}
             for k, v in sorted(summary.metrics.items()) if isinstance(v, int | float | str)]
    rows += [{"figure": f"leaf size {k}", "value": v} for k, v in summary.metrics.get("leaf_size", {}).items()]
    publish_table(rows, "codebook-figures", f"codebook {summary.content_hash[:16]} of manifest "
                  f"{summary.manifest[:16]} ({'fitted in this run' if summary.fitted else 'reused: fit skipped'}); "
                  f"folder {summary.path}")
    publish_image(Path(summary.path) / "gallery.png", "codebook-gallery",
                  f"Codebook {summary.content_hash[:16]}: the most frequent tokens, each with its nearest clip")


@flow(name="tokens", task_runner=ThreadPoolTaskRunner(max_workers=TOKENS_TASK_THREADS), **RESULT)
@with_notes
def tokens_flow(manifest: str = "", codebook: str = "", out: str = "dataset/tokens.json", concurrency: int = 4,
                force: bool = False, allow_missing: bool = False) -> TokensSummary:
    """Label every manifest video with the codebook (one task run per video), then write the tokens index (to
    `out`, the store and the database).

    A manifest video left without tokens (its stage failed, now or before) is a DatasetError naming it, and the
    index is not written, so that `dvc repro` never caches an index that lacks it; with `allow_missing` the
    index is written without those videos (listed under `missing`).

    Args:
        manifest: the manifest: a content hash or a unique prefix of one, or a manifest file (BASE_NOTE);
            empty: the latest registered.
        codebook: the codebook: a content hash or a unique prefix of one, or a codebook folder (BASE_NOTE); empty:
            the latest registered codebook fitted on that manifest.
        out: the tokens index file to write (the DVC output); BASE_NOTE.
        concurrency: videos labelled at once.
        force: label again the videos whose tokens are current.
        allow_missing: write the index without the videos left without tokens (listed), instead of failing.
    """
    logger = get_run_logger()
    rt = get_runtime()
    m = registry.resolve_index(rt, registry.MANIFEST, manifest)
    folder = input_path(codebook, "", must_exist=False) if codebook else None
    local = str(folder) if folder and folder.is_dir() else None  # a codebook folder, else a hash (or empty)
    book = load_codebook(rt, local or codebook, m.content_hash)
    book_ref = local or book.content_hash()  # what each task loads: the same folder, or the resolved hash
    out_path = input_path(out, "", must_exist=False)
    pending, skipped = tokens_todo(rt, m.doc, book.content_hash(), StageOptions(force=force))
    summary = TokensSummary(path=str(out_path), codebook=book.content_hash(), manifest=m.content_hash,
                            submitted={TOKENS.name: len(pending)},
                            skipped_before_submit={TOKENS.name: skipped} if skipped else {})
    logger.info("tokens of manifest %s (%s) with codebook %s: %d videos to label, skipped before submitting: %s",
                m.content_hash[:16], m.source, book.content_hash()[:16], len(pending), skipped)
    outcomes = run_per_video({vid: [TOKENS.name] for vid in pending},
                             lambda vid, _stage: tokens_task.submit(vid, book_ref, force), {}, concurrency, "tokens")
    summary.add_outcomes(outcomes)
    index = {**tokens_index(rt, m.doc, book.content_hash()), "manifest": m.content_hash}
    summary.indexed, summary.missing = len(index["videos"]), index["missing"]
    logger.info("tokens: %s; %d videos indexed, %d missing", summary.results, summary.indexed, len(summary.missing))
    publish_stage_summary(summary, "tokens")
    if summary.missing and not allow_missing:
        raise DatasetError(f"{missing_tokens(summary)}; {out_path} not written: see `videobert "
                           "status`, re-run what failed, or pass --allow-missing (allow_missing) for an index "
                           "without them")
    summary.content_hash = registry.register(rt, registry.TOKENS_INDEX, index, manifest_hash=m.content_hash,
                                             codebook_hash=book.content_hash(),
                                             summary={"videos": summary.indexed, "missing": len(summary.missing)}
                                             ).content_hash
    write_json(out_path, index)
    return summary


def missing_tokens(summary: TokensSummary) -> str:
    """Which manifest videos have no tokens, and this run's errors."""
    videos = summary.indexed + len(summary.missing)
    names = ", ".join(summary.missing[:MAX_LISTED])
    more = f" and {len(summary.missing) - MAX_LISTED} more" if len(summary.missing) > MAX_LISTED else ""
    errors = ", ".join(f"{e.error_type} x{e.count}" for e in summary.top_errors)
    return (f"no tokens with codebook {summary.codebook[:16]} for {len(summary.missing)} of {videos} manifest "
            f"videos: {names}{more}" + (f" (this run: {errors})" if errors else ""))


@flow(name="corpus", **RESULT)
@with_notes
def corpus_flow(manifest: str = "", sentences: str = "", tokens: str = "", out: str = "dataset/corpus",
                params_file: str = "params.yaml",
                overrides: ParamsOverride = ParamsOverride()) -> CorpusSummary:  # type: ignore[valid-type]
    """Build the training corpus (Parquet shards and corpus.json) from the manifest, sentences and tokens, into
    `out`, the store and the database.

    Args:
        manifest: the manifest: a content hash or a unique prefix of one, or a manifest file (BASE_NOTE); empty:
            the manifest the tokens index was written for.
        sentences: the sentences index: a content hash or a unique prefix of one, or a file (BASE_NOTE); empty:
            the latest registered for that manifest.
        tokens: the tokens index: a content hash or a unique prefix of one, or a file (BASE_NOTE); empty: the latest registered.
        out: the corpus folder to write (the DVC output); BASE_NOTE.
        params_file: PARAMS_FILE_NOTE
        overrides: OVERRIDES_NOTE (the corpus section).
    """
    logger = get_run_logger()
    effective = effective_params(params_file, overrides, logger)
    rt = get_runtime()
    tok = registry.resolve_index(rt, registry.TOKENS_INDEX, tokens)
    m = registry.resolve_index(rt, registry.MANIFEST, manifest or tok.manifest_hash)
    sent = registry.resolve_index(rt, registry.SENTENCES, sentences, None if sentences else m.content_hash)
    for index in (tok, sent):
        if index.manifest_hash and index.manifest_hash != m.content_hash:
            raise DatasetError(f"the {index.kind} index {index.content_hash[:16]} ({index.source}) was written for "
                               f"manifest {index.manifest_hash[:16]}, not {m.content_hash[:16]} ({m.source}): name "
                               "inputs of one dataset version, or leave them empty")
    logger.info("corpus of manifest %s (%s), sentences %s (%s), tokens %s (%s)", m.content_hash[:16], m.source,
                sent.content_hash[:16], sent.source, tok.content_hash[:16], tok.source)
    out_path = input_path(out, "", must_exist=False)
    doc = corpus_task(m.doc, sent.doc, tok.doc, effective.params, str(out_path))
    summary = CorpusSummary(path=str(out_path), content_hash=doc["content_hash"], codebook=doc["codebook"],
                            tokenizer=doc["tokenizer"], stats=doc["stats"], manifest=m.content_hash,
                            params_file=effective.params_file, overrides=effective.overrides)
    logger.info("corpus %s: %s", summary.content_hash[:16], summary.stats["examples"])
    _publish_corpus(summary)
    return summary


def _publish_corpus(summary: CorpusSummary) -> None:
    """The corpus figures as a table artifact, for whoever reads the run in the Prefect UI."""
    examples = summary.stats["examples"]
    rows = [{"split": split, **by_kind, "total": sum(by_kind.values())} for split, by_kind in examples.items()]
    publish_table(rows, "corpus-examples",
                  f"corpus {summary.content_hash[:16]} (codebook {summary.codebook[:16]}): "
                  f"{summary.stats['negatives']} negative pairs; share of clips without a "
                  f"sentence {summary.stats['clips_without_sentence_share']:.1%}; folder {summary.path}")


@flow(name="dataset", **RESULT)
@with_notes
def dataset_flow(folder: str = "dataset", params_file: str = "params.yaml", concurrency: int = 4,
                 corpus: bool = True, allow_missing: bool = False, force: bool = False,
                 overrides: ParamsOverride = ParamsOverride()) -> DatasetSummary:  # type: ignore[valid-type]
    """Manifest, codebook, tokens and corpus, one after the other (what `dvc repro` runs as four stages), each
    step reading what the one before registered.

    Args:
        folder: where the local copies go (manifest.json, sentences.json, codebook/, tokens.json, corpus/);
            BASE_NOTE.
        params_file: PARAMS_FILE_NOTE
        concurrency: videos labelled at once.
        corpus: build the corpus too (off: stop after the tokens).
        allow_missing: write the tokens index without the videos left without tokens, instead of failing.
        force: fit the codebook again even when one of this manifest and these parameters is registered.
        overrides: OVERRIDES_NOTE
    """
    base = Path(folder)
    manifest = manifest_flow(str(base / "manifest.json"), params_file, str(base / "sentences.json"), overrides)
    codebook = codebook_flow(manifest.content_hash, str(base / "codebook"), params_file, force, overrides)
    tokens = tokens_flow(manifest.content_hash, codebook.content_hash, str(base / "tokens.json"), concurrency,
                         allow_missing=allow_missing)
    built = None
    if corpus:
        built = corpus_flow(manifest.content_hash, manifest.sentences_hash, tokens.content_hash,
                            str(base / "corpus"), params_file, overrides)
    return DatasetSummary(manifest=manifest, codebook=codebook, tokens=tokens, corpus=built)
