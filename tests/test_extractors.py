"""Clip feature extractors: TF-Hub S3D / I3D through the real tensorflow_hub loading path, and the baseline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.tfhub_models import build_i3d_like, build_s3d_like, expected_i3d, expected_s3d
from videobert.core.errors import SettingsError
from videobert.features.extractors import BaselineExtractor, TFHubExtractor, tfhub_cache_path

S3D_HANDLE = "https://tfhub.dev/deepmind/mil-nce/s3d/1"


@pytest.fixture(scope="module")
def s3d_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_s3d_like(tmp_path_factory.mktemp("tfhub") / "s3d")


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (5, 30, 224, 224, 3), dtype=np.uint8)


def test_s3d_from_a_local_savedmodel(s3d_dir: Path, clips: np.ndarray) -> None:
    ex = TFHubExtractor("s3d", str(s3d_dir), 20, 30, 224, batch_size=4)
    out = ex.extract(clips)
    assert out.shape == (5, 1024) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected_s3d(clips), rtol=1e-5, atol=1e-5)  # input scaled to [0, 1]
    assert ex.identity().startswith("tfhub-s3d:mixed_5c:") and ex.identity() == ex.identity()
    # batch size does not change the result
    one_by_one = np.concatenate([ex.extract(clips[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(one_by_one, out, rtol=1e-5, atol=1e-6)


def test_s3d_from_a_prefilled_tfhub_cache(s3d_dir: Path, clips: np.ndarray, tmp_path: Path) -> None:
    cache = tmp_path / "tfhub-cache"
    shutil.copytree(s3d_dir, tfhub_cache_path(S3D_HANDLE, cache))
    ex = TFHubExtractor("s3d", S3D_HANDLE, 20, 30, 224, batch_size=8, cache_dir=str(cache))
    np.testing.assert_allclose(ex.extract(clips[:2]), expected_s3d(clips[:2]), rtol=1e-5, atol=1e-5)
    local = TFHubExtractor("s3d", str(s3d_dir), 20, 30, 224, 8)
    assert ex.identity() == local.identity()  # same weights, same identity, wherever they are


def test_s3d_other_output_and_missing_output(s3d_dir: Path, clips: np.ndarray) -> None:
    ex = TFHubExtractor("s3d", str(s3d_dir), 20, 30, 224, 8, output="video_embedding")
    assert ex.extract(clips[:1]).shape == (1, 512)
    bad = TFHubExtractor("s3d", str(s3d_dir), 20, 30, 224, 8, output="logits")
    with pytest.raises(SettingsError, match="no output 'logits'"):
        bad.extract(clips[:1])


def test_i3d_gives_pooled_features_not_logits(tmp_path: Path, clips: np.ndarray) -> None:
    folder = build_i3d_like(tmp_path / "i3d")
    ex = TFHubExtractor("i3d", str(folder), 20, 30, 224, 4)
    out = ex.extract(clips)
    assert out.shape == (5, 1024)  # not the 600 class logits
    np.testing.assert_allclose(out, expected_i3d(clips), rtol=1e-4, atol=1e-5)
    assert ex.pool_tensor == "RGB/inception_i3d/Mixed_5c/concat:0"


def test_unavailable_model_names_the_handle_and_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "empty-cache"
    ex = TFHubExtractor("s3d", "https://tfhub.invalid/deepmind/mil-nce/s3d/1", 20, 30, 224, 8, cache_dir=str(cache))
    with pytest.raises(SettingsError) as err:
        ex.identity()
    msg = str(err.value)
    assert "https://tfhub.invalid/deepmind/mil-nce/s3d/1" in msg and "pre-fill the cache" in msg
    assert str(tfhub_cache_path("https://tfhub.invalid/deepmind/mil-nce/s3d/1", cache)) in msg


def test_baseline(clips: np.ndarray) -> None:
    ex = BaselineExtractor(20, 30, 224)
    out = ex.extract(clips)
    assert out.shape == (5, ex.dim) == (5, 128 + 16)  # whole-picture statistics, then the foreground block
    np.testing.assert_array_equal(ex.extract(clips), out)  # deterministic
    np.testing.assert_array_equal(ex.extract(clips[2:3]), out[2:3])  # batch-independent
    static = np.repeat(clips[:1, :1], 30, axis=1)  # one frame held for the whole clip: no motion
    sout = ex.extract(static)[0]
    assert np.all(sout[48 + 48 : 48 + 48 + 16 + 8] == 0)
    np.testing.assert_allclose(sout[128 + 5 :], 0, atol=1e-4)  # the foreground's motion figures
    assert not np.allclose(out[0], out[1])
    # colour histograms sum to one per channel
    np.testing.assert_allclose(out[:, :48].reshape(5, 3, 16).sum(axis=2), 1.0, rtol=1e-5)
    assert ex.identity() == "baseline-colour-motion:v2"
