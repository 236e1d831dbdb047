"""ASR transcripts from YouTube, HowTo100M's caption file, subtitle files next to a local video, or Whisper.

Sources are tried in the configured order; the first that has a transcript wins. "No transcript" is an
outcome (source `none`), not an error: the video still goes on to its visual stages. Non-English transcripts
are kept, marked `english: false`, so that the text objectives can skip them. The speech recognizer (source
`whisper`, `videobert.ingest.whisper`) reads the video's audio; its captions carry their words' own times.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from videobert.core.errors import PermanentStageError, TransientStageError
from videobert.ingest.howto100m import HowTo100MCaptions

SUBTITLE_SUFFIXES = (".vtt", ".srt")


class TranscriptUnavailableError(TransientStageError):
    """A transcript source could not be reached right now (network, 5xx, rate limiting)."""


class MalformedSubtitleError(PermanentStageError):
    """A subtitle file that cannot be parsed."""


@dataclass(frozen=True)
class CaptionWord:
    """One word of a caption with the time a speech recognizer gave it, seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Caption:
    """One timed caption line. Times in seconds from the start of the video."""

    start: float
    end: float
    text: str
    # the words with their own times, from a speech recognizer; None for captions timed only per line
    words: tuple[CaptionWord, ...] | None = None


@dataclass
class Transcript:
    """A video's timed captions and where they came from."""

    source: str  # youtube | howto100m | subtitles | whisper | none
    kind: str | None = None  # manual | auto (ASR) | None when unknown
    language: str | None = None  # BCP 47 code
    english: bool = False
    captions: list[Caption] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what each source said, anomalies fixed
    punctuated: bool = False  # the recognizer punctuated the text itself (Whisper): the punctuate stage keeps it

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict. `words` and `punctuated` are left out where unset, so that a transcript of the
        other sources stores the same bytes as before they existed (its punctuation is not redone)."""
        data = asdict(self)
        for caption in data["captions"]:
            if caption["words"] is None:
                del caption["words"]
        if not self.punctuated:
            del data["punctuated"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transcript:
        """Inverse of to_json."""
        data = dict(data)
        data["captions"] = [_caption_from_json(c) for c in data.get("captions", [])]
        return cls(**data)


def _caption_from_json(data: dict[str, Any]) -> Caption:
    words = data.get("words")
    return Caption(data["start"], data["end"], data["text"],
                   None if words is None else tuple(CaptionWord(**w) for w in words))


def is_english(language: str | None) -> bool:
    """True for English language codes (en, en-US, a.en ...)."""
    if not language:
        return False
    base = language.lower().split("-")[0].split("_")[0].removeprefix("a.")
    return base == "en"


# --- cleaning -------------------------------------------------------------------------------------------------

_TAG_RE = re.compile(r"<[^>]*>")
_SPACE_RE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Strip markup (<c>, <i>, inline timestamps), bracketed sound labels' brackets kept, squash spaces."""
    return _SPACE_RE.sub(" ", _TAG_RE.sub("", text)).strip()


def remove_rolling_duplicates(captions: Iterable[Caption], memory: int = 3) -> list[Caption]:
    """Drop lines repeated from the previous cues, as YouTube's rolling auto-captions show them.

    Rolling captions show each line twice or more (it scrolls up while the next is typed); a line is kept
    the first time it appears, with the timing of that cue. A cue left with no new line is dropped.
    """
    out: list[Caption] = []
    recent: deque[str] = deque(maxlen=memory)
    for cap in captions:
        lines = [clean_text(line) for line in cap.text.splitlines()]
        new = [line for line in lines if line and line not in recent]
        if not new:
            continue
        out.append(Caption(cap.start, cap.end, " ".join(new)))
        recent.extend(new)
    return out


def tidy(captions: Iterable[Caption], dedupe: bool) -> tuple[list[Caption], list[str]]:
    """Clean texts, drop empty and invalid lines, sort by start; returns the captions and notes."""
    notes = []
    kept = []
    bad = 0
    for c in captions:
        if not (math.isfinite(c.start) and math.isfinite(c.end)) or c.start < 0:
            bad += 1
            continue
        text = c.text if dedupe else clean_text(c.text)
        if not clean_text(text):
            continue
        kept.append(replace(c, start=float(c.start), end=float(max(c.end, c.start)), text=text))
    if bad:
        notes.append(f"dropped {bad} captions with invalid times")
    kept.sort(key=lambda c: c.start)
    if dedupe:
        before = len(kept)
        kept = remove_rolling_duplicates(kept)
        if len(kept) < before:
            notes.append(f"removed {before - len(kept)} rolling duplicate captions")
    return kept, notes


# --- YouTube ---------------------------------------------------------------------------------------------


def from_youtube(
    video_id: str, languages: Sequence[str], prefer_manual: bool = True, session: Any = None
) -> tuple[Transcript | None, str]:
    """YouTube captions through youtube-transcript-api; (None, why) when the video has none."""
    import requests
    from youtube_transcript_api import YouTubeTranscriptApi
    from youtube_transcript_api import _errors as yte

    api = YouTubeTranscriptApi(http_client=session or requests.Session())
    try:
        listing = api.list(video_id)
        manual = {t.language_code: t for t in listing if not t.is_generated}
        auto = {t.language_code: t for t in listing if t.is_generated}
        order = [manual, auto] if prefer_manual else [auto, manual]
        chosen = next((group[lang] for lang in languages for group in order if lang in group), None)
        if chosen is None:  # no preferred language: keep another one, marked as such
            chosen = next(iter(list(manual.values()) + list(auto.values())), None)
        if chosen is None:
            return None, "youtube: no transcripts listed"
        fetched = chosen.fetch()
    except (yte.TranscriptsDisabled, yte.NoTranscriptFound) as exc:
        return None, f"youtube: {type(exc).__name__}"
    except (yte.VideoUnavailable, yte.InvalidVideoId, yte.AgeRestricted, yte.VideoUnplayable,
            yte.PoTokenRequired, yte.YouTubeDataUnparsable, yte.FailedToCreateConsentCookie) as exc:
        return None, f"youtube: {type(exc).__name__}: {_first_line(exc)}"
    except (yte.IpBlocked, yte.RequestBlocked) as exc:
        raise TranscriptUnavailableError(f"youtube blocks transcript requests: {type(exc).__name__}") from None
    except yte.YouTubeRequestFailed as exc:
        raise TranscriptUnavailableError(f"youtube request failed: {_first_line(exc)}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TranscriptUnavailableError(f"youtube unreachable: {exc}") from None
    captions = [Caption(s.start, s.start + s.duration, s.text) for s in fetched.snippets]
    lang = fetched.language_code
    return (
        Transcript("youtube", "auto" if fetched.is_generated else "manual", lang, is_english(lang), captions),
        f"youtube: {'auto' if fetched.is_generated else 'manual'} {lang}",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# --- HowTo100M --------------------------------------------------------------------------------------------


def from_howto100m(captions_file: HowTo100MCaptions, video_id: str) -> tuple[Transcript | None, str]:
    """The video's entry in HowTo100M's caption file; (None, why) when it has none or it is empty."""
    entry = captions_file.raw_entry(video_id)
    if entry is None:
        return None, "howto100m: no entry"
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) for k in ("start", "end", "text")):
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        return None, f"howto100m: entry is not {{start, end, text}} lists (found {keys})"
    starts, ends, texts = entry["start"], entry["end"], entry["text"]
    n = min(len(starts), len(ends), len(texts))
    notes = []
    if len({len(starts), len(ends), len(texts)}) > 1:
        notes.append(f"mismatched lengths start={len(starts)} end={len(ends)} text={len(texts)}: kept the first {n}")
    captions = []
    bad = 0
    for s, e, t in zip(starts[:n], ends[:n], texts[:n], strict=True):
        try:
            captions.append(Caption(float(s), float(e), str(t)))
        except (TypeError, ValueError):
            bad += 1
    if bad:
        notes.append(f"dropped {bad} captions with non-numeric times")
    if not captions:
        return None, "howto100m: empty entry"
    # HowTo100M's captions are YouTube's English ASR.
    return Transcript("howto100m", "auto", "en", True, captions, notes), "howto100m: found"


# --- subtitle files ----------------------------------------------------------------------------------------

_TIME_RE = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})")


def _seconds(stamp: str) -> float:
    m = _TIME_RE.fullmatch(stamp.strip())
    if not m:
        raise ValueError(f"bad timestamp {stamp!r}")
    h, mnt, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def find_subtitles(video_path: str | Path, languages: Sequence[str]) -> Path | None:
    """A subtitle file next to the video: `<stem>.<lang>.vtt|srt` for a preferred language, else `<stem>.vtt|srt`."""
    video_path = Path(video_path)
    stem = video_path.with_suffix("")
    candidates = [stem.with_name(f"{stem.name}.{lang}{suf}") for lang in languages for suf in SUBTITLE_SUFFIXES]
    candidates += [stem.with_name(stem.name + suf) for suf in SUBTITLE_SUFFIXES]
    names = _listing(str(video_path.parent))
    for c in candidates:
        if c.name in names:
            return c
    prefix = stem.name + "."
    others = sorted(n for n in names if n.startswith(prefix) and n.lower().endswith(SUBTITLE_SUFFIXES))
    return video_path.parent / others[0] if others else None


def _listing(folder: str) -> frozenset[str]:
    """File names in `folder`, cached while the folder's modification time stays the same."""
    try:
        mtime = os.stat(folder).st_mtime_ns
    except OSError:
        return frozenset()
    return _listing_at(folder, mtime)


@functools.lru_cache(maxsize=64)
def _listing_at(folder: str, _mtime_ns: int) -> frozenset[str]:
    return frozenset(os.listdir(folder))


def from_subtitle_file(path: Path, languages: Sequence[str]) -> tuple[Transcript | None, str]:
    """Captions of a .vtt or .srt file; the language from `<stem>.<lang>.ext` or the VTT header."""
    import webvtt
    from webvtt.errors import MalformedFileError

    try:
        doc = webvtt.from_srt(str(path)) if path.suffix.lower() == ".srt" else webvtt.read(str(path))
        captions = [Caption(_seconds(c.start), _seconds(c.end), c.text) for c in doc]
    except (MalformedFileError, ValueError, UnicodeDecodeError) as exc:
        raise MalformedSubtitleError(f"subtitle file {path.name} cannot be parsed: {exc}") from None
    parts = path.name.split(".")
    lang = parts[-2] if len(parts) >= 3 and 2 <= len(parts[-2]) <= 8 else None
    header = "\n".join(getattr(doc, "header_comments", []) or []) + "\n" + (getattr(doc, "header_text", "") or "")
    m = re.search(r"Language:\s*([A-Za-z-]+)", header)
    if lang is None and m:
        lang = m.group(1)
    notes = []
    if lang is None:
        lang = languages[0] if languages else None
        notes.append(f"language not stated; assumed {lang}")
    if not captions:
        return None, f"subtitles: {path.name} is empty"
    return Transcript("subtitles", None, lang, is_english(lang), captions, notes), f"subtitles: {path.name}"
