"""Fetching videos with yt-dlp's Python API, and telling permanent failures from transient ones.

The duration limit is applied to the metadata before anything is downloaded, and again to the file (some
sites, and direct file links, publish no duration). yt-dlp's own error text is kept in every error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videobert.core.errors import PermanentStageError, StageError, TransientStageError
from videobert.core.params import DownloadParams
from videobert.features.media import NotAVideoError, TooLongError

log = logging.getLogger(__name__)


class VideoUnavailableError(PermanentStageError):
    """Private, removed, terminated, age- or member-restricted, or not found (404/410)."""


class GeoBlockedError(PermanentStageError):
    """Not available in the country the download runs from."""


class FormatUnavailableError(PermanentStageError):
    """No format matches the format selector."""


class ThrottledError(TransientStageError):
    """The site is rate-limiting us (HTTP 429, bot checks): retry later."""


class NetworkError(TransientStageError):
    """Connection, DNS, timeout, truncated transfer or a 5xx: retry."""


class DownloadFailedError(TransientStageError):
    """A download error of a kind not recognised: retried, with yt-dlp's text kept."""


@dataclass(frozen=True)
class DownloadedVideo:
    """A video file fetched into a work folder, with what the site said about it."""

    path: Path
    title: str | None
    duration_s: float | None  # from the site's metadata
    extractor: str
    format_id: str | None
    width: int | None
    height: int | None
    webpage_url: str | None


# yt-dlp messages that mean "this will never work" / "try again later". Matched case-insensitively.
_PERMANENT_PATTERNS: list[tuple[str, type[StageError]]] = [
    (r"private video|video is private", VideoUnavailableError),
    (r"video unavailable|this video is unavailable|has been removed|no longer available", VideoUnavailableError),
    (r"account associated with this video has been terminated|copyright", VideoUnavailableError),
    (r"confirm your age|age[- ]restricted|inappropriate for some users", VideoUnavailableError),
    (r"members[- ]only|join this channel", VideoUnavailableError),
    (r"premieres in|live event will begin|this live stream", NotAVideoError),
    (r"available in your country|blocked (?:it )?in your country|geo[- ]?restrict", GeoBlockedError),
    (r"unsupported url", NotAVideoError),
    (r"requested format is not available", FormatUnavailableError),
    (r"http error 40[4]|http error 410|not found", VideoUnavailableError),
]
_TRANSIENT_PATTERNS: list[tuple[str, type[StageError]]] = [
    (r"http error 429|too many requests|not a bot|rate[- ]limit", ThrottledError),
    (r"http error 5\d\d|timed out|timeout|connection (?:reset|refused|aborted)|name resolution|"
     r"content too short|incompleteread|did not get any data|remote end closed|ssl|broken pipe|"
     r"bytes read, \d+ more expected|"
     r"http error 403", NetworkError),
]


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        inner = getattr(exc, "exc_info", None)
        nxt = inner[1] if isinstance(inner, tuple) and len(inner) > 1 else None
        exc = nxt or exc.__cause__ or exc.__context__
    return seen


def classify_ytdlp_error(exc: BaseException) -> StageError:
    """Map a yt-dlp error to a permanent or transient StageError, keeping yt-dlp's own text."""
    from yt_dlp.utils import GeoRestrictedError, UnsupportedError

    text = re.sub(r"^ERROR:\s*", "", str(exc)).strip() or type(exc).__name__
    chain = _chain(exc)
    if any(isinstance(e, GeoRestrictedError) for e in chain):
        return GeoBlockedError(text)
    if any(isinstance(e, UnsupportedError) for e in chain):
        return NotAVideoError(text)
    status = next((getattr(getattr(e, "response", None), "status", None) or getattr(e, "status", None)
                   for e in chain if getattr(e, "status", None) or getattr(e, "response", None)), None)
    if isinstance(status, int):
        if status == 429:
            return ThrottledError(text)
        if status >= 500 or status == 403:
            return NetworkError(text)
        if status in (404, 410):
            return VideoUnavailableError(text)
    lowered = " ".join(str(e) for e in chain).lower()
    for patterns in (_TRANSIENT_PATTERNS, _PERMANENT_PATTERNS):
        for pattern, kind in patterns:
            if re.search(pattern, lowered):
                return kind(text)
    return DownloadFailedError(text)


class _YtdlpLog:
    """Routes yt-dlp's messages to our logger (yt-dlp prints to stdout otherwise)."""

    def debug(self, msg: str) -> None:
        if not msg.startswith("[debug] "):
            log.debug(msg)

    def info(self, msg: str) -> None:
        log.debug(msg)

    def warning(self, msg: str) -> None:
        log.info("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        log.info("yt-dlp: %s", msg)


def ytdlp_options(params: DownloadParams, workdir: Path, progress: Callable[[dict[str, Any]], None] | None) -> dict:
    """The yt-dlp options this pipeline uses (exposed for tests and for users' own scripts)."""
    return {
        "format": params.format_selector(),
        "format_sort": list(params.format_sort),
        "outtmpl": {"default": str(workdir / "source.%(ext)s")},
        "merge_output_format": "mp4",
        "noplaylist": True,
        "playlist_items": "1",
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _YtdlpLog(),
        "retries": params.http_retries,
        "fragment_retries": params.http_retries,
        "extractor_retries": params.http_retries,
        "socket_timeout": params.socket_timeout_s,
        "cachedir": False,
        "overwrites": True,
        "progress_hooks": [progress] if progress else [],
    }


def download(url: str, workdir: Path, params: DownloadParams,
             progress: Callable[[dict[str, Any]], None] | None = None) -> DownloadedVideo:
    """Fetch one video into `workdir`; raise a permanent or transient StageError when that fails."""
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import DownloadError, ExtractorError, YoutubeDLError

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with YoutubeDL(ytdlp_options(params, workdir, progress)) as ydl:
            info = ydl.extract_info(url, download=False, process=False)
            if info is None:
                raise NotAVideoError(f"yt-dlp found nothing to download at {url}")
            if info.get("_type") in {"playlist", "multi_video"}:
                entries = [e for e in (info.get("entries") or []) if e]
                if not entries:
                    raise NotAVideoError(f"{url} is a playlist with no videos")
                info = ydl.extract_info(entries[0].get("url") or entries[0].get("webpage_url") or url,
                                        download=False, process=False)
            if info.get("is_live") or info.get("live_status") in {"is_live", "is_upcoming"}:
                raise NotAVideoError(f"{url} is a live stream or an upcoming premiere, not a video")
            duration = info.get("duration")
            if duration is not None and float(duration) > params.max_duration_s:
                raise TooLongError(
                    f"video is {float(duration):.0f} s long, over the {params.max_duration_s:.0f} s limit "
                    "(download.max_duration_s); not downloaded"
                )
            result = ydl.process_ie_result(info, download=True)
    except StageError:
        raise
    except (DownloadError, ExtractorError, YoutubeDLError) as exc:
        raise classify_ytdlp_error(exc) from None
    except OSError as exc:
        raise NetworkError(f"{type(exc).__name__}: {exc}") from None
    downloads = result.get("requested_downloads") or []
    path = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
    if path is None or not path.is_file():
        files = sorted(p for p in workdir.iterdir() if p.name.startswith("source.") and not p.name.endswith(".part"))
        if not files:
            raise DownloadFailedError(f"yt-dlp reported success for {url} but wrote no file")
        path = files[0]
    return DownloadedVideo(
        path=path,
        title=result.get("title"),
        duration_s=float(result["duration"]) if result.get("duration") is not None else None,
        extractor=str(result.get("extractor_key") or result.get("extractor") or "unknown"),
        format_id=result.get("format_id"),
        width=result.get("width"),
        height=result.get("height"),
        webpage_url=result.get("webpage_url"),
    )
