"""The features stage: stored features, clip times and middle frames that map to the real clips."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Project
from tests.helpers.media import make_numbered_video, make_video, read_number
from tests.helpers.tfhub_models import build_s3d_like
from videobert.core.params import FeaturesParams, Params
from videobert.core.runtime import Runtime
from videobert.core.settings import load_settings
from videobert.core.storage import ArtifactStore
from videobert.db import repository as repo
from videobert.db.engine import Database
from videobert.features.clips import FrameReader, extract_video, load_features, read_features
from videobert.features.extractors import BaselineExtractor
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download


def test_extract_video_writes_features_times_and_frames(tmp_path: Path) -> None:
    video = make_numbered_video(tmp_path / "n.mp4", 20, 75)  # 3.75 s at 20 fps: clips of 30, 30 and 15 frames
    params = FeaturesParams(extractor="baseline")
    ex = BaselineExtractor(params.fps, params.frames_per_clip, params.frame_size, batch_size=2)
    features_path, frames_path, n = extract_video(video, ex, params, tmp_path)
    feats = read_features(features_path.read_bytes())
    assert n == len(feats) == 3
    assert feats.features.shape == (3, ex.dim) and feats.features.dtype == np.float16
    np.testing.assert_allclose(feats.start, [0.0, 1.5, 3.0])
    np.testing.assert_allclose(feats.end, [1.5, 3.0, 3.75])
    assert feats.real_frames.tolist() == [30, 30, 15]
    assert feats.meta["extractor"] == "baseline-colour-motion" and feats.meta["fps"] == 20.0
    with zipfile.ZipFile(frames_path) as z:
        assert z.namelist() == ["000000.jpg", "000001.jpg", "000002.jpg"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    with FrameReader(frames_path) as frames:
        # each picture is its clip's middle frame: source frames 15, 45 and (padded clip) 60 + 7
        assert [read_number(frames.image(i)) for i in range(3)] == [15, 45, 67]
        with pytest.raises(IndexError, match="clip 3"):
            frames.jpeg(3)


def test_float32_and_drop_are_parameters(tmp_path: Path) -> None:
    video = make_numbered_video(tmp_path / "n.mp4", 20, 75)
    params = FeaturesParams(extractor="baseline", dtype="float32", partial_clip="drop")
    ex = BaselineExtractor(20, 30, 224)
    path, _, n = extract_video(video, ex, params, tmp_path)
    feats = read_features(path.read_bytes())
    assert n == 2 and feats.features.dtype == np.float32


def _runtime(db: Database, store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("VIDEOBERT_DATA_DIR", str(tmp_path / "data"))
    return Runtime(load_settings(env_file=None), db, store)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_features_stage_on_both_stores(db: Database, store: ArtifactStore, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rt = _runtime(db, store, tmp_path, monkeypatch)
    src = make_video(tmp_path / "clip.mp4", seconds=4, fps=30)
    repo.register_videos(db, [repo.NewVideo("clip", "local", str(src))])
    params = Params(features=FeaturesParams(extractor="baseline"))
    assert run_download(rt, "clip", params).status == "done"
    first = run_features(rt, "clip", params)
    assert first.status == "done" and first.outcome["clips"] == 3 and first.outcome["decode_error"] is None
    view = repo.stage_views(db, ["features"])[("clip", "features")]
    feats = load_features(store, view.artifact("features").key)
    assert feats.features.shape == (3, BaselineExtractor(20, 30, 224).dim)
    assert run_features(rt, "clip", params).reason == "up to date"
    # a different sampling re-runs the stage
    changed = Params(features=FeaturesParams(extractor="baseline", fps=10))
    again = run_features(rt, "clip", changed)
    assert again.status == "done" and again.outcome["clips"] == 2
    # batch size does not change features: no re-run
    assert run_features(rt, "clip", Params(features=FeaturesParams(extractor="baseline", fps=10, batch_size=1))).reason == "up to date"


def test_changing_the_extractor_reruns_only_features(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    s3d = build_s3d_like(project.root / "s3d")
    monkeypatch.setenv("VIDEOBERT_S3D_HANDLE", str(s3d))
    rt = project.runtime()
    src = make_video(project.root / "clip.mp4", seconds=2)
    repo.register_videos(rt.db, [repo.NewVideo("clip", "local", str(src))])
    baseline = Params(features=FeaturesParams(extractor="baseline"))
    run_download(rt, "clip", baseline)
    assert run_features(rt, "clip", baseline).outcome["dim"] == BaselineExtractor(20, 30, 224).dim
    from videobert.ingest.plan import plan_ingest

    s3d_params = Params(features=FeaturesParams(extractor="s3d"))
    plan = plan_ingest(rt, ["clip"], s3d_params, stages=["download", "features"])
    assert plan.todo == {"clip": ["features"]}
    result = run_features(rt, "clip", s3d_params)
    assert result.status == "done" and result.outcome["dim"] == 1024 and result.outcome["extractor"] == "tfhub-s3d"


def test_features_of_a_video_whose_download_failed(project: Project) -> None:
    rt = project.runtime()
    bad = project.root / "bad.mp4"
    bad.write_bytes(b"not a video")
    repo.register_videos(rt.db, [repo.NewVideo("bad", "local", str(bad))])
    params = Params(features=FeaturesParams(extractor="baseline"))
    assert run_download(rt, "bad", params).reason == "CorruptVideoError"
    r = run_features(rt, "bad", params)
    assert (r.status, r.reason) == ("skipped", "upstream not done")
