"""Rows of the README's bad-input table, through the stages as the flow runs them: the error type recorded, whether a
plain re-run retries it, and what reaches the next stage."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import Project
from tests.helpers.media import make_video
from videobert.core.params import FeaturesParams, Params
from videobert.db import repository as repo
from videobert.features.clips import load_features
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download

PARAMS = Params(features=FeaturesParams(extractor="baseline"))


def _register(project: Project, video_id: str, path: Path) -> None:
    repo.register_videos(project.runtime().db, [repo.NewVideo(video_id, "local", str(path))])


def test_a_local_file_removed_after_registration(project: Project) -> None:
    rt = project.runtime()
    src = make_video(project.root / "clip.mp4", seconds=1)
    _register(project, "clip", src)
    src.unlink()
    r = run_download(rt, "clip", PARAMS)
    assert (r.status, r.reason, r.retryable) == ("failed", "LocalFileMissingError", False)
    assert str(src) in r.message
    assert run_download(rt, "clip", PARAMS).reason == "failed permanently"  # a plain re-run does not retry it
    assert run_features(rt, "clip", PARAMS).reason == "upstream not done"
    make_video(src, seconds=1)  # the file is back: a new identity, so the next run takes it
    assert run_download(rt, "clip", PARAMS).status == "done"


def test_an_audio_only_file_stops_at_download(project: Project) -> None:
    rt = project.runtime()
    tone = project.root / "tone.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", str(tone)],
                   check=True, timeout=60)
    _register(project, "tone", tone)
    r = run_download(rt, "tone", PARAMS)
    assert (r.status, r.reason, r.retryable) == ("failed", "NotAVideoError", False)
    assert run_features(rt, "tone", PARAMS).reason == "upstream not done"  # never reaches features
    assert rt.store.list("videos/tone/") == []


def test_a_file_damaged_part_way_keeps_its_first_clips_and_says_where_it_stopped(project: Project) -> None:
    rt = project.runtime()
    full = make_video(project.root / "full.mp4", seconds=4, extra=["-movflags", "+faststart"])
    cut = project.root / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # the index is whole, the data stops half-way
    _register(project, "cut", cut)
    assert run_download(rt, "cut", PARAMS).status == "done"
    r = run_features(rt, "cut", PARAMS)
    assert r.status == "done" and 1 <= r.outcome["clips"] < 3  # 4 s would give 3 clips of 1.5 s
    assert "decoding failed after" in r.outcome["decode_error"]
    view = repo.stage_views(rt.db, ["features"], ["cut"])[("cut", "features")]
    assert view.outcome["decode_error"] == r.outcome["decode_error"]  # recorded on the row
    assert len(load_features(rt.store, view.artifact("features").key)) == r.outcome["clips"]
