"""Folders (checkpoints, final models) in the artifact store under content-addressed prefixes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from videobert.core.errors import SettingsError
from videobert.core.runtime import Runtime
from videobert.core.storage import install_folder, keys, sha256_file

CHECKPOINTS = "checkpoints"  # store kind: checkpoints/<content hash>/<file>
MODELS = "models"  # store kind: models/<content hash>/<file> (final models)
SUBFOLDER_SEP = "__"  # an object name stands for a file in a subfolder: dvclive__plots__x.tsv

Progress = Callable[[int, int, dict[str, float]], None]  # (step, max_steps, latest logs)


FETCHED = ".fetched-from"  # written last into a fetched folder: the prefix it holds, so a complete one is known


def fetch_folder(rt: Runtime, prefix: str, dest: Path) -> None:
    """Every object under `prefix` into `dest` (verified), replacing what `dest` held unless it is already a
    complete fetch of that prefix; safe when several processes fetch the same folder at once (the ranks of one
    torchrun resuming: see `install_folder`)."""
    names = [k[len(prefix):] for k in rt.store.list(prefix)]
    if not names:
        raise SettingsError(f"nothing under {prefix} in {rt.store.describe()}")

    def fill(tmp: Path) -> None:
        for name in names:
            rt.store.get_file(prefix + name, tmp / name.replace(SUBFOLDER_SEP, "/"), verify=True)
        (tmp / FETCHED).write_text(prefix)

    def complete(folder: Path) -> bool:
        marker = folder / FETCHED
        return marker.is_file() and marker.read_text() == prefix

    install_folder(dest, fill, complete)


def _entries(folder: Path) -> list[tuple[str, str, Path]]:
    """(relative name, sha256, path) of a folder's files, sorted; the marker of a fetched copy left out."""
    return [(f.relative_to(folder).as_posix(), sha256_file(f)[0], f)
            for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != FETCHED)]


def folder_digest(folder: Path) -> str:
    """The content hash `put_folder` gives a folder: sha256 over its files' names and sha256."""
    return hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha, _ in _entries(folder)).encode()).hexdigest()


def put_folder(rt: Runtime, kind: str, folder: Path) -> tuple[str, str]:
    """Upload a folder under `<kind>/<content hash>/`, the hash over its files' names and sha256; returns
    (prefix, hash). Files first, so the prefix is complete before anyone records it."""
    entries = _entries(folder)
    digest = hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha, _ in entries).encode()).hexdigest()
    for name, _, f in entries:
        rt.store.put_file(keys.dataset_artifact(kind, digest, name.replace("/", SUBFOLDER_SEP)), f)
    return keys.dataset_prefix(kind, digest), digest


def folder_problem(rt: Runtime, prefix: str, sha256: str) -> str | None:
    """What is wrong with a folder recorded under `prefix` with content hash `sha256`: every object read back and
    hashed as a stream, the folder hash recomputed over their names (a missing, changed or extra file changes it)."""
    from videobert.core.errors import ObjectNotFoundError

    names = sorted(k[len(prefix):] for k in rt.store.list(prefix))
    if not names:
        return f"missing: nothing under {prefix} in {rt.store.describe()}"
    entries = []
    for name in names:
        try:
            found = rt.store.content_info(prefix + name)
        except ObjectNotFoundError:
            return f"missing: {prefix + name} went away while it was read"
        entries.append((name.replace(SUBFOLDER_SEP, "/"), found.sha256))
    entries.sort(key=lambda e: Path(e[0]).parts)  # put_folder's order: the files' paths
    digest = hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha in entries).encode()).hexdigest()
    if digest != sha256:
        return f"corrupt: the files under {prefix} hash to {digest[:16]}, {sha256[:16]} was recorded"
    return None


def verify_checkpoints(rt: Runtime, repair: bool = False) -> tuple[int, list[tuple[str, int, str]]]:
    """Every training run's recorded checkpoints against their content hash; returns (checked, [(run key, step,
    problem)]). With `repair`, a checkpoint that does not verify is taken off its run's record (a resumed run then
    starts from the newest one that does)."""
    from videobert.db import repository as repo

    checked, problems = 0, []
    for run in repo.training_runs(rt.db):
        bad = []
        for c in run["checkpoints"]:
            checked += 1
            problem = folder_problem(rt, c["prefix"], c["sha256"])
            if problem:
                problems.append((run["run_key"], int(c["step"]), problem))
                bad.append(int(c["step"]))
        if repair and bad:
            repo.forget_checkpoints(rt.db, run["id"], bad)
    return checked, problems


def verify_models(rt: Runtime, repair: bool = False) -> tuple[int, list[tuple[str, str, str | None]]]:
    """Every final model in the store (`models/<content hash>/`) against the hash its prefix names; returns
    (checked, [(prefix, problem, training run key or None)]). With `repair`, a model that does not verify is
    removed from the store and its training run (named by the model's `run.json`) marked failed, so that the same
    `videobert train` writes it again from the run's newest checkpoint."""
    from videobert.core.errors import VideobertError
    from videobert.db import repository as repo
    from videobert.db.models import StageStatus

    prefixes = sorted({"/".join(k.split("/")[:2]) + "/" for k in rt.store.list(f"{MODELS}/")})
    runs = {r["run_key"]: r for r in repo.training_runs(rt.db)}
    problems: list[tuple[str, str, str | None]] = []
    for prefix in prefixes:
        problem = folder_problem(rt, prefix, prefix.split("/")[1])
        if problem is None:
            continue
        try:
            run_key = str(rt.store.get_json(prefix + "run.json").get("run_key"))  # type: ignore[union-attr]
        except (VideobertError, ValueError, AttributeError):
            run_key = None  # run.json itself damaged or gone: the run cannot be named
        problems.append((prefix, problem, run_key if run_key in runs else None))
        if repair:
            for key in rt.store.list(prefix):
                rt.store.delete(key)
            if run_key in runs and runs[run_key]["status"] == StageStatus.DONE:
                repo.finish_training_run(rt.db, runs[run_key]["id"], StageStatus.FAILED,
                                         error=f"IntegrityError: its final model {prefix} did not verify ({problem}) "
                                               "and was removed by `videobert verify --repair`: train again to write it")
    return len(prefixes), problems
