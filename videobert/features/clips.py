"""Clip features of one video: decode into clips, run the extractor in batches, keep each clip's middle frame.

Outputs of the `features` stage, under `videos/<id>/features/`:

* `features.npz` — `features` (N, dim) float16 (or float32), `start` / `end` (N,) seconds, `real_frames`
  (N,) frames decoded for each clip (less than frames_per_clip for a padded last clip), and `meta`, a JSON
  string (extractor, its identity, sampling).
* `frames.zip` — the middle frame of every clip as `<index:06d>.jpg`, stored uncompressed in one ZIP so that
  any frame can be read by clip index without unpacking the others.
"""

from __future__ import annotations

import io
import json
import queue
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from videobert.core.params import FeaturesParams
from videobert.features.decode import Clip, DecodeReport, Sampling, iter_clips
from videobert.features.extractors import BaselineExtractor, ClipExtractor, TFHubExtractor

T = TypeVar("T")

if TYPE_CHECKING:
    from videobert.core.settings import Settings
    from videobert.core.storage import ArtifactStore


def sampling_of(params: FeaturesParams) -> Sampling:
    """The decoder's sampling for these parameters."""
    return Sampling(params.fps, params.frames_per_clip, params.frame_size, params.partial_clip, params.decoder_threads)


def make_extractor(params: FeaturesParams, settings: Settings) -> ClipExtractor:
    """The extractor `params.extractor` names, built with the sampling parameters."""
    common = (params.fps, params.frames_per_clip, params.frame_size, params.batch_size)
    if params.extractor == "baseline":
        return BaselineExtractor(*common)
    if params.extractor == "efficientnet":
        from videobert.features.efficientnet import EfficientNetExtractor

        return EfficientNetExtractor(*common, frames_sampled=params.frames_per_clip_sampled, pooling=params.clip_pooling,
                                     change_weight=params.change_weight, track_weight=params.track_weight,
                                     weights=settings.efficientnet_weights, threads=settings.torch_threads,
                                     device=settings.torch_device)
    cache = str(settings.tfhub_cache_dir) if settings.tfhub_cache_dir else None
    if params.extractor == "s3d":
        return TFHubExtractor("s3d", settings.s3d_handle, *common, output=params.s3d_output, cache_dir=cache)
    return TFHubExtractor("i3d", settings.i3d_handle, *common, pool_tensor=params.i3d_pool_tensor, cache_dir=cache)


@dataclass
class ClipFeatures:
    """A video's clip features as stored."""

    features: np.ndarray  # (N, dim)
    start: np.ndarray  # (N,) seconds
    end: np.ndarray  # (N,) seconds
    real_frames: np.ndarray  # (N,)
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.features.shape[0])


def _jpeg(frame: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class _Raised:
    """An exception of the producer thread, carried to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """The items of `items`, produced by a background thread up to `depth` ahead, so that decoding the next clips
    overlaps the extractor's work on these (PyAV and torch/TensorFlow release the GIL). Exceptions reach the
    consumer at the item where they happened; a consumer that stops early stops the thread, which closes `items`."""
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    end = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # noqa: BLE001 - carried to the consumer, which raises it
            put(_Raised(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="clip-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


def _batches(clips: Iterator[Clip], size: int) -> Iterator[list[Clip]]:
    batch: list[Clip] = []
    for clip in clips:
        batch.append(clip)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def extract_video(
    video: Path, extractor: ClipExtractor, params: FeaturesParams, out_dir: Path, report: DecodeReport | None = None
) -> tuple[Path, Path, int]:
    """Write `features.npz` and `frames.zip` for `video` into `out_dir`; returns their paths and the clip count.

    With a `report`, a video that stops decoding part-way keeps the clips before the damage (see
    videobert.decode.iter_frames); without one it raises CorruptVideoError.
    """
    sampling = sampling_of(params)
    feats: list[np.ndarray] = []
    starts: list[float] = []
    ends: list[float] = []
    real: list[int] = []
    frames_path = out_dir / "frames.zip"
    mid = params.frames_per_clip // 2
    with zipfile.ZipFile(frames_path, "w", compression=zipfile.ZIP_STORED) as frames_zip:
        # one batch decoded ahead while the extractor runs on this one
        for batch in _batches(prefetched(iter_clips(video, sampling, report), extractor.batch_size), extractor.batch_size):
            stack = np.stack([c.frames for c in batch])  # (B, T, S, S, 3) uint8
            out = extractor.extract(stack)
            if out.shape != (len(batch), extractor.dim):
                raise ValueError(f"{extractor.name} returned shape {out.shape}, expected ({len(batch)}, {extractor.dim})")
            feats.append(out.astype(params.dtype))
            for c in batch:
                starts.append(c.start)
                ends.append(c.end)
                real.append(c.real_frames)
                # the middle of the real frames (a padded clip's middle may be a repeat)
                frames_zip.writestr(f"{c.index:06d}.jpg", _jpeg(c.frames[min(mid, c.real_frames // 2)], params.frame_jpeg_quality))
    features = np.concatenate(feats) if feats else np.zeros((0, extractor.dim), dtype=params.dtype)
    meta = {
        "extractor": extractor.name, "identity": extractor.identity(), "dim": extractor.dim,
        "fps": params.fps, "frames_per_clip": params.frames_per_clip, "frame_size": params.frame_size,
        "partial_clip": params.partial_clip, "dtype": params.dtype,
    }
    features_path = out_dir / "features.npz"
    np.savez(
        features_path, features=features, start=np.asarray(starts, np.float32), end=np.asarray(ends, np.float32),
        real_frames=np.asarray(real, np.int16), meta=np.asarray(json.dumps(meta)),
    )
    return features_path, frames_path, len(starts)


def read_features(data: bytes) -> ClipFeatures:
    """Parse a stored `features.npz`."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return ClipFeatures(z["features"], z["start"], z["end"], z["real_frames"], json.loads(str(z["meta"])))


def load_features(store: ArtifactStore, key: str, verify: bool = True) -> ClipFeatures:
    """Read a video's features from the store."""
    return read_features(store.get_bytes(key, verify=verify))


class FrameReader:
    """Random access to the middle frames of one video by clip index."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path)

    def __len__(self) -> int:
        return len(self._zip.namelist())

    def jpeg(self, index: int) -> bytes:
        """The JPEG bytes of clip `index`'s middle frame."""
        try:
            return self._zip.read(f"{index:06d}.jpg")
        except KeyError:
            raise IndexError(f"no frame for clip {index} (the video has {len(self)} clips)") from None

    def image(self, index: int) -> np.ndarray:
        """Clip `index`'s middle frame as uint8 (H, W, 3)."""
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(self.jpeg(index))).convert("RGB"))

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
