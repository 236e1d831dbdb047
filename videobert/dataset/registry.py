"""Dataset indexes (manifests, sentences indexes, tokens indexes) kept in the store under their content hash and
registered in the database, so that a dataset step on any worker finds its inputs without the files another
worker left in its own working folder.

Each dataset step still writes its local file (`dataset/manifest.json` ...: the DVC outputs of `dvc repro`), and
also puts the same document in the store (`manifests/<sha256>/manifest.json`) and records it (`dataset_indexes`).
A step's input is named by a reference (`resolve_index`): empty for the latest registered one, a content hash or
a unique prefix of one, or a local file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videobert.core.errors import SettingsError
from videobert.core.fingerprint import canonical_json
from videobert.core.ids import is_hex
from videobert.core.runtime import Runtime
from videobert.core.storage import keys
from videobert.dataset.corpus import read_index
from videobert.dataset.files import DatasetError, json_bytes, write_json
from videobert.db import repository as repo

MANIFEST, SENTENCES, TOKENS_INDEX = "manifest", "sentences", "tokens"
# the store kind and object name of each index kind, and the command that writes it
_LAYOUT = {
    MANIFEST: ("manifests", "manifest.json", "`videobert dataset manifest` or the manifest flow"),
    SENTENCES: ("sentences-indexes", "sentences.json", "`videobert dataset manifest` or the manifest flow"),
    TOKENS_INDEX: ("tokens-indexes", "tokens.json", "`videobert dataset tokens` or the tokens flow"),
}
# the fields every index of a kind has (a file that lacks one is not an index of that kind)
REQUIRED = {MANIFEST: ("videos", "dim"), SENTENCES: ("videos",), TOKENS_INDEX: ("codebook", "videos")}
MIN_PREFIX = 4  # a hash prefix shorter than this is not taken for a hash


def content_hash(doc: dict[str, Any]) -> str:
    """sha256 of the document's canonical JSON (the manifest's is also what its codebook records)."""
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


@dataclass(frozen=True)
class Index:
    """A dataset index and where it came from."""

    kind: str
    doc: dict[str, Any]
    content_hash: str
    path: Path | None = None  # the local file it was read from (absolute); None: registered, read from the store

    @property
    def source(self) -> str:
        """Where it came from, for logs and errors."""
        return str(self.path) if self.path else f"registered {self.content_hash}"

    @property
    def manifest_hash(self) -> str | None:
        """The manifest a sentences or tokens index covers (recorded in it when it was written)."""
        return self.content_hash if self.kind == MANIFEST else self.doc.get("manifest")


def register(rt: Runtime, kind: str, doc: dict[str, Any], *, manifest_hash: str | None = None,
             codebook_hash: str | None = None, summary: dict[str, Any] | None = None) -> Index:
    """Put an index in the store under its content hash (first, so that a recorded index can always be read) and
    record it in the database as the latest of its kind."""
    folder, name, _ = _LAYOUT[kind]
    digest = content_hash(doc)
    key = keys.dataset_artifact(folder, digest, name)
    if not rt.store.exists(key):
        rt.store.put_bytes(key, json_bytes(doc), content_type="application/json")
    repo.register_index(rt.db, kind, digest, store_key=key, summary=summary or {}, manifest_hash=manifest_hash,
                        codebook_hash=codebook_hash)
    return Index(kind, doc, digest)


def resolve_index(rt: Runtime, kind: str, ref: str | Path | None, manifest_hash: str | None = None) -> Index:
    """The index named by `ref`: empty, the latest registered (of those covering `manifest_hash` when given); an
    existing local file (a relative path resolves against this process's working folder), read as it is; else a
    registered content hash or a unique prefix of one, fetched from the store and checked against its hash."""
    folder, _, writer = _LAYOUT[kind]
    given = str(ref or "").strip()
    path = Path(given).expanduser() if given else None
    if path is not None and not path.is_absolute():
        path = Path.cwd() / path
    if path is not None and path.exists():
        doc = read_index(path, f"{kind} index", *REQUIRED[kind])
        return Index(kind, doc, content_hash(doc), path)
    if given and not _looks_like_hash(given):
        raise DatasetError(f"{kind} index {path} does not exist (relative paths resolve against {Path.cwd()}, the "
                           f"working folder of the process that runs the step), and {given!r} is not a content hash")
    versions = repo.dataset_indexes(rt.db, kind, manifest_hash)
    scope = f" for manifest {manifest_hash[:16]}" if manifest_hash else ""
    try:
        found = repo.pick_version(versions, given or None, f"{kind} index{scope}", f"write one first ({writer})")
    except SettingsError as exc:
        raise DatasetError(str(exc)) from None
    doc = rt.store.get_json(keys.check(found["store_key"]), verify=True)
    if not isinstance(doc, dict) or content_hash(doc) != found["content_hash"]:
        raise DatasetError(f"{kind} index {found['content_hash'][:16]} in {rt.store.describe()} does not match its "
                           "hash: write it again")
    return Index(kind, doc, found["content_hash"])


def _looks_like_hash(text: str) -> bool:
    return len(text) >= MIN_PREFIX and is_hex(text)


def local_file(rt: Runtime, index: Index) -> Path:
    """A local file holding the index: the file it was read from, else a copy in the data folder's cache (the
    same bytes as in the store), for code that reads indexes from files."""
    if index.path:
        return index.path
    folder, name, _ = _LAYOUT[index.kind]
    path = rt.cache_dir() / folder / index.content_hash / name
    if not path.exists():
        write_json(path, index.doc)
    return path
