"""The training corpus of a dataset version: the examples of `videobert_model.corpus` over every manifest video,
as Parquet shards with a `corpus.json` (content hash, codebook hash, tokenizer identity, params, statistics) and a
length histogram; copied to the store under `corpora/<content hash>/` and registered in the database.

Videos stream one at a time (tokens and sentences read from the store, verified); only the negative pool (at most
`corpus.negative_pool_videos` videos' tokens) and one shard per split are held in memory. The same inputs and
params give byte-identical shards (fixed row order, fixed Parquet writer settings).

Load a corpus with `datasets.load_dataset("parquet", data_files={"train": "dataset/corpus/train-*.parquet",
"validation": "dataset/corpus/validation-*.parquet"})`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from videobert.core.errors import SettingsError
from videobert.core.fingerprint import canonical_json
from videobert.core.params import CorpusParams, Params
from videobert.core.runtime import Runtime
from videobert.core.storage import keys
from videobert.dataset.files import DatasetError, staged_dir, write_json
from videobert.db import repository as repo
from videobert_model.corpus import (
    SPLITS,
    CorpusConfig,
    CorpusStats,
    Example,
    NegativePool,
    Sentence,
    VideoInput,
    pool_members,
    video_examples,
)

log = logging.getLogger(__name__)

CORPORA = "corpora"  # the dataset kind in the store: corpora/<content hash>/<file>
LAYOUT_VERSION = "1"  # bump when the shard schema or the example recipe changes
SCHEMA_FIELDS = ("video_id", "kind", "text_ids", "video_tokens", "aligned", "video_source", "start", "end",
                 "sentences", "subsample")
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": ["kind", "video_id",
                   "video_source"], "write_statistics": False}
TIME_DECIMALS = 4  # start/end rounded to 0.1 ms: the same spans give the same bytes

TextTokenizer = Callable[[list[str]], list[list[int]]]


def corpus_config(p: CorpusParams) -> CorpusConfig:
    """The algorithm's configuration from the corpus parameters."""
    return CorpusConfig(max_len=p.max_len, max_concat=p.max_concat, subsample_min=p.subsample_min,
                        subsample_max=p.subsample_max, video_segment=p.video_segment,
                        negative_ratio=p.negative_ratio, validation_share=p.validation_share,
                        text_only=p.text_only, video_only=p.video_only, seed=p.seed)


TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json")


def tokenizer_identity(model_dir: str | None) -> str:
    """The identity of a pretrained BERT directory's tokenizer: sha256 of its vocabulary files ("none" unset)."""
    if not model_dir:
        return "none"
    path = Path(model_dir)
    files = [path / n for n in TOKENIZER_FILES if (path / n).is_file()]
    if not files:
        raise SettingsError(f"VIDEOBERT_BERT_MODEL={model_dir!r} is not a folder with a BERT tokenizer (vocab.txt)")
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


def load_text_tokenizer(model_dir: str | None) -> tuple[TextTokenizer, str]:
    """The WordPiece tokenizer of a pretrained BERT directory, and its identity (see `tokenizer_identity`)."""
    if not model_dir:
        raise SettingsError("VIDEOBERT_BERT_MODEL is not set: point it at a pretrained BERT directory (its "
                            "WordPiece vocabulary tokenizes the corpus text)")
    identity = tokenizer_identity(model_dir)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))

    def encode(texts: list[str]) -> list[list[int]]:
        return list(tok(texts, add_special_tokens=False)["input_ids"]) if texts else []

    return encode, identity


class _ShardWriter:
    """Rows of one split, written as `<split>-<nnnnn>.parquet` files of at most `rows` rows each."""

    def __init__(self, folder: Path, split: str, rows: int) -> None:
        self.folder, self.split, self.rows = folder, split, rows
        self.buffer: list[Example] = []
        self.shards: dict[str, dict[str, Any]] = {}

    def add(self, ex: Example) -> None:
        self.buffer.append(ex)
        if len(self.buffer) >= self.rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer and self.shards:
            return
        cols: dict[str, list[Any]] = {f: [] for f in SCHEMA_FIELDS}
        for ex in self.buffer:
            for f in SCHEMA_FIELDS:
                v = getattr(ex, f)
                cols[f].append(round(v, TIME_DECIMALS) if f in ("start", "end") else v)
        table = pa.table({
            "video_id": pa.array(cols["video_id"], pa.string()),
            "kind": pa.array(cols["kind"], pa.string()),
            "text_ids": pa.array(cols["text_ids"], pa.list_(pa.int32())),
            "video_tokens": pa.array(cols["video_tokens"], pa.list_(pa.int32())),
            "aligned": pa.array(cols["aligned"], pa.int8()),
            "video_source": pa.array(cols["video_source"], pa.string()),
            "start": pa.array(cols["start"], pa.float64()),
            "end": pa.array(cols["end"], pa.float64()),
            "sentences": pa.array(cols["sentences"], pa.int16()),
            "subsample": pa.array(cols["subsample"], pa.int8()),
        })
        name = f"{self.split}-{len(self.shards):05d}.parquet"
        pq.write_table(table, self.folder / name, **PARQUET_OPTIONS)
        digest = hashlib.sha256((self.folder / name).read_bytes()).hexdigest()
        self.shards[name] = {"rows": len(self.buffer), "sha256": digest}
        self.buffer = []


def _sentences(rt: Runtime, ref: dict[str, Any] | None, tokenize: TextTokenizer, english_only: bool) -> list[Sentence]:
    """A video's sentences, tokenized (none when it has no transcript, or a non-English one)."""
    if not ref:
        return []
    doc = rt.store.get_json(ref["key"], verify=True)
    if english_only and not doc.get("english", False):  # type: ignore[union-attr]
        return []
    items = doc.get("sentences", [])  # type: ignore[union-attr]
    ids = tokenize([s["text"] for s in items])
    return [Sentence(t, float(s["start"]), float(s["end"])) for s, t in zip(items, ids, strict=True) if t]


def _tokens(rt: Runtime, ref: dict[str, Any], video_id: str, codebook: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    doc = rt.store.get_json(ref["key"], verify=True)
    if doc.get("codebook") != codebook:  # type: ignore[union-attr]
        raise DatasetError(f"video {video_id}: tokens made with codebook {doc.get('codebook')}, not {codebook}")  # type: ignore[union-attr]
    return (np.asarray(doc["tokens"], dtype=np.int64), np.asarray(doc["start"], dtype=np.float64),  # type: ignore[index]
            np.asarray(doc["end"], dtype=np.float64))  # type: ignore[index]


def build_corpus(rt: Runtime, manifest: dict[str, Any], sentences_index: dict[str, Any], tokens_index: dict[str, Any],
                 params: Params, out_dir: Path, tokenize: TextTokenizer, tokenizer_identity: str,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the corpus of the manifest's videos into `out_dir` (replaced only when complete), copy it to the
    store, register it; returns its `corpus.json`."""
    say = progress or (lambda msg: log.info(msg))
    p = params.corpus
    cfg = corpus_config(p)
    codebook = tokens_index["codebook"]
    videos = sorted(manifest["videos"], key=lambda v: v["id"])
    indexed_with = sentences_index.get("tokenizer", tokenizer_identity)
    if indexed_with != tokenizer_identity:
        raise DatasetError(f"the sentences index was written with tokenizer {indexed_with}, but VIDEOBERT_BERT_MODEL "
                           f"is {tokenizer_identity}: run the manifest stage again (dvc repro does)")
    missing = [v["id"] for v in videos if v["id"] not in tokens_index["videos"]]
    if missing:
        raise DatasetError(f"{len(missing)} manifest videos have no tokens with codebook {codebook[:16]} "
                           f"(run `videobert dataset tokens`): {missing[:10]}")
    if not videos:
        raise DatasetError("the manifest has no videos: run ingest (with features) on some videos first")

    members = pool_members([v["id"] for v in videos], p.negative_pool_videos, p.seed)
    pool = NegativePool([(vid, _tokens(rt, tokens_index["videos"][vid], vid, codebook)[0]) for vid in members])
    say(f"corpus of {len(videos)} videos (negative pool: {len(members)} videos)")
    stats = CorpusStats()
    with staged_dir(out_dir) as folder:
        writers = {s: _ShardWriter(folder, s, p.shard_rows) for s in SPLITS}
        for i, entry in enumerate(videos):
            vid = entry["id"]
            tokens, start, end = _tokens(rt, tokens_index["videos"][vid], vid, codebook)
            sentences = _sentences(rt, sentences_index["videos"].get(vid), tokenize, p.english_only)
            video = VideoInput(vid, tokens, start, end, sentences)
            stats.add_video(video, cfg)
            for ex in video_examples(video, cfg, pool):
                stats.add(ex)
                writers[ex.split].add(ex)
            if (i + 1) % 1000 == 0:
                say(f"{i + 1} of {len(videos)} videos")
        for w in writers.values():
            w.flush()
        shards = {name: info for w in writers.values() for name, info in w.shards.items()}
        content_hash = hashlib.sha256(canonical_json({"layout": LAYOUT_VERSION, "shards": shards}).encode()).hexdigest()
        doc = {
            "content_hash": content_hash,
            "layout": LAYOUT_VERSION,
            "codebook": codebook,
            "tokenizer": tokenizer_identity,
            "params": p.model_dump(mode="json"),
            "stats": stats.summary(),
            "shards": shards,
            "data_files": {s: f"{s}-*.parquet" for s in SPLITS},
        }
        write_json(folder / "corpus.json", doc)
        histogram_png(folder / "lengths.png", stats)
        for f in sorted(folder.iterdir()):
            rt.store.put_file(keys.dataset_artifact(CORPORA, content_hash, f.name), f)
        repo.register_corpus(rt.db, content_hash, codebook_hash=codebook, params=doc["params"], stats=doc["stats"],
                             store_prefix=keys.dataset_prefix(CORPORA, content_hash))
    say(f"corpus {content_hash[:16]}: {stats.summary()['examples']}")
    return doc


def histogram_png(path: Path, stats: CorpusStats, width: int = 480, height: int = 200) -> None:
    """A bar chart of example lengths (positions, buckets of `stats.bucket`), drawn with Pillow."""
    from PIL import Image, ImageDraw

    hist = sorted(stats.length_histogram.items())
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), f"example length (positions, bins of {stats.bucket})", fill="black")
    if hist:
        top = max(n for _, n in hist)
        bar = max(1, (width - 8) // len(hist))
        for i, (b, n) in enumerate(hist):
            h = int((height - 40) * n / top)
            x = 4 + i * bar
            draw.rectangle([x, height - 20 - h, x + bar - 2, height - 20], fill=(70, 110, 170))
            if i % max(1, len(hist) // 8) == 0:
                draw.text((x, height - 16), str(b), fill="black")
    img.save(path, format="PNG", optimize=False)


def read_index(path: Path, what: str, *fields: str) -> dict[str, Any]:
    """A JSON index written by a dataset stage (tokens, sentences); DatasetError when missing or malformed."""
    import json

    try:
        index = json.loads(Path(path).read_text())
        for f in fields:
            _ = index[f]
        return index
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{what} {path} cannot be read: {exc}") from None
