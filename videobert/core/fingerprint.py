"""Stage fingerprints: what a stage's result depends on, hashed.

A fingerprint covers the stage's name and code version, the parameters it reads, and the sha256 of every
input artifact. Equal fingerprints mean the stored result is still valid, so the stage is skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}: {value!r}")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def stage_fingerprint(
    stage: str, code_version: str, params: Mapping[str, Any] | BaseModel | None, inputs: Mapping[str, str]
) -> str:
    """sha256 hex of (stage, code version, parameters, {input name: input sha256})."""
    payload = {"stage": stage, "code": code_version, "params": params or {}, "inputs": dict(inputs)}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
