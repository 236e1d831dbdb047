"""Streaming decode of a video into fixed-length clips of square RGB frames (PyAV + an FFmpeg filter graph).

The graph resamples to the target rate first (FFmpeg's `fps` filter: each output instant k / fps takes the
source frame shown at that instant, duplicating or dropping frames as needed; variable frame rate sources
are handled by their timestamps; a video shorter than half an output frame, for which the filter emits
nothing, gives its last frame as output frame 0), turns rotated phone videos upright, crops the centred
square, scales it to `frame_size` and converts to RGB. Frames are grouped into non-overlapping clips of
`frames_per_clip`; a last partial clip is padded by repeating its last frame, or dropped (`partial_clip`).

Only one clip (plus the decoder's own buffers) is held at a time: memory does not grow with the video.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from videobert.features.media import CorruptVideoError, NotAVideoError

PartialClip = Literal["pad", "drop"]


@dataclass(frozen=True)
class Sampling:
    """How a video becomes clips. Defaults are the paper's: 20 fps, 30-frame (1.5 s) clips, 224 px."""

    fps: float = 20.0
    frames_per_clip: int = 30
    frame_size: int = 224
    partial_clip: PartialClip = "pad"
    decoder_threads: int = 1  # 0: FFmpeg picks; 1 keeps one core per video (parallelism comes from videos)

    @property
    def clip_seconds(self) -> float:
        return self.frames_per_clip / self.fps


@dataclass
class DecodeReport:
    """What happened while decoding, beyond the frames: filled in by iter_frames when given one."""

    rotation: int = 0  # display rotation applied, degrees counterclockwise
    source_frames: int = 0  # frames decoded from the file
    output_frames: int = 0  # frames produced at the target rate
    error: str | None = None  # a decoding error after which the rest of the video was lost (truncated file)


@dataclass(frozen=True)
class Clip:
    """One clip: `frames` is uint8 (T, H, W, 3) RGB; times in seconds from the start of the video."""

    index: int
    frames: np.ndarray
    start: float
    end: float
    real_frames: int  # frames decoded from the video; the rest (if any) repeat the last one


def _transpose_filters(rotation: int) -> list[tuple[str, str]]:
    """FFmpeg filters that turn a picture upright, given its display rotation in degrees counterclockwise
    (the display matrix convention, as PyAV's `VideoFrame.rotation` reports it)."""
    rotation %= 360
    if rotation == 90:
        return [("transpose", "cclock")]
    if rotation == 270:
        return [("transpose", "clock")]
    if rotation == 180:
        return [("hflip", ""), ("vflip", "")]
    return []


def iter_frames(
    path: str | os.PathLike[str], sampling: Sampling, report: DecodeReport | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in seconds from the video start, RGB frame) at `sampling.fps`, square `frame_size`.

    A file that fails to decode part-way (truncated, damaged) raises CorruptVideoError, unless a `report`
    is given: then the frames decoded so far are kept, and the error is written to the report.
    """
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"{Path(path).name} cannot be opened: {exc}") from None
    with container:
        if not container.streams.video:
            raise NotAVideoError(f"{Path(path).name} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = sampling.decoder_threads
        graph = None
        src = sink = None
        size = sampling.frame_size
        out_index = 0

        def build(first: av.VideoFrame, resample: bool = True) -> None:
            nonlocal graph, src, sink
            rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
            if report is not None:
                report.rotation = rotation
            graph = av.filter.Graph()
            src = graph.add_buffer(template=stream)
            chain = [graph.add("fps", f"fps={sampling.fps}:round=near")] if resample else []
            chain += [graph.add(name, args) if args else graph.add(name) for name, args in _transpose_filters(rotation)]
            chain += [
                graph.add("crop", "w='min(iw,ih)':h='min(iw,ih)'"),  # centred square
                graph.add("scale", f"{size}:{size}:flags=bilinear"),
                graph.add("format", "rgb24"),
            ]
            sink = graph.add("buffersink")
            src.link_to(chain[0])
            for a, b in zip(chain, chain[1:], strict=False):
                a.link_to(b)
            chain[-1].link_to(sink)
            graph.configure()

        def drain() -> Iterator[tuple[float, np.ndarray]]:
            nonlocal out_index
            while True:
                try:
                    out = graph.pull()  # type: ignore[union-attr]
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                # The fps filter emits frame k at k / fps after the first input frame.
                yield out_index / sampling.fps, out.to_ndarray()
                out_index += 1

        decoded = 0
        last = None
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if graph is None:
                        build(frame)
                    graph.push(frame)  # type: ignore[union-attr]
                    decoded += 1
                    last = frame
                    yield from drain()
        except av.error.FFmpegError as exc:
            if decoded == 0:
                raise CorruptVideoError(f"{Path(path).name}: no frame can be decoded: {exc}") from None
            message = (f"{Path(path).name}: decoding failed after {decoded} frames "
                       f"({out_index / sampling.fps:.1f} s): {exc}")
            if report is None:
                raise CorruptVideoError(message) from None
            report.error = message
        if graph is None:
            raise CorruptVideoError(f"{Path(path).name}: the video stream holds no decodable frame")
        graph.push(None)
        yield from drain()
        if out_index == 0 and last is not None:
            # The fps filter ends the output at round(end of stream x fps): a video shorter than half an output
            # frame (one frame at 50 fps or more) rounds to 0 frames. What shows at time 0 is its last frame
            # (every frame it has falls in slot 0), so that frame is output frame 0, through the same graph
            # minus the rate conversion.
            build(last, resample=False)
            graph.push(last)  # type: ignore[union-attr]
            graph.push(None)  # type: ignore[union-attr]
            yield from drain()
        if report is not None:
            report.source_frames, report.output_frames = decoded, out_index


def iter_clips(
    path: str | os.PathLike[str], sampling: Sampling, report: DecodeReport | None = None
) -> Iterator[Clip]:
    """Yield the video's clips in order (see the module docstring for the rules and `iter_frames` for `report`)."""
    t = sampling.frames_per_clip
    buf = np.empty((t, sampling.frame_size, sampling.frame_size, 3), dtype=np.uint8)
    n = 0
    index = 0
    for _time, frame in iter_frames(path, sampling, report):
        buf[n] = frame
        n += 1
        if n == t:
            start = index * sampling.clip_seconds
            yield Clip(index, buf.copy(), start, start + sampling.clip_seconds, t)
            index += 1
            n = 0
    if n and sampling.partial_clip == "pad":
        buf[n:] = buf[n - 1]
        start = index * sampling.clip_seconds
        # the clip covers what was decoded; its end is where the real frames end
        yield Clip(index, buf.copy(), start, start + n / sampling.fps, n)
