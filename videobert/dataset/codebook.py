"""The visual codebook of a manifest: its clip features gathered into one memory-mapped file (never all in
memory), fitted with hierarchical k-means (`videobert_model.visual_tokenizer`), saved in the `save_pretrained`
layout with quality figures, a picture per token and a gallery; registered in the database and copied to the
store under `codebooks/<content hash>/`."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videobert.core.errors import SettingsError
from videobert.core.fingerprint import canonical_json
from videobert.core.ids import is_hex
from videobert.core.params import CodebookParams, Params
from videobert.core.runtime import Runtime
from videobert.core.storage import install_folder, keys
from videobert.dataset import registry
from videobert.dataset.files import DatasetError, staged_dir, write_json, zip_write
from videobert.db import repository as repo
from videobert.features.clips import FrameReader, load_features
from videobert_model.visual_tokenizer import HKMeansConfig, VisualCodebook, agreement, fit_hierarchical_kmeans

log = logging.getLogger(__name__)

CODEBOOKS = "codebooks"  # the dataset kind in the store: codebooks/<content hash>/<file>
FULL_HASH_CHARS = 64  # a sha256 in hex
FIT_VERSION = "1"  # the fit's code version, part of the fit key: bump when the fit or its outputs change


def fit_key(manifest_hash: str, params: CodebookParams) -> str:
    """What a codebook fit depends on: the manifest, every codebook parameter and the fit's code version. A
    codebook registered with the same key is reused instead of fitted again (unless forced)."""
    return hashlib.sha256(canonical_json({"manifest": manifest_hash, "params": params.model_dump(mode="json"),
                                          "fit_version": FIT_VERSION}).encode()).hexdigest()


@dataclass
class Gathered:
    """Every clip feature of a manifest in one (n, dim) float32 memory map, with where each row came from."""

    data: np.ndarray  # np.memmap (n, dim) float32
    video: np.ndarray  # (n,) index into manifest["videos"]
    clip: np.ndarray  # (n,) clip index within its video


def gather_features(rt: Runtime, manifest: dict[str, Any], path: Path) -> Gathered:
    """Stream each video's features from the store into a memory-mapped file (one video in memory at a time)."""
    n, dim = int(manifest["clips"]), int(manifest["dim"])
    if n == 0:
        raise DatasetError("the manifest has no clips: run ingest (with features) on some videos first")
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    video = np.empty(n, dtype=np.int32)
    clip = np.empty(n, dtype=np.int32)
    row = 0
    for i, entry in enumerate(manifest["videos"]):
        feats = load_features(rt.store, entry["features"]["key"], verify=True)
        if feats.features.shape[1] != dim:
            raise DatasetError(f"video {entry['id']}: features of dimension {feats.features.shape[1]}, expected {dim}")
        m = len(feats)
        if row + m > n:
            raise DatasetError(f"video {entry['id']}: more clips than the manifest says ({m})")
        data[row : row + m] = feats.features.astype(np.float32)
        video[row : row + m] = i
        clip[row : row + m] = np.arange(m)
        row += m
    if row != n:
        raise DatasetError(f"the manifest says {n} clips but the features hold {row}")
    data.flush()
    return Gathered(data, video, clip)


def hkmeans_config(p: CodebookParams) -> HKMeansConfig:
    """The algorithm's configuration from the codebook parameters."""
    return HKMeansConfig(levels=p.levels, k=p.k, seed=p.seed, niter=p.niter, nredo=p.nredo,
                         max_points_per_centroid=p.max_points_per_centroid,
                         init_points_per_centroid=p.init_points_per_centroid)


def token_pictures(rt: Runtime, manifest: dict[str, Any], book: VisualCodebook, gathered: Gathered,
                   out_dir: Path) -> dict[str, Any]:
    """For each token, the middle frame of the training clip nearest to its centroid among the clips labelled
    with it (ties: the first in manifest order); found in one pass over the gathered features. Writes
    `pictures.zip` and returns the index and the token counts."""
    vocab = book.vocab_size
    tokens = book.label(gathered.data)
    dist = _leaf_distances(book, gathered.data, tokens)
    counts = np.bincount(tokens, minlength=vocab)
    order = np.lexsort((np.arange(len(tokens)), dist, tokens))
    first = order[np.r_[True, tokens[order][1:] != tokens[order][:-1]]]  # the nearest row of each used token
    best = np.full(vocab, np.inf, dtype=np.float64)
    best_video = np.full(vocab, -1, dtype=np.int64)
    best_clip = np.full(vocab, -1, dtype=np.int64)
    best[tokens[first]] = dist[first]
    best_video[tokens[first]] = gathered.video[first]
    best_clip[tokens[first]] = gathered.clip[first]
    pictures: dict[str, Any] = {}
    with zipfile.ZipFile(out_dir / "pictures.zip", "w") as z:
        for vi in sorted(set(best_video[best_video >= 0].tolist())):
            entry = manifest["videos"][vi]
            with rt.store.local_path(entry["frames"]["key"], verify=True) as frames_path, FrameReader(frames_path) as frames:
                for token in np.flatnonzero(best_video == vi):
                    zip_write(z, f"{int(token):06d}.jpg", frames.jpeg(int(best_clip[token])))
                    pictures[str(int(token))] = {"video": entry["id"], "clip": int(best_clip[token]),
                                                 "sq_distance": round(float(best[token]), 4)}
    return {"pictures": pictures, "counts": counts}


def _leaf_distances(book: VisualCodebook, data: np.ndarray, tokens: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """(n,) float64 squared distance of each row to its token's leaf centroid, row by row: equal rows get equal
    distances wherever they are (a matrix product's rounding depends on a row's place in its block, and the
    picture of a token is the first of its nearest clips only if ties are exact)."""
    leaves = book.leaf_centroids()
    out = np.empty(len(tokens), dtype=np.float64)
    for start in range(0, len(tokens), chunk):
        diff = np.asarray(data[start : start + chunk], dtype=np.float64) - leaves[tokens[start : start + chunk]]
        out[start : start + len(diff)] = np.einsum("nd,nd->n", diff, diff)
    return out


def gallery(out_dir: Path, counts: np.ndarray, pictures: dict[str, Any], n_tokens: int, tile: int) -> Path:
    """A PNG grid of the most frequent tokens' pictures, each captioned with its id and count."""
    from PIL import Image, ImageDraw

    shown = [int(t) for t in np.argsort(-counts, kind="stable")[:n_tokens] if counts[t] > 0 and str(int(t)) in pictures]
    cols = max(1, int(np.ceil(np.sqrt(len(shown))))) if shown else 1
    rows = max(1, int(np.ceil(len(shown) / cols)))
    caption = 14
    canvas = Image.new("RGB", (cols * tile, rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(canvas)
    with zipfile.ZipFile(out_dir / "pictures.zip") as z:
        for i, token in enumerate(shown):
            img = Image.open(io.BytesIO(z.read(f"{token:06d}.jpg"))).convert("RGB").resize((tile, tile))
            x, y = (i % cols) * tile, (i // cols) * (tile + caption)
            canvas.paste(img, (x, y))
            draw.text((x + 2, y + tile + 1), f"{token} ({counts[token]})", fill="black")
    path = out_dir / "gallery.png"
    canvas.save(path, format="PNG", optimize=False)
    return path


def build_codebook(
    rt: Runtime, manifest: dict[str, Any], params: Params, out_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> tuple[VisualCodebook, dict[str, Any]]:
    """Fit, save, illustrate, register and upload the codebook of `manifest` into `out_dir`.

    Everything is written into a temporary folder beside `out_dir` that replaces it only when the codebook is
    complete: a failed fit leaves `out_dir` as it was (or absent), never empty or half-written.
    """
    say = progress or (lambda msg: log.info(msg))
    cfg = hkmeans_config(params.codebook)
    with staged_dir(out_dir) as folder, rt.scratch("codebook") as tmp:
        say(f"gathering {manifest['clips']} clip features of {len(manifest['videos'])} videos")
        gathered = gather_features(rt, manifest, tmp / "features.npy")

        def node_progress(level: int, node: int, total: int) -> None:
            if node + 1 == total:
                say(f"level {level} of {cfg.levels}: {total} nodes fitted")

        book, stats = fit_hierarchical_kmeans(gathered.data, cfg, node_progress)
        n = len(gathered.data)
        rng = np.random.default_rng(cfg.seed)
        sample = np.sort(rng.choice(n, size=min(n, params.codebook.agreement_sample), replace=False))
        agree = agreement(book, np.asarray(gathered.data[sample]))
        metrics = {**stats.summary(), "tree_flat_agreement": agree, "agreement_sample": int(len(sample)),
                   "videos": len(manifest["videos"]), "vocab_size": book.vocab_size}
        manifest_sha = registry.content_hash(manifest)
        book.extra = {"manifest_sha256": manifest_sha, "extractor": manifest["extractor"]}
        book.save_pretrained(folder)
        say("finding each token's picture")
        found = token_pictures(rt, manifest, book, gathered, folder)
        del gathered  # release the memory map before its folder goes
        metrics["tokens_with_pictures"] = len(found["pictures"])
        write_json(folder / "pictures.json", found["pictures"])
        np.save(folder / "token_counts.npy", found["counts"])
        gallery(folder, found["counts"], found["pictures"], params.codebook.gallery_tokens,
                params.codebook.gallery_tile)
        write_json(folder / "metrics.json", metrics)
        content_hash = book.content_hash()
        for f in sorted(folder.iterdir()):
            if f.is_file():
                rt.store.put_file(keys.dataset_artifact(CODEBOOKS, content_hash, f.name), f)
        repo.register_codebook(rt.db, content_hash, levels=book.config.levels, k=book.config.k, dim=book.dim,
                               params=params.codebook.model_dump(mode="json"),
                               store_prefix=keys.dataset_prefix(CODEBOOKS, content_hash), metrics=metrics,
                               manifest_hash=manifest_sha, fit_key=fit_key(manifest_sha, params.codebook))
    return book, metrics


def reusable_codebook(rt: Runtime, manifest: dict[str, Any], params: Params) -> dict[str, Any] | None:
    """The registered codebook fitted on this manifest with these parameters and this code version, when every
    file of it is in the store; None when the fit has to run."""
    found = repo.codebook_by_fit_key(rt.db, fit_key(registry.content_hash(manifest), params.codebook))
    if found is None or not rt.store.exists(keys.dataset_artifact(CODEBOOKS, found["content_hash"], "config.json")):
        return None
    return found


def fetch_codebook(rt: Runtime, content_hash: str, out_dir: Path) -> dict[str, Any]:
    """Copy a registered codebook's folder (every file: centroids, pictures, gallery, metrics) from the store into
    `out_dir`, replaced only when complete; mark it the latest codebook; returns its metrics."""
    prefix = keys.dataset_prefix(CODEBOOKS, content_hash)
    names = [k[len(prefix):] for k in rt.store.list(prefix)]
    if "config.json" not in names:
        raise SettingsError(f"no codebook {content_hash} in {rt.store.describe()}")
    with staged_dir(out_dir) as folder:
        for name in names:
            rt.store.get_file(prefix + name, folder / name, verify=True)
    repo.touch_codebook(rt.db, content_hash)
    return json.loads((out_dir / "metrics.json").read_text()) if (out_dir / "metrics.json").exists() else {}


def load_codebook(rt: Runtime, ref: str | Path | None, manifest_hash: str | None = None) -> VisualCodebook:
    """A codebook from a local folder, or from the store (cached in the data folder) by content hash or a unique
    prefix of one; empty: the latest registered codebook (of those fitted on `manifest_hash` when given)."""
    given = str(ref or "").strip()
    if given:
        path = Path(given).expanduser()
        if path.is_dir():
            return VisualCodebook.from_pretrained(path)
        if not is_hex(given):
            raise SettingsError(f"codebook {path.resolve()} is not a folder (relative paths resolve against "
                                f"{Path.cwd()}), and {given!r} is not a content hash")
    if len(given) == FULL_HASH_CHARS:
        content_hash = given.lower()
    else:
        scope = f" fitted on manifest {manifest_hash[:16]}" if manifest_hash and not given else ""
        content_hash = repo.pick_version(repo.codebooks(rt.db, manifest_hash if not given else None), given or None,
                                         f"codebook{scope}", "fit one first (`videobert dataset codebook` or the "
                                         "codebook flow)")["content_hash"]
    cache = rt.cache_dir() / CODEBOOKS / content_hash
    if not (cache / "config.json").exists():
        names = [k.rsplit("/", 1)[1] for k in rt.store.list(keys.dataset_prefix(CODEBOOKS, content_hash))]
        if "config.json" not in names:
            raise SettingsError(f"no codebook {content_hash} in {rt.store.describe()} (and {ref} is not a folder)")

        def fill(tmp: Path) -> None:
            for name in names:
                if name.endswith(".npy") or name == "config.json":
                    rt.store.get_file(keys.dataset_artifact(CODEBOOKS, content_hash, name), tmp / name, verify=True)

        install_folder(cache, fill, complete=lambda f: (f / "config.json").exists())
    return VisualCodebook.from_pretrained(cache)
