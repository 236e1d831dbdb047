"""Prefect tasks of the dataset stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from tasks.common import TASK_OPTIONS, TOKENS_RETRIES, as_dict, backoff
from videobert.core.params import Params
from videobert.core.runtime import get_runtime
from videobert.core.stages import StageOptions
from videobert.dataset.codebook import build_codebook, load_codebook
from videobert.dataset.corpus import build_corpus, load_text_tokenizer
from videobert.dataset.tokens import run_tokens


@task(name="fit-codebook", **TASK_OPTIONS)
def codebook_task(manifest: dict[str, Any], params: Params, out_dir: str) -> dict[str, Any]:
    """Fit the hierarchical k-means codebook of a manifest and illustrate it; returns its hash and metrics."""
    from prefect import get_run_logger

    logger = get_run_logger()
    book, metrics = build_codebook(get_runtime(), manifest, params, Path(out_dir), progress=logger.info)
    return {"content_hash": book.content_hash(), "metrics": metrics}


@task(name="tokens", task_run_name="tokens-{video_id}", **TASK_OPTIONS, **backoff(*TOKENS_RETRIES))
def tokens_task(video_id: str, codebook: str, force: bool = False) -> dict[str, Any]:
    """Label one video's clips with the codebook (a folder or a content hash in the store)."""
    rt = get_runtime()
    return as_dict(run_tokens(rt, video_id, load_codebook(rt, codebook),
                              StageOptions(force=force, raise_retryable=True)))


@task(name="build-corpus", **TASK_OPTIONS)
def corpus_task(manifest: dict[str, Any], sentences: dict[str, Any], tokens: dict[str, Any], params: Params,
                out_dir: str) -> dict[str, Any]:
    """Build the training corpus of a dataset version; returns its corpus.json."""
    from prefect import get_run_logger

    rt = get_runtime()
    encode, identity = load_text_tokenizer(rt.settings.bert_model)
    return build_corpus(rt, manifest, sentences, tokens, params, Path(out_dir), encode, identity,
                        progress=get_run_logger().info)
