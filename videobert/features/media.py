"""Facts about a media file, read with PyAV (FFmpeg): duration, streams, size, rate, rotation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from videobert.core.errors import PermanentStageError


class CorruptVideoError(PermanentStageError):
    """The file cannot be demuxed or decoded (truncated, garbage, zero bytes)."""


class NotAVideoError(PermanentStageError):
    """The file or URL holds no video stream (audio only, an image, a web page)."""


class TooLongError(PermanentStageError):
    """The video is longer than the duration limit."""


@dataclass(frozen=True)
class MediaInfo:
    """What the container says about a video file."""

    duration_s: float | None  # container (or stream) duration, seconds; None when unknown
    width: int
    height: int
    fps: float | None  # average frame rate
    frames: int | None  # frame count when the container knows it
    codec: str
    rotation: int  # display rotation, degrees counterclockwise (FFmpeg's display matrix), 0/90/180/270
    has_audio: bool
    size_bytes: int


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Read the container header; CorruptVideoError or NotAVideoError when it is not a usable video."""
    import av

    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CorruptVideoError(f"{path.name} is empty (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.EOFError, UnicodeDecodeError) as exc:
        raise CorruptVideoError(f"{path.name} cannot be opened as a media file: {exc}") from None
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"{path.name} cannot be opened: {exc}") from None
    with container:
        videos = [s for s in container.streams.video if s.codec_context is not None]
        if not videos:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise NotAVideoError(f"{path.name} has no video stream ({', '.join(kinds)})")
        stream = videos[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # av.time_base: microseconds
        rate = stream.average_rate or stream.guessed_rate
        rotation = _first_frame_rotation(container, stream)
        return MediaInfo(
            duration_s=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if rate else None,
            frames=stream.frames or None,
            codec=stream.codec_context.name,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            size_bytes=size,
        )


def _first_frame_rotation(container: object, stream: object) -> int:
    """Display rotation (degrees counterclockwise: 0, 90, 180, 270) from the first frame's display matrix.

    Decoding the first frame also proves that the stream holds something decodable.
    """
    import av

    try:
        frame = next(container.decode(stream), None)  # type: ignore[attr-defined]
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"no frame can be decoded: {exc}") from None
    if frame is None:
        raise CorruptVideoError("the video stream holds no decodable frame")
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360
