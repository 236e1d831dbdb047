"""A small learnable corpus for training tests: a registered codebook and corpus in which each of a few
"actions" pairs its own words with its own visual tokens."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from videobert.core.storage import keys
from videobert.dataset.codebook import CODEBOOKS
from videobert.dataset.corpus import CORPORA, LAYOUT_VERSION, _ShardWriter
from videobert.dataset.files import write_json
from videobert.db import repository as repo
from videobert_model.corpus import Example
from videobert_model.visual_tokenizer import HKMeansConfig, fit_hierarchical_kmeans

ACTIONS = 4  # each action: 3 words (WordPiece ids) and 4 visual tokens of its own
WORDS = {a: [2000 + 10 * a + i for i in range(3)] for a in range(ACTIONS)}
TOKENS = {a: [4 * a + i for i in range(4)] for a in range(ACTIONS)}


def register_codebook(rt: Any, folder: Path, levels: int = 2, k: int = 4) -> str:
    """A k ** levels codebook fitted on random vectors, saved, stored and registered; its hash."""
    data = np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32)
    book, _ = fit_hierarchical_kmeans(data, HKMeansConfig(levels=levels, k=k))
    book.save_pretrained(folder)
    digest = book.content_hash()
    for f in sorted(folder.iterdir()):
        rt.store.put_file(keys.dataset_artifact(CODEBOOKS, digest, f.name), f)
    repo.register_codebook(rt.db, digest, levels=levels, k=k, dim=8, params={}, store_prefix=keys.dataset_prefix(
        CODEBOOKS, digest), metrics={})
    return digest


def examples(videos: int, seed: int = 0) -> list[Example]:
    """Aligned pairs, negatives, text-only and video-only examples of the actions; one validation video in four."""
    rng = np.random.default_rng(seed)
    out = []
    for v in range(videos):
        split = "validation" if v % 4 == 3 else "train"
        for _ in range(6):
            a, b = rng.integers(ACTIONS, size=2)
            aligned = int(rng.random() < 0.5 or a == b)
            video = list(rng.permutation(TOKENS[a if aligned else b]))
            text = WORDS[a]
            out.append(Example(f"v{v}", "text_video", split, text, [int(t) for t in video], aligned, f"v{v}", 0, 1))
            out.append(Example(f"v{v}", "text", split, text, [], -1, "", 0, 1))
            out.append(Example(f"v{v}", "video", split, [], [int(t) for t in TOKENS[a]] * 2, -1, f"v{v}", 0, 1))
    return out


def write_corpus(rt: Any, folder: Path, codebook: str, videos: int = 8, shard_rows: int = 50) -> dict[str, Any]:
    """The examples as a corpus folder (Parquet shards and corpus.json, as `dataset corpus` writes), stored and
    registered; its corpus.json."""
    folder.mkdir(parents=True, exist_ok=True)
    writers = {s: _ShardWriter(folder, s, shard_rows) for s in ("train", "validation")}
    for ex in examples(videos):
        writers[ex.split].add(ex)
    for w in writers.values():
        w.flush()
    shards = {name: info for w in writers.values() for name, info in w.shards.items()}
    digest = hashlib.sha256(json.dumps({"layout": LAYOUT_VERSION, "shards": shards}, sort_keys=True).encode()).hexdigest()
    doc = {"content_hash": digest, "layout": LAYOUT_VERSION, "codebook": codebook, "tokenizer": "test",
           "params": {}, "stats": {}, "shards": shards}
    write_json(folder / "corpus.json", doc)
    for f in sorted(folder.iterdir()):
        rt.store.put_file(keys.dataset_artifact(CORPORA, digest, f.name), f)
    repo.register_corpus(rt.db, digest, codebook_hash=codebook, params={}, stats={},
                         store_prefix=keys.dataset_prefix(CORPORA, digest))
    return doc
