"""Stored artifacts checked against the sha256 the database recorded, and what does not verify marked to run again.

A `done` row promises that its artifacts are in the store with the size and sha256 it recorded. `verify_stages`
checks that promise for every done (video, stage): each artifact is read from the store as a stream and hashed
(recorded metadata is not trusted: a local folder's sidecar record or an S3 object's sha256 metadata can say
what the content no longer is); an object that is gone counts as well as one that changed.

With `repair`, each stage that does not verify is marked failed with a retryable `IntegrityError`, and every
stage that depends on its output, directly or further down (transcript -> punctuate, download -> features ->
tokens), with a retryable `UpstreamIntegrityError`: the next plain run (`videobert ingest`, `videobert dataset
tokens`) redoes them, in order. The readers are redone too because nothing tells when the object went bad: one
that ran after may have read the bad content.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from videobert.core.errors import IntegrityError, InvalidIdError, ObjectNotFoundError, UpstreamIntegrityError
from videobert.core.storage import ArtifactStore, ObjectInfo
from videobert.db import repository as repo
from videobert.db.engine import Database

if TYPE_CHECKING:
    from videobert.core.stages import StageSpec

MISSING = "missing"
CORRUPT = "corrupt"
VERIFY_THREADS = 8  # objects read and hashed at once (the work waits on the disk or the network)


@dataclass(frozen=True)
class Problem:
    """One recorded artifact that does not verify."""

    video_id: str
    stage: str
    artifact: str
    key: str
    kind: str  # MISSING | CORRUPT
    detail: str


@dataclass
class StageCheck:
    """One stage's done rows: checked = ok + corrupt + missing (a row with a missing and a corrupt artifact counts
    as missing); marked: rows set to run again (its own that did not verify, and those whose input did not)."""

    checked: int = 0
    ok: int = 0
    corrupt: int = 0
    missing: int = 0
    marked: int = 0


@dataclass
class VerifyReport:
    """What `verify_stages` found (and, with repair, marked)."""

    stages: dict[str, StageCheck] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def stage(self, name: str) -> StageCheck:
        """The counts of stage `name` (new ones at zero)."""
        return self.stages.setdefault(name, StageCheck())


def object_problem(store: ArtifactStore, info: ObjectInfo) -> tuple[str, str] | None:
    """(MISSING or CORRUPT, what was found) when the stored object lacks the size and sha256 of `info`, else None."""
    try:
        found = store.content_info(info.key)
    except ObjectNotFoundError:
        return MISSING, f"no object {info.key} in {store.describe()}"
    except InvalidIdError as exc:
        return CORRUPT, f"the recorded key is not valid: {exc}"
    if (found.size, found.sha256) != (info.size, info.sha256):
        return CORRUPT, (f"{info.key} has {found.size} bytes with sha256 {found.sha256}; "
                         f"{info.size} bytes with sha256 {info.sha256} were recorded")
    return None


def _row_problems(store: ArtifactStore, view: repo.StageView) -> list[Problem]:
    problems = []
    for name, record in sorted(view.artifacts.items()):
        try:
            info = view.artifact(name)
        except (KeyError, TypeError, ValueError):
            found: tuple[str, str] | None = (CORRUPT, f"the recorded artifact {record!r} is not an object record")
        else:
            found = object_problem(store, info)
        if found:
            key = record.get("key", "?") if isinstance(record, dict) else "?"
            problems.append(Problem(view.video_id, view.stage, name, str(key), *found))
    return problems


def readers(specs: Sequence[StageSpec], stage: str) -> list[str]:
    """Every stage of `specs` that depends on `stage`'s output, directly or through others, nearest first."""
    found: list[str] = []
    frontier = [stage]
    while frontier:
        upstream = frontier.pop(0)
        for spec in specs:
            if spec.upstream == upstream and spec.name not in found and spec.name != stage:
                found.append(spec.name)
                frontier.append(spec.name)
    return found


def verify_stages(db: Database, store: ArtifactStore, specs: Sequence[StageSpec] = (),
                  stages: Sequence[str] | None = None, repair: bool = False,
                  threads: int = VERIFY_THREADS) -> VerifyReport:
    """Check every done stage's artifacts (of `stages`, or all) against the database; with `repair`, mark each
    stage that does not verify, and every stage of `specs` that depends on it, to run again."""
    report = VerifyReport()
    bad: dict[tuple[str, str], Problem] = {}  # (video, stage) -> its first problem, missing ones first
    with ThreadPoolExecutor(threads, thread_name_prefix="verify") as pool:
        for batch in repo.done_stage_batches(db, stages):
            for view, problems in zip(batch, pool.map(lambda v: _row_problems(store, v), batch), strict=True):
                counts = report.stage(view.stage)
                counts.checked += 1
                if not problems:
                    counts.ok += 1
                    continue
                report.problems.extend(problems)
                worst = min(problems, key=lambda p: p.kind != MISSING)
                bad[(view.video_id, view.stage)] = worst
                if worst.kind == MISSING:
                    counts.missing += 1
                else:
                    counts.corrupt += 1
    if repair:
        _mark(db, bad, specs, report)
    return report


def _mark(db: Database, bad: dict[tuple[str, str], Problem], specs: Sequence[StageSpec], report: VerifyReport) -> None:
    """Mark the stages that did not verify, then the ones that depend on them, to run again."""
    for (video_id, stage), p in bad.items():
        message = f"{p.kind}: {p.detail} (found by videobert verify); the next run redoes it"
        if repo.mark_for_rerun(db, video_id, stage, IntegrityError.__name__, message):
            report.stage(stage).marked += 1
    marked: set[tuple[str, str]] = set(bad)
    for (video_id, stage), p in bad.items():
        for reader in readers(specs, stage):
            if (video_id, reader) in marked:
                continue
            marked.add((video_id, reader))
            message = (f"it depends on the output of {stage}, which does not verify ({p.kind}: {p.key}); "
                       f"it runs again after {stage}")
            if repo.mark_for_rerun(db, video_id, reader, UpstreamIntegrityError.__name__, message):
                report.stage(reader).marked += 1

