"""HowTo100M's caption file (`raw_caption.json`, about 2 GB): a byte-offset index and per-video look-ups.

The file is one JSON object `{video_id: {"start": [...], "end": [...], "text": [...]}, ...}`. Loading it whole
takes tens of GB of memory, so it is scanned once, streaming, into an index of (video id -> byte offset,
length) kept in a small SQLite file; a look-up then reads one entry. Memory stays flat whatever the file size.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from videobert.core.errors import PermanentStageError

READ_BYTES = 4 << 20  # file read size while scanning
FIRST_WINDOW = 64 << 10  # first guess of one entry's size; doubled until the entry fits
INDEX_VERSION = "1"


class MalformedCaptionFileError(PermanentStageError):
    """The caption file is not the JSON object it should be; the message gives the byte offset."""


class _Reader:
    """A forward-only byte buffer over a binary file, addressed by absolute file offsets."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.buf = b""
        self.start = 0  # file offset of buf[0]
        self.eof = False

    def fill(self, upto: int) -> None:
        """Make sure bytes up to file offset `upto` are buffered (unless the file ends first)."""
        while not self.eof and self.start + len(self.buf) < upto:
            chunk = self.fh.read(max(READ_BYTES, upto - self.start - len(self.buf)))
            if not chunk:
                self.eof = True
            self.buf += chunk

    def drop_before(self, offset: int) -> None:
        """Forget bytes before `offset` (keeps memory flat)."""
        cut = offset - self.start
        if cut > READ_BYTES:
            self.buf = self.buf[cut:]
            self.start = offset

    def byte(self, offset: int) -> int | None:
        self.fill(offset + 1)
        i = offset - self.start
        return self.buf[i] if 0 <= i < len(self.buf) else None

    def skip_ws(self, offset: int) -> int:
        while (b := self.byte(offset)) is not None and b in b" \t\r\n":
            offset += 1
        return offset

    def window(self, offset: int, size: int) -> bytes:
        self.fill(offset + size)
        i = offset - self.start
        return self.buf[i : i + size]


def scan_entries(fh: BinaryIO, name: str = "caption file") -> Iterator[tuple[str, int, int]]:
    """Yield (video id, byte offset, byte length) of every entry of the top-level JSON object."""
    decoder = json.JSONDecoder()
    r = _Reader(fh)

    def bad(offset: int, why: str) -> MalformedCaptionFileError:
        return MalformedCaptionFileError(f"{name} is malformed at byte {offset}: {why}")

    pos = r.skip_ws(0)
    if r.byte(pos) != ord("{"):
        raise bad(pos, "expected '{' at the start of the file")
    pos = r.skip_ws(pos + 1)
    first = True
    while True:
        b = r.byte(pos)
        if b is None:
            raise bad(pos, "the file ends before the closing '}' (truncated?)")
        if b == ord("}"):
            return
        if not first:
            if b != ord(","):
                raise bad(pos, f"expected ',' or '}}' between entries, found {chr(b)!r}")
            pos = r.skip_ws(pos + 1)
            if r.byte(pos) is None:
                raise bad(pos, "the file ends before the closing '}' (truncated?)")
        first = False
        # key: a JSON string
        key_window = r.window(pos, 4096).decode("utf-8", errors="ignore")
        try:
            key, key_end = decoder.raw_decode(key_window)
        except json.JSONDecodeError as exc:
            raise bad(pos, f"expected a video id string: {exc.msg}") from None
        if not isinstance(key, str):
            raise bad(pos, "expected a video id string")
        pos = r.skip_ws(pos + len(key_window[:key_end].encode()))
        if r.byte(pos) != ord(":"):
            raise bad(pos, "expected ':' after the video id")
        pos = r.skip_ws(pos + 1)
        # value: decode a growing window until the whole entry fits
        size = FIRST_WINDOW
        while True:
            raw = r.window(pos, size)
            text = raw.decode("utf-8", errors="ignore")
            try:
                _value, end = decoder.raw_decode(text)
                break
            except json.JSONDecodeError as exc:
                if len(raw) < size:  # the whole rest of the file was there: really malformed
                    raise bad(pos + exc.pos, f"entry {key!r}: {exc.msg}") from None
                size *= 2
        length = len(text[:end].encode())
        if raw[:length] != text[:end].encode():
            raise bad(pos, f"entry {key!r} is not valid UTF-8")
        yield key, pos, length
        pos = r.skip_ws(pos + length)
        r.drop_before(pos)


class HowTo100MCaptions:
    """Per-video access to a HowTo100M caption file through a byte-offset index built on first use."""

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise MalformedCaptionFileError(f"HowTo100M caption file {self.path} does not exist")
        st = self.path.stat()
        ident = f"{INDEX_VERSION}:{self.path}:{st.st_size}:{st.st_mtime_ns}"
        self.index_path = Path(cache_dir) / f"howto100m-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.sqlite"
        self.identity = f"{st.st_size}:{st.st_mtime_ns}"  # enters transcript fingerprints

    def ensure_index(self) -> Path:
        """Build the index unless it exists; one process builds, others wait for it."""
        if self.index_path.exists():
            return self.index_path
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.index_path.with_suffix(".lock")
        with open(lock, "w") as lock_fh:
            fcntl.flock(lock_fh, fcntl.LOCK_EX)
            try:
                if not self.index_path.exists():
                    self._build()
            finally:
                fcntl.flock(lock_fh, fcntl.LOCK_UN)
        return self.index_path

    def _build(self) -> None:
        tmp = self.index_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            with contextlib.closing(sqlite3.connect(tmp)) as conn, open(self.path, "rb") as fh:
                conn.execute("CREATE TABLE entries (video_id TEXT PRIMARY KEY, offset INTEGER, length INTEGER)")
                batch = []
                for entry in scan_entries(fh, str(self.path)):
                    batch.append(entry)
                    if len(batch) >= 10_000:
                        conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", batch)
                        batch.clear()
                conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", batch)
                conn.commit()
            os.replace(tmp, self.index_path)
        finally:
            tmp.unlink(missing_ok=True)

    def raw_entry(self, video_id: str) -> object | None:
        """The parsed JSON entry of `video_id`, or None when the file has none."""
        index = self.ensure_index()
        with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT offset, length FROM entries WHERE video_id = ?", (video_id,)).fetchone()
        if row is None:
            return None
        with open(self.path, "rb") as fh:
            fh.seek(row[0])
            return json.loads(fh.read(row[1]))

    def __len__(self) -> int:
        with contextlib.closing(sqlite3.connect(f"file:{self.ensure_index()}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
