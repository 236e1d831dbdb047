"""Facts about a media file, read with PyAV (FFmpeg): duration, streams, size, rate, rotation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from videobert.errors import PermanentStageError


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
    rotation: int  # degrees clockwise the picture must be turned to display upright
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
        rotation = _rotation(stream)
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


def _rotation(stream: object) -> int:
    """Clockwise display rotation from the stream's display matrix (phone videos), 0 if none."""
    for name in ("display_rotation",):
        value = getattr(stream, name, None)
        if value:
            return int(round(-float(value))) % 360
    try:
        for side in getattr(stream, "side_data", {}) or {}:
            if "DISPLAYMATRIX" in str(side).upper():
                value = stream.side_data[side]  # type: ignore[attr-defined]
                return int(round(-float(value))) % 360
    except (TypeError, ValueError, KeyError):
        pass
    tag = (getattr(stream, "metadata", {}) or {}).get("rotate")
    return int(tag) % 360 if tag and str(tag).lstrip("-").isdigit() else 0
