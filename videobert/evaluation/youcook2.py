"""Annotations in the YouCook II format (Zhou, Xu, Corso, AAAI 2018), the format of the paper's downstream
evaluation:

    {"database": {VIDEO_ID: {"subset": "training"|"validation"|"testing", "duration": seconds,
                             "recipe_type": str, "video_url": str,
                             "annotations": [{"id": int, "segment": [start_s, end_s], "sentence": str}, ...]}}}

Required: `database`, and per video `subset`, `duration` and `annotations`, and per segment `id`, `segment` and
`sentence`; a missing or mistyped one makes the whole file unusable (`DatasetError` naming the file, the video and
the segment). `recipe_type` and `video_url` may be absent (None).

A segment that cannot be scored, one whose end is not after its start or whose sentence is empty, is a bad item,
not a bad file: it is left out of `VideoAnnotation.segments` and recorded with its reason in
`VideoAnnotation.skipped` (the real train/validation file has none).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videobert.dataset.files import DatasetError

SUBSETS = ("training", "validation", "testing")  # the splits YouCook II names


@dataclass(frozen=True)
class Segment:
    """One annotated step of a video: its time span (seconds) and its sentence."""

    id: int
    start: float  # seconds from the video's start
    end: float  # seconds, > start
    sentence: str


@dataclass(frozen=True)
class SkippedSegment:
    """A segment left out of the evaluation, and why."""

    id: int
    reason: str


@dataclass(frozen=True)
class VideoAnnotation:
    """One video of the annotation file with its usable segments (in the file's order)."""

    video_id: str
    subset: str
    duration: float  # seconds
    recipe_type: str | None
    url: str | None  # the file's `video_url`
    segments: tuple[Segment, ...]
    skipped: tuple[SkippedSegment, ...] = field(default=())


def load_annotations(path: str | Path) -> dict[str, VideoAnnotation]:
    """Read a YouCook II annotation file; videos keyed by id, in the file's order.

    Raises DatasetError naming the file (and the video and segment) when the file cannot be read, is not JSON, or
    lacks a required key or has one of the wrong type. Segments with end <= start or an empty sentence are skipped
    and recorded in `VideoAnnotation.skipped`.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"annotation file {path} cannot be read: {exc}") from None
    except ValueError as exc:
        raise DatasetError(f"annotation file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("database"), dict):
        raise DatasetError(f"annotation file {path} has no 'database' object (YouCook II format)")
    return {str(vid): _video(path, str(vid), entry) for vid, entry in raw["database"].items()}


def _video(path: Path, vid: str, entry: Any) -> VideoAnnotation:
    """One `database` entry; DatasetError naming the file and the video when it is malformed."""
    where = f"annotation file {path}, video {vid!r}"
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: not an object")
    for key in ("subset", "duration", "annotations"):
        if key not in entry:
            raise DatasetError(f"{where}: missing key {key!r}")
    subset = entry["subset"]
    if subset not in SUBSETS:
        raise DatasetError(f"{where}: subset {subset!r} is not one of {', '.join(SUBSETS)}")
    duration = _number(entry["duration"], f"{where}: duration")
    if not isinstance(entry["annotations"], list):
        raise DatasetError(f"{where}: 'annotations' is not a list")
    segments: list[Segment] = []
    skipped: list[SkippedSegment] = []
    seen: set[int] = set()
    for i, seg in enumerate(entry["annotations"]):
        at = f"{where}, annotation #{i}"
        if not isinstance(seg, dict):
            raise DatasetError(f"{at}: not an object")
        for key in ("id", "segment", "sentence"):
            if key not in seg:
                raise DatasetError(f"{at}: missing key {key!r}")
        sid = seg["id"]
        if not isinstance(sid, int) or isinstance(sid, bool):
            raise DatasetError(f"{at}: id {sid!r} is not an integer")
        if sid in seen:
            raise DatasetError(f"{at}: segment id {sid} appears twice")
        seen.add(sid)
        span = seg["segment"]
        if not isinstance(span, list) or len(span) != 2:
            raise DatasetError(f"{at} (id {sid}): 'segment' {span!r} is not [start, end]")
        start, end = (_number(t, f"{at} (id {sid}): segment time") for t in span)
        sentence = seg["sentence"]
        if not isinstance(sentence, str):
            raise DatasetError(f"{at} (id {sid}): sentence {sentence!r} is not a string")
        if end <= start:
            skipped.append(SkippedSegment(sid, f"end {end:g} s is not after start {start:g} s"))
        elif not sentence.strip():
            skipped.append(SkippedSegment(sid, "empty sentence"))
        else:
            segments.append(Segment(sid, start, end, sentence.strip()))
    return VideoAnnotation(
        video_id=vid, subset=subset, duration=duration,
        recipe_type=_optional_str(entry.get("recipe_type")), url=_optional_str(entry.get("video_url")),
        segments=tuple(segments), skipped=tuple(skipped),
    )


def _number(value: Any, what: str) -> float:
    """`value` as a float; DatasetError with `what` when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"{what} {value!r} is not a number")
    return float(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def videos_of(annotations: Mapping[str, VideoAnnotation], subset: str | None) -> list[VideoAnnotation]:
    """The videos of one split (all when `subset` is None), in the file's order; ValueError on an unknown split."""
    if subset is not None and subset not in SUBSETS:
        raise ValueError(f"subset {subset!r} is not one of {', '.join(SUBSETS)}")
    return [v for v in annotations.values() if subset is None or v.subset == subset]


def segments_of(annotations: Mapping[str, VideoAnnotation], subset: str | None) -> list[tuple[str, Segment]]:
    """(video id, segment) of every usable segment of one split (all when None), videos in the file's order."""
    return [(v.video_id, s) for v in videos_of(annotations, subset) for s in v.segments]


def skipped_of(annotations: Iterable[VideoAnnotation] | Mapping[str, VideoAnnotation]) -> list[tuple[str, SkippedSegment]]:
    """(video id, skipped segment) of every segment the reader left out."""
    videos = annotations.values() if isinstance(annotations, Mapping) else annotations
    return [(v.video_id, s) for v in videos for s in v.skipped]
