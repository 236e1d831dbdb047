"""Clip feature extractors behind one interface: a weight-free CPU baseline, and TF-Hub S3D / I3D.

Every extractor takes a batch of clips, uint8 RGB (B, T, H, W, 3), and returns float32 (B, dim).

* `baseline` — colour histograms, spatial colour layout, texture and motion energy of each clip, and the
  foreground's colour, shape and motion (which way it moves, back and forth or not, growing or squashed,
  turning). It needs no weights and runs fast on a CPU; it is a stand-in for development, tests and the demo,
  not a replacement for S3D: its tokens mean "looks and moves alike", not "same action".
* `s3d` — TF-Hub `deepmind/mil-nce/s3d/1` (S3D trained on HowTo100M with MIL-NCE, the closest public model
  to the paper's S3D): the 1024-d `mixed_5c` output of its `video` signature, which is already averaged over
  time and space.
* `i3d` — TF-Hub `deepmind/i3d-kinetics-600/1`: its `default` signature gives the 600 class logits, which are
  not features (the public reproduction's mistake). The extractor prunes the signature's graph to the last
  Inception block (`Mixed_5c`, 1024 channels) and averages it over time and space: the pooled 1024-d
  feature that feeds the classifier.

TF-Hub handles resolve through `TFHUB_CACHE_DIR` (`<cache>/<sha1 of the handle>`), so a pre-filled cache
works offline; a local SavedModel directory works too. TensorFlow uses a GPU when it sees one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from videobert.core.errors import SettingsError

log = logging.getLogger(__name__)


class ClipExtractor(ABC):
    """Turns clips into feature vectors."""

    name: str  # recorded with the features and in fingerprints
    dim: int  # output dimension
    fps: float  # frame rate the clips are sampled at
    frames_per_clip: int
    frame_size: int  # square side, pixels
    batch_size: int  # clips per call

    @abstractmethod
    def identity(self) -> str:
        """What identifies the extractor's behaviour (weights hash, code version), for fingerprints."""

    @abstractmethod
    def extract(self, clips: np.ndarray) -> np.ndarray:
        """(B, T, H, W, 3) uint8 -> (B, dim) float32."""

    def device(self) -> str:
        """Where the extractor runs."""
        return "cpu"


# --- baseline ----------------------------------------------------------------------------------------------


class BaselineExtractor(ClipExtractor):
    """Colour, layout, texture and motion statistics per clip, and how its foreground moves (no weights).

    A baseline, not S3D. The first 128 values are whole-picture statistics (v1): colour histograms, a colour
    layout, motion energy per cell and over time, texture. The foreground block (v2) follows what differs in
    colour from the picture's border (the background, estimated per clip as the border pixels' median colour):
    its mean colour, size and elongation, and over the clip's frames its centroid's velocity and back-and-forth
    travel, its area's and elongation's change, its rotation (the change of its principal axis) and how much its
    pixels change. Without it, a clip of an object sliding and one of the same object lifted look alike (same
    colours, similar motion energy); with it they differ in which way the centroid goes.
    """

    VERSION = "2"
    HIST_BINS = 16  # per RGB channel
    GRID = 4  # layout and motion grid, cells per side
    TIME_SEGMENTS = 8  # motion energy over time
    TEXTURE_CELLS = 8  # 2 x 4 grid of gradient energy
    # the foreground block, in order (see `_foreground`): its look, then the motion figures (MOTION_UNITS)
    FOREGROUND_NAMES = ("red", "green", "blue", "size", "elongation",
                        "velocity_x", "velocity_y", "travel_x", "travel_y", "back_and_forth_x", "back_and_forth_y",
                        "area_rate", "area_travel", "elongation_travel", "turn", "pixel_change")
    FOREGROUND_DIMS = len(FOREGROUND_NAMES)
    # A pixel is foreground by its RGB distance (0..sqrt(3)) from the border colour: none below the first
    # value, fully above the second, linearly between (board grain and video noise stay below it).
    FOREGROUND_RAMP = (0.12, 0.24)
    BORDER = 2  # border width of the subsampled picture used for the background colour, pixels
    # Rates of change are measured over this many seconds (3 frames at 20 fps): frame-to-frame steps of the
    # foreground's outline are mostly pixel noise.
    TRAVEL_LAG_S = 0.15
    # Units of the motion figures (per second; positions in picture sides, angles in radians, areas as logs),
    # about a third of what an object moved by hand shows; each figure x becomes sign(x) log(1 + |x| / unit).
    MOTION_UNITS = (0.05, 0.05, 0.05, 0.05, 0.05, 0.05,  # centroid velocity x, y; travel x, y; back-and-forth x, y
                    0.1, 0.1,  # log area: rate, travel
                    0.15,  # elongation travel
                    1.0,  # turn of the principal axis, either way
                    0.2)  # mean |gray change| of the foreground's pixels
    ROUND_SHAPE = 0.2  # mean elongation below which rotation figures fade out: a round shape has no axis to follow
    FOREGROUND_GAIN = 2.0  # weight of the foreground block against the whole-picture statistics

    def __init__(self, fps: float, frames_per_clip: int, frame_size: int, batch_size: int = 32) -> None:
        self.name = "baseline-colour-motion"
        self.fps, self.frames_per_clip, self.frame_size, self.batch_size = fps, frames_per_clip, frame_size, batch_size
        self.dim = (3 * self.HIST_BINS + 3 * self.GRID**2 + self.GRID**2 + self.TIME_SEGMENTS + self.TEXTURE_CELLS
                    + self.FOREGROUND_DIMS)

    def identity(self) -> str:
        return f"{self.name}:v{self.VERSION}"

    def extract(self, clips: np.ndarray) -> np.ndarray:
        b, t, h, w, _ = clips.shape
        # Work on a 4x-subsampled copy: the statistics do not need full resolution. (B, T, h, w, 3) float32
        x = clips[:, :, ::4, ::4, :].astype(np.float32) / 255.0
        hs, ws = x.shape[2], x.shape[3]
        # 1. colour histogram over the whole clip, per channel, normalised: (B, 3 * bins)
        idx = np.minimum((x * self.HIST_BINS).astype(np.int32), self.HIST_BINS - 1)
        hist = np.zeros((b, 3, self.HIST_BINS), np.float32)
        for c in range(3):
            flat = idx[..., c].reshape(b, -1) + np.arange(b)[:, None] * self.HIST_BINS
            hist[:, c] = np.bincount(flat.ravel(), minlength=b * self.HIST_BINS).reshape(b, -1)
        hist /= hist.sum(axis=2, keepdims=True)
        # 2. spatial layout: mean colour of each grid cell of the middle frame: (B, 3 * g * g)
        g = self.GRID
        mid = x[:, t // 2, : hs // g * g, : ws // g * g]
        layout = mid.reshape(b, g, hs // g, g, ws // g, 3).mean(axis=(2, 4)).reshape(b, -1)
        # 3. motion energy per grid cell: mean |frame difference| over the clip: (B, g * g)
        gray = x.mean(axis=4)  # (B, T, hs, ws)
        diff = np.abs(np.diff(gray, axis=1)) if t > 1 else np.zeros_like(gray)
        d = diff[:, :, : hs // g * g, : ws // g * g]
        motion = d.reshape(b, d.shape[1], g, hs // g, g, ws // g).mean(axis=(1, 3, 5)).reshape(b, -1)
        # 4. motion over time: mean |difference| in TIME_SEGMENTS equal parts of the clip: (B, segments)
        per_step = diff.mean(axis=(2, 3))  # (B, T-1)
        segments = np.array_split(np.arange(per_step.shape[1]), self.TIME_SEGMENTS)
        temporal = np.stack([per_step[:, s].mean(axis=1) if len(s) else np.zeros(b, np.float32)
                             for s in segments], axis=1)
        # 5. texture: gradient energy of the middle frame in a 2 x 4 grid: (B, 8)
        mg = gray[:, t // 2]
        gy, gx = np.abs(np.diff(mg, axis=1))[:, :, :-1], np.abs(np.diff(mg, axis=2))[:, :-1, :]
        energy = gx + gy
        eh, ew = energy.shape[1] // 2 * 2, energy.shape[2] // 4 * 4
        texture = energy[:, :eh, :ew].reshape(b, 2, eh // 2, 4, ew // 4).mean(axis=(2, 4)).reshape(b, -1)
        # 6. the foreground and how it moves: (B, FOREGROUND_DIMS)
        fg = self._foreground(x, diff)
        out = np.concatenate([hist.reshape(b, -1), layout, motion * 4, temporal * 4, texture * 4,
                              fg * self.FOREGROUND_GAIN], axis=1)
        return out.astype(np.float32)

    def _foreground(self, x: np.ndarray, diff: np.ndarray) -> np.ndarray:
        """The foreground block of clips `x` (B, T, h, w, 3) in [0, 1], given their |gray difference| `diff`
        (B, T-1, h, w). Positions are in picture sides from the top left (y down), times in seconds."""
        b, t, hs, ws, _ = x.shape
        eps = 1e-6
        k = self.BORDER
        # background: the median colour of the border pixels of the first, middle and last frames, (B, 3)
        edge = x[:, [0, t // 2, t - 1]]
        ring = np.concatenate([edge[:, :, :k].reshape(b, -1, 3), edge[:, :, -k:].reshape(b, -1, 3),
                               edge[:, :, k:-k, :k].reshape(b, -1, 3), edge[:, :, k:-k, -k:].reshape(b, -1, 3)], axis=1)
        background = np.median(ring, axis=1)
        sq = np.zeros((b, t, hs, ws), np.float32)
        for c in range(3):  # channel by channel: a third of the temporary memory and time of one broadcast
            dc = x[..., c] - background[:, c, None, None, None]
            sq += dc * dc
        dist = np.sqrt(sq)  # RGB distance from the background (B, T, h, w)
        lo, hi = self.FOREGROUND_RAMP
        wgt = np.clip((dist - lo) / (hi - lo), 0.0, 1.0)
        # moments from the row and column sums (one pass over the pixels each): positions in picture sides
        py = (np.arange(hs, dtype=np.float32) + 0.5) / hs
        px = (np.arange(ws, dtype=np.float32) + 0.5) / ws
        rows, cols = wgt.sum(axis=3), wgt.sum(axis=2)  # (B, T, h), (B, T, w)
        mass = rows.sum(axis=2) + eps  # (B, T)
        area = mass / (hs * ws)  # share of the picture
        cx, cy = cols @ px / mass, rows @ py / mass  # centroid (B, T)
        mu20 = cols @ px**2 / mass - cx**2  # central second moments
        mu02 = rows @ py**2 / mass - cy**2
        mu11 = (wgt @ px) @ py / mass - cx * cy
        theta = 0.5 * np.arctan2(2 * mu11, mu20 - mu02)  # principal axis, radians in (-pi/2, pi/2]
        elong = np.sqrt((mu20 - mu02) ** 2 + 4 * mu11**2) / (mu20 + mu02 + eps)  # 0 round .. 1 a line
        colour = np.matmul(wgt.reshape(b, 1, -1), x.reshape(b, -1, 3))[:, 0] / mass.sum(axis=1)[:, None]  # mean (B, 3)

        fps = self.fps
        moving = np.zeros((b, len(self.MOTION_UNITS)), np.float32)
        if t > 1:
            tc = np.arange(t, dtype=np.float32) / fps
            tc -= tc.mean()
            lag = min(t - 1, max(1, round(self.TRAVEL_LAG_S * fps)))

            def slope(series: np.ndarray) -> np.ndarray:  # least-squares rate of change, per second: (B,)
                return (series * tc).sum(axis=1) / (tc**2).sum()

            def steps(series: np.ndarray) -> np.ndarray:  # change over `lag` frames: (B, T - lag)
                return series[:, lag:] - series[:, :-lag]

            def travel(series: np.ndarray) -> np.ndarray:  # mean |change| per second, over `lag` frames: (B,)
                return np.abs(steps(series)).mean(axis=1) * fps / lag

            vx, vy = slope(cx), slope(cy)
            tx, ty = travel(cx), travel(cy)
            log_area = np.log(area + 1e-4)  # floored: a clip with no foreground
            turn = (steps(theta) + np.pi / 2) % np.pi - np.pi / 2  # change of the axis (an axis turns by pi at most)
            sure = np.minimum(elong[:, lag:], elong[:, :-lag])  # an axis is only as sure as the shape is elongated
            # radians per second, weighted by that sureness and faded out for round shapes
            fade = np.minimum(1.0, sure.mean(axis=1) / self.ROUND_SHAPE) * fps / lag / (sure.sum(axis=1) + eps)
            inside = np.maximum(wgt[:, 1:], wgt[:, :-1])
            change = (diff * inside).sum(axis=(1, 2, 3)) / (inside.sum(axis=(1, 2, 3)) + eps)
            raw = np.stack([
                vx, vy, tx, ty, tx - np.abs(vx), ty - np.abs(vy),  # centroid: velocity, travel, back-and-forth
                slope(log_area), travel(log_area),  # growing or shrinking, and pulsing
                travel(elong),  # squashing and stretching
                (np.abs(turn) * sure).sum(axis=1) * fade,  # rotation, either way
                change * fps,  # how much the foreground's own pixels change, per second
            ], axis=1)
            # sign(x) log(1 + |x| / unit): about 1 at a typical hand motion's size, slowly growing beyond
            moving = np.sign(raw) * np.log1p(np.abs(raw) / np.array(self.MOTION_UNITS, np.float32))
        # size (the side of a square of the same area, x 4: a quarter of the picture reads 1) and elongation (x 2);
        # colour x 2: a step across the colours of the objects weighs about one motion unit
        shape = np.stack([np.sqrt(area.mean(axis=1)) * 4, elong.mean(axis=1) * 2], axis=1)
        out = np.concatenate([colour * 2, shape, moving], axis=1)
        return out.astype(np.float32)


# --- TF-Hub ------------------------------------------------------------------------------------------------


def tfhub_cache_path(handle: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where tensorflow_hub looks for `handle` in its cache: `<cache>/<sha1 hex of the handle>`."""
    cache = Path(cache_dir or os.environ.get("TFHUB_CACHE_DIR") or Path(os.environ.get("TMPDIR", "/tmp")) / "tfhub_modules")
    return cache / hashlib.sha1(handle.encode("utf8")).hexdigest()


def _weights_hash(folder: Path) -> str:
    """sha256 over a SavedModel's graph and variable files (names, sizes and the graph's bytes)."""
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = f.relative_to(folder).as_posix()
        digest.update(rel.encode() + str(f.stat().st_size).encode())
        if f.name in {"saved_model.pb", "tfhub_module.pb"} or f.name.endswith(".index"):
            digest.update(f.read_bytes())
    return digest.hexdigest()


def _call(fn: Any, x: Any) -> Any:
    """Call a signature with its single input, by keyword when it has one (TF2) or positionally (TF1)."""
    args, kwargs = fn.structured_input_signature
    if kwargs:
        return fn(**{next(iter(kwargs)): x})
    return fn(x)


class TFHubExtractor(ClipExtractor):
    """A TF-Hub video model (S3D or I3D) loaded with tensorflow_hub from a handle or a local directory."""

    def __init__(
        self, kind: str, handle: str, fps: float, frames_per_clip: int, frame_size: int, batch_size: int,
        output: str | None = None, pool_tensor: str | None = None, cache_dir: str | None = None,
    ) -> None:
        if kind not in {"s3d", "i3d"}:
            raise SettingsError(f"unknown TF-Hub extractor kind {kind!r}: use s3d or i3d")
        self.kind, self.handle = kind, handle
        self.fps, self.frames_per_clip, self.frame_size, self.batch_size = fps, frames_per_clip, frame_size, batch_size
        self.output = output or ("mixed_5c" if kind == "s3d" else None)
        self.pool_tensor = pool_tensor
        self.cache_dir = cache_dir
        self._fn: Any = None
        self._path: Path | None = None
        self._identity: str | None = None
        self.dim = 1024
        self.name = f"tfhub-{kind}"

    # loading ---------------------------------------------------------------------------------------------

    def _resolve(self) -> Path:
        if Path(self.handle).is_dir():
            return Path(self.handle)
        if self.cache_dir:
            os.environ["TFHUB_CACHE_DIR"] = str(self.cache_dir)
        import tensorflow_hub as hub

        try:
            return Path(hub.resolve(self.handle))
        except Exception as exc:  # network errors come in many types from urllib and TF's file system
            target = tfhub_cache_path(self.handle, self.cache_dir)
            raise SettingsError(
                f"TF-Hub model {self.handle} cannot be had ({type(exc).__name__}: {str(exc)[:200]}). To work "
                f"offline, pre-fill the cache: download {self.handle}?tf-hub-format=compressed on a machine "
                f"with network and extract it into {target} (TFHUB_CACHE_DIR/<sha1 of the handle>), or set "
                "the handle to a local SavedModel directory"
            ) from None

    def _load(self) -> Any:
        if self._fn is not None:
            return self._fn
        import tensorflow as tf
        import tensorflow_hub as hub

        self._path = self._resolve()
        module = hub.load(str(self._path))
        if self.kind == "s3d":
            if "video" not in module.signatures:
                raise SettingsError(f"{self.handle} has no 'video' signature (signatures: {list(module.signatures)})")
            sig = module.signatures["video"]

            def run(x: Any) -> Any:
                out = _call(sig, x)
                if self.output not in out:
                    raise SettingsError(f"{self.handle} has no output {self.output!r} (outputs: {sorted(out)})")
                return out[self.output]

            self._fn = run
        else:
            pruned = self._prune_to_pool(module)

            def run(x: Any) -> Any:
                act = pruned(x)
                if isinstance(act, (list, tuple)):
                    act = act[0]
                # (B, T', H', W', 1024) -> (B, 1024): average over time and space
                return tf.reduce_mean(act, axis=list(range(1, len(act.shape) - 1)))

            self._fn = run
        gpus = tf.config.list_physical_devices("GPU")
        log.info("%s loaded from %s (%s)", self.name, self._path, "GPU" if gpus else "CPU")
        return self._fn

    def _prune_to_pool(self, module: Any) -> Any:
        """A function from the model's input frames to its Mixed_5c activations (I3D's last block).

        TF-Hub's I3D is a TF1 Hub module: `hub.load` exposes its whole graph (`module.graph`) and a
        `module.prune(feeds, fetches)` that cuts a function out of it.
        """
        if not (hasattr(module, "prune") and hasattr(module, "graph")):
            raise SettingsError(f"{self.handle} is not a TF1 Hub module: its intermediate activations cannot be pooled")
        graph = module.graph
        inputs = [op.outputs[0] for op in graph.get_operations()
                  if op.type == "Placeholder" and op.outputs and op.outputs[0].shape.rank == 5]
        if len(inputs) != 1:
            raise SettingsError(f"{self.handle}: expected one 5-d input placeholder, found {len(inputs)}")
        name = self.pool_tensor
        if name is None:
            candidates = [
                op.outputs[0].name for op in graph.get_operations()
                if "Mixed_5c" in op.name and op.type in {"ConcatV2", "Concat"} and op.outputs
                and op.outputs[0].shape.rank == 5
            ]
            if not candidates:
                raise SettingsError(f"{self.handle}: no Mixed_5c concatenation to pool; set features.i3d_pool_tensor")
            name = candidates[-1]
        tensor = graph.get_tensor_by_name(name)
        if tensor.shape.rank != 5 or tensor.shape[-1] != self.dim:
            raise SettingsError(f"{self.handle}: tensor {name} has shape {tensor.shape}, expected (B, T, H, W, {self.dim})")
        self.pool_tensor = name
        return module.prune(feeds=[inputs[0]], fetches=[tensor])

    # interface -------------------------------------------------------------------------------------------

    def identity(self) -> str:
        # Hashed once: the weights in memory do not change after loading, and fingerprinting a plan asks
        # for the identity once per video.
        if self._identity is None:
            self._load()
            assert self._path is not None
            self._identity = f"{self.name}:{self.output or self.pool_tensor or 'pool'}:{_weights_hash(self._path)}"
        return self._identity

    def extract(self, clips: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        fn = self._load()
        x = tf.convert_to_tensor(clips, dtype=tf.uint8)
        x = tf.cast(x, tf.float32) / 255.0  # the models take float32 in [0, 1]
        out = fn(x)
        arr = out.numpy() if hasattr(out, "numpy") else np.asarray(out)
        return arr.reshape(arr.shape[0], -1).astype(np.float32)

    def device(self) -> str:
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
