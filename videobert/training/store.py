"""Folders (checkpoints, final models) in the artifact store under content-addressed prefixes."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from videobert.core.errors import SettingsError
from videobert.core.runtime import Runtime
from videobert.core.storage import keys, sha256_file

CHECKPOINTS = "checkpoints"  # store kind: checkpoints/<content hash>/<file>
MODELS = "models"  # store kind: models/<content hash>/<file> (final models)
SUBFOLDER_SEP = "__"  # an object name stands for a file in a subfolder: dvclive__plots__x.tsv

Progress = Callable[[int, int, dict[str, float]], None]  # (step, max_steps, latest logs)


def fetch_folder(rt: Runtime, prefix: str, dest: Path) -> None:
    """Every object under `prefix` into `dest` (verified), through a temporary folder."""
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    names = [k[len(prefix):] for k in rt.store.list(prefix)]
    if not names:
        raise SettingsError(f"nothing under {prefix} in {rt.store.describe()}")
    for name in names:
        rt.store.get_file(prefix + name, tmp / name.replace(SUBFOLDER_SEP, "/"), verify=True)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def put_folder(rt: Runtime, kind: str, folder: Path) -> tuple[str, str]:
    """Upload a folder under `<kind>/<content hash>/`, the hash over its files' names and sha256; returns
    (prefix, hash). Files first, so the prefix is complete before anyone records it."""
    entries = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        entries.append((f.relative_to(folder).as_posix(), sha256_file(f)[0], f))
    digest = hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha, _ in entries).encode()).hexdigest()
    for name, _, f in entries:
        rt.store.put_file(keys.dataset_artifact(kind, digest, name.replace("/", SUBFOLDER_SEP)), f)
    return keys.dataset_prefix(kind, digest), digest
