"""Validation of the ids that end up in object keys, file paths and database rows."""

from __future__ import annotations

import re

from videobert.core.errors import InvalidIdError

# Letters, digits, '_', '-' and '.', at most 128 characters. YouTube ids may start with '-' or '_' (and
# HowTo100M has such ids), which is harmless because no id is ever passed through a shell.
_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
# Object names inside a video's folder: the same alphabet, must contain a letter or digit.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _check(value: object, pattern: re.Pattern[str], kind: str) -> str:
    if not isinstance(value, str):
        raise InvalidIdError(f"{kind} must be a string, got {type(value).__name__}: {value!r}")
    if "\x00" in value:
        raise InvalidIdError(f"{kind} {value!r} contains a NUL byte")
    if not value:
        raise InvalidIdError(f"{kind} is empty")
    if value in {".", ".."} or ".." in value:
        raise InvalidIdError(f"{kind} {value!r} contains '..'")
    if not pattern.fullmatch(value):
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "_.-"))})
        why = f"characters {''.join(bad)!r} are not allowed" if bad else "it must be 1-128 characters"
        raise InvalidIdError(
            f"{kind} {value!r} is not valid: {why} (allowed: letters, digits, '_', '-', '.'; no '..')"
        )
    return value


def validate_video_id(value: object) -> str:
    """Return `value` if it is a safe video id, else raise InvalidIdError naming it."""
    return _check(value, _ID_RE, "video id")


def validate_name(value: object, kind: str = "name") -> str:
    """Return `value` if it is a safe stage, artifact or object name, else raise InvalidIdError."""
    return _check(value, _NAME_RE, kind)


def validate_key_part(value: object) -> str:
    """Return `value` if it is safe as one '/'-separated part of an object key."""
    return _check(value, _ID_RE, "object key part")


def video_id_from_filename(stem: str) -> str:
    """Derive a video id from a file name stem: spaces become '_', the rest must already be valid."""
    return validate_video_id(stem.strip().replace(" ", "_"))


def is_hex(text: str) -> bool:
    """True when `text` is non-empty and only hex digits: a content hash, a run key, or a prefix of one."""
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)
