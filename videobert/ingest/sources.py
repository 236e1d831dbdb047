"""Video sources: a list of YouTube ids or URLs, HowTo100M's csv, or a folder of local video files.

Each reader returns the videos to register and the entries it rejected (with the reason), so that a bad
line never hides the good ones and is never silently dropped.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from videobert.core.errors import InvalidIdError, SettingsError
from videobert.core.ids import validate_video_id, video_id_from_filename
from videobert.db.repository import NewVideo

YOUTUBE_WATCH_URL = "https://www.youtube.com/watch?v={id}"
# The cooking part of HowTo100M, as in the paper (WikiHow top-level category of the search task).
DEFAULT_HOWTO100M_CATEGORIES = ("Food and Entertaining",)
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp")
HOWTO100M_COLUMNS = ("video_id", "category_1", "category_2", "rank", "task_id")

_YT_ID_RE = re.compile(r"[A-Za-z0-9_-]{11}")


@dataclass
class SourceScan:
    """What a source reader found: videos to register, and rejected entries with the reason."""

    videos: list[NewVideo] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (entry, reason)


def parse_youtube_id(text: str) -> str:
    """The 11-character video id of a YouTube id or URL (watch, youtu.be, shorts, embed, live)."""
    text = text.strip()
    if _YT_ID_RE.fullmatch(text):
        return text
    url = urlparse(text if "://" in text else f"https://{text}")
    host = (url.hostname or "").lower().removeprefix("www.").removeprefix("m.")
    candidate = None
    if host == "youtu.be":
        candidate = url.path.strip("/").split("/")[0]
    elif host in {"youtube.com", "music.youtube.com", "youtube-nocookie.com"}:
        if url.path == "/watch":
            candidate = (parse_qs(url.query).get("v") or [None])[0]
        else:
            parts = url.path.strip("/").split("/")
            if len(parts) >= 2 and parts[0] in {"shorts", "embed", "live", "v"}:
                candidate = parts[1]
    if candidate and _YT_ID_RE.fullmatch(candidate):
        return candidate
    raise InvalidIdError(f"not a YouTube video id or URL: {text!r}")


def _url_video(url: str) -> NewVideo:
    """Any other URL yt-dlp can fetch; its id is `url-` and the first 16 hex digits of the URL's sha256."""
    import hashlib

    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise InvalidIdError(f"not a YouTube video id or an http(s) URL: {url!r}")
    vid = "url-" + hashlib.sha256(url.encode()).hexdigest()[:16]
    return NewVideo(id=vid, source="url", source_id=url, url=url)


def _youtube_video(video_id: str, source: str, info: dict | None = None) -> NewVideo:
    return NewVideo(
        id=validate_video_id(video_id),
        source=source,
        source_id=video_id,
        url=YOUTUBE_WATCH_URL.format(id=video_id),
        info=info or {},
    )


def _limited(scan: SourceScan, limit: int | None) -> SourceScan:
    if limit is not None:
        scan.videos = scan.videos[:limit]
    return scan


def _unique(videos: Iterable[NewVideo], scan: SourceScan) -> None:
    seen: set[str] = set()
    for v in videos:
        if v.id in seen:
            scan.rejected.append((v.source_id, f"duplicate video id {v.id}"))
            continue
        seen.add(v.id)
        scan.videos.append(v)


def read_id_file(path: str | Path, limit: int | None = None) -> SourceScan:
    """YouTube ids or URLs, one per line; blank lines and '#' comments ignored.

    Other http(s) URLs are accepted too (any site yt-dlp supports); their id is `url-<hash>`.
    """
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"id file {path} does not exist")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return read_id_entries(((f"{path.name}:{n}", line) for n, line in enumerate(lines, 1)), limit)


def read_id_entries(entries: Iterable[tuple[str, str]], limit: int | None = None) -> SourceScan:
    """(where, text) entries holding a YouTube id or URL, or another http(s) URL, each (an id file's lines, a
    form's list); blank entries and '#' comments ignored, a bad one rejected with `where` and the reason."""
    scan = SourceScan()
    found = []
    for where, line in entries:
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            found.append(_youtube_video(parse_youtube_id(entry), "youtube"))
        except InvalidIdError:
            try:
                found.append(_url_video(entry))
            except InvalidIdError as exc:
                scan.rejected.append((where, str(exc)))
    _unique(found, scan)
    return _limited(scan, limit)


def read_howto100m_csv(
    path: str | Path, categories: Iterable[str] | None = DEFAULT_HOWTO100M_CATEGORIES, limit: int | None = None
) -> SourceScan:
    """HowTo100M's csv (`video_id, category_1, category_2, rank, task_id`), filtered by category.

    A row is kept when its category_1 or category_2 is one of `categories` (case-insensitive); `None` keeps
    every row. Read streaming: the real file has 1.2 M rows.
    """
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"HowTo100M csv {path} does not exist")
    wanted = None if categories is None else {c.strip().lower() for c in categories}
    scan = SourceScan()
    found: list[NewVideo] = []
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in HOWTO100M_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SettingsError(
                f"{path} is not a HowTo100M csv: missing columns {', '.join(missing)} "
                f"(found {', '.join(reader.fieldnames or []) or 'none'})"
            )
        for row in reader:
            if limit is not None and len(found) >= limit:
                break
            c1, c2 = (row.get("category_1") or "").strip(), (row.get("category_2") or "").strip()
            if wanted is not None and c1.lower() not in wanted and c2.lower() not in wanted:
                continue
            vid = (row.get("video_id") or "").strip()
            try:
                validate_video_id(vid)
            except InvalidIdError as exc:
                scan.rejected.append((f"{path.name}:{reader.line_num}", str(exc)))
                continue
            info = {"category_1": c1, "category_2": c2, "rank": row.get("rank"), "task_id": row.get("task_id")}
            found.append(_youtube_video(vid, "howto100m", info))
    _unique(found, scan)
    return _limited(scan, limit)


def read_local_dir(
    folder: str | Path, limit: int | None = None, extensions: Iterable[str] = VIDEO_EXTENSIONS
) -> SourceScan:
    """Video files in `folder` (recursively); the id is the file name without extension, validated."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SettingsError(f"video folder {folder} does not exist")
    exts = {e.lower() for e in extensions}
    scan = SourceScan()
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts):
        try:
            vid = video_id_from_filename(path.stem)
        except InvalidIdError as exc:
            scan.rejected.append((str(path), f"{exc}; rename the file"))
            continue
        found.append(NewVideo(id=vid, source="local", source_id=str(path.resolve()), title=path.stem))
    _unique(found, scan)
    return _limited(scan, limit)
