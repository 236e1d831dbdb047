"""Dataset stages over the finished videos: the manifest, the visual codebook, and each video's tokens.

* manifest — every video whose `features` stage is done with the current parameters, with the key and
  sha256 of its features and frames (sorted by id: the same videos give the same bytes).
* codebook — the features of the manifest, gathered into one memory-mapped file (never all in memory),
  fitted with hierarchical k-means (`videobert_model.visual_tokenizer`), saved in the `save_pretrained`
  layout with quality figures, a picture per token and a gallery; registered in the database and copied to the
  store under `codebooks/<content hash>/`.
* tokens — a per-video stage: features -> token ids with clip times, fingerprinted with the codebook hash.

Every output is deterministic (sorted JSON, fixed ZIP timestamps), so `dvc repro` on the same inputs gives
the same bytes.
"""

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

from videobert.db import repository as repo
from videobert.db.models import Codebook as CodebookRow
from videobert.db.models import StageStatus
from videobert.errors import PermanentStageError, SettingsError
from videobert.features import FrameReader, load_features
from videobert.fingerprint import canonical_json, stage_fingerprint
from videobert.ingest import FEATURES_ARTIFACT, FRAMES_ARTIFACT, features_fingerprint, run_stage, stage_input
from videobert.params import CodebookParams, Params
from videobert.runtime import Runtime
from videobert.stages import StageOptions, StageOutput, StageResult, StageSpec
from videobert.storage import keys
from videobert_model.visual_tokenizer import HKMeansConfig, VisualCodebook, agreement, fit_hierarchical_kmeans

log = logging.getLogger(__name__)

TOKENS = StageSpec("tokens", "1")
TOKENS_ARTIFACT = "tokens"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry times: equal contents give equal bytes


class DatasetError(PermanentStageError):
    """The inputs of a dataset stage are not usable (no videos, mixed extractors ...)."""


# --- manifest --------------------------------------------------------------------------------------------


def build_manifest(rt: Runtime, params: Params) -> dict[str, Any]:
    """The videos whose features are done and current, with their artifacts; stale ones are listed apart."""
    views = repo.stage_views(rt.db, ["features"])
    done = {vid: v for (vid, _), v in views.items() if v.status == StageStatus.DONE}
    downloads = repo.stage_views(rt.db, ["download"], sorted(done))
    videos, stale = [], []
    for vid in sorted(done):
        view = done[vid]
        dview = downloads.get((vid, "download"))
        if dview is None or dview.status != StageStatus.DONE:
            stale.append(vid)
            continue
        if view.fingerprint != features_fingerprint(rt, params, dview.artifact("video").sha256):
            stale.append(vid)  # made with other features parameters or another extractor: re-run ingest
            continue
        videos.append({
            "id": vid,
            "clips": int(view.outcome.get("clips", 0)),
            "features": view.artifacts[FEATURES_ARTIFACT],
            "frames": view.artifacts[FRAMES_ARTIFACT],
        })
    extractor = rt.extractor(params.features)
    return {
        "extractor": extractor.identity(),
        "dim": extractor.dim,
        "features_params": params.features.model_dump(mode="json", exclude={"batch_size", "decoder_threads"}),
        "videos": videos,
        "clips": sum(v["clips"] for v in videos),
        "stale": stale,
    }


def write_json(path: Path, value: Any) -> None:
    """Sorted, indented JSON with a final newline, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest written by build_manifest; DatasetError when it is missing or malformed."""
    try:
        manifest = json.loads(Path(path).read_text())
        _ = manifest["videos"], manifest["dim"]
        return manifest
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"manifest {path} cannot be read: {exc}") from None


# --- gathering features ---------------------------------------------------------------------------------


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


# --- codebook ---------------------------------------------------------------------------------------------


def hkmeans_config(p: CodebookParams) -> HKMeansConfig:
    """The algorithm's configuration from the codebook parameters."""
    return HKMeansConfig(levels=p.levels, k=p.k, seed=p.seed, niter=p.niter, nredo=p.nredo,
                         max_points_per_centroid=p.max_points_per_centroid,
                         init_points_per_centroid=p.init_points_per_centroid)


def _zip_write(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    z.writestr(info, data)


def token_pictures(rt: Runtime, manifest: dict[str, Any], book: VisualCodebook, gathered: Gathered,
                   out_dir: Path) -> dict[str, Any]:
    """For each token, the middle frame of the training clip nearest to its centroid among the clips labelled
    with it (ties: the first in manifest order); found in one pass over the gathered features. Writes
    `pictures.zip` and returns the index and the token counts."""
    vocab = book.vocab_size
    tokens, dist = book.label_with_distance(gathered.data)
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
                    _zip_write(z, f"{int(token):06d}.jpg", frames.jpeg(int(best_clip[token])))
                    pictures[str(int(token))] = {"video": entry["id"], "clip": int(best_clip[token]),
                                                 "sq_distance": round(float(best[token]), 4)}
    return {"pictures": pictures, "counts": counts}


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
    """Fit, save, illustrate, register and upload the codebook of `manifest` into `out_dir`."""
    say = progress or (lambda msg: log.info(msg))
    cfg = hkmeans_config(params.codebook)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.iterdir():
        if stale.is_file():
            stale.unlink()
    with rt.scratch("codebook") as tmp:
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
        manifest_sha = hashlib.sha256(canonical_json(manifest).encode()).hexdigest()
        book.extra = {"manifest_sha256": manifest_sha, "extractor": manifest["extractor"]}
        book.save_pretrained(out_dir)
        say("finding each token's picture")
        found = token_pictures(rt, manifest, book, gathered, out_dir)
        del gathered  # release the memory map before its folder goes
    metrics["tokens_with_pictures"] = len(found["pictures"])
    write_json(out_dir / "pictures.json", found["pictures"])
    np.save(out_dir / "token_counts.npy", found["counts"])
    gallery(out_dir, found["counts"], found["pictures"], params.codebook.gallery_tokens, params.codebook.gallery_tile)
    write_json(out_dir / "metrics.json", metrics)
    content_hash = book.content_hash()
    prefix = f"codebooks/{content_hash}"
    for f in sorted(out_dir.iterdir()):
        if f.is_file():
            rt.store.put_file(keys.dataset_artifact("codebooks", content_hash, f.name), f)
    _register(rt, book, params.codebook, metrics, prefix)
    return book, metrics


def _register(rt: Runtime, book: VisualCodebook, params: CodebookParams, metrics: dict[str, Any], prefix: str) -> None:
    from sqlalchemy import select

    with rt.db.session() as s:
        row = s.scalars(select(CodebookRow).where(CodebookRow.content_hash == book.content_hash())).one_or_none()
        if row is None:
            s.add(CodebookRow(content_hash=book.content_hash(), levels=book.config.levels, k=book.config.k,
                              dim=book.dim, params=params.model_dump(mode="json"), store_prefix=prefix, metrics=metrics))
        else:
            row.metrics = metrics


def load_codebook(rt: Runtime, ref: str | Path) -> VisualCodebook:
    """A codebook from a local folder, or from the store by content hash (cached in the data folder)."""
    path = Path(ref)
    if path.is_dir():
        return VisualCodebook.from_pretrained(path)
    content_hash = str(ref)
    cache = rt.cache_dir() / "codebooks" / content_hash
    if not (cache / "config.json").exists():
        names = [k.rsplit("/", 1)[1] for k in rt.store.list(f"codebooks/{content_hash}/")]
        if "config.json" not in names:
            raise SettingsError(f"no codebook {content_hash} in {rt.store.describe()} (and {ref} is not a folder)")
        for name in names:
            if name.endswith(".npy") or name == "config.json":
                rt.store.get_file(keys.dataset_artifact("codebooks", content_hash, name), cache / name, verify=True)
    return VisualCodebook.from_pretrained(cache)


# --- tokens, per video ---------------------------------------------------------------------------------------


def tokens_fingerprint(features_sha256: str, codebook_hash: str) -> str:
    """Depends on the video's features and the codebook."""
    return stage_fingerprint(TOKENS.name, TOKENS.version, {"codebook": codebook_hash}, {"features": features_sha256})


def run_tokens(rt: Runtime, video_id: str, book: VisualCodebook, opts: StageOptions = StageOptions()) -> StageResult:
    """Label one video's clips: `videos/<id>/tokens/tokens.json` ({codebook, tokens, start, end})."""
    info = stage_input(rt, video_id, TOKENS, "features", FEATURES_ARTIFACT)
    if isinstance(info, StageResult):
        return info
    codebook_hash = book.content_hash()
    fp = tokens_fingerprint(info.sha256, codebook_hash)

    def body(_claim: repo.Claim) -> StageOutput:
        feats = load_features(rt.store, info.key, verify=True)
        if len(feats) and feats.features.shape[1] != book.dim:
            raise DatasetError(f"features of dimension {feats.features.shape[1]} but the codebook expects {book.dim}")
        tokens = book.label(feats.features.astype(np.float32)) if len(feats) else np.zeros(0, np.int64)
        doc = {"codebook": codebook_hash, "tokens": tokens.tolist(),
               "start": [round(float(x), 4) for x in feats.start], "end": [round(float(x), 4) for x in feats.end]}
        stored = rt.store.put_json(keys.video_artifact(video_id, TOKENS.name, "tokens.json"), doc)
        return StageOutput({TOKENS_ARTIFACT: stored}, {"clips": len(tokens), "codebook": codebook_hash,
                                                        "distinct_tokens": int(len(set(tokens.tolist())))})

    return run_stage(rt, video_id, TOKENS, fp, body, opts)


def tokens_todo(rt: Runtime, manifest: dict[str, Any], codebook_hash: str, force: bool = False) -> list[str]:
    """The manifest videos whose tokens are not done with these features and this codebook (decided from the
    database alone, before any task is submitted)."""
    ids = [v["id"] for v in manifest["videos"]]
    views = repo.stage_views(rt.db, [TOKENS.name], ids)
    todo = []
    for v in manifest["videos"]:
        view = views.get((v["id"], TOKENS.name))
        fp = tokens_fingerprint(v["features"]["sha256"], codebook_hash)
        if force or view is None or view.status != StageStatus.DONE or view.fingerprint != fp:
            todo.append(v["id"])
    return todo


def tokens_index(rt: Runtime, manifest: dict[str, Any], codebook_hash: str) -> dict[str, Any]:
    """Where every manifest video's tokens are (for the DVC `tokens` stage's output), checked against the codebook."""
    ids = [v["id"] for v in manifest["videos"]]
    views = repo.stage_views(rt.db, [TOKENS.name], ids)
    out: dict[str, Any] = {"codebook": codebook_hash, "videos": {}, "missing": []}
    for vid in ids:
        view = views.get((vid, TOKENS.name))
        if view is None or view.status != StageStatus.DONE or view.outcome.get("codebook") != codebook_hash:
            out["missing"].append(vid)
            continue
        out["videos"][vid] = {**view.artifacts[TOKENS_ARTIFACT], "clips": view.outcome.get("clips")}
    return out
