"""Running one per-video stage with its database record: claim, run, verify, then mark done.

The order is the contract that makes runs resumable: the stage's artifacts are written (atomically) and
verified in the store first; only then is its row committed as done. A crash in between leaves a
'running' row that the next run takes over, never a 'done' row without its artifacts.

Every per-video stage (ingest, features, tokens, and the ones to come) is written in one shape:

* a `StageSpec` naming the stage, its code version and, for a stage that reads another stage's output,
  which stage and artifact (`reads`);
* a fingerprint function (`videobert.core.fingerprint.stage_fingerprint` over the params section's
  `fingerprinted()` values and the input artifacts' sha256);
* a body that writes the stage's artifacts and returns a `StageOutput`;
* `run_stage` (a stage with no stored input) or `run_derived_stage` (read the upstream artifact, fingerprint,
  run the body, record), which call `execute_stage`.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from videobert.core.errors import (
    ClaimLostError,
    DatabaseUnavailableError,
    IntegrityError,
    ObjectNotFoundError,
    UpstreamIntegrityError,
    VideobertError,
)
from videobert.core.storage import ArtifactStore, ObjectInfo
from videobert.core.verify import object_problem
from videobert.db import repository as repo
from videobert.db.engine import Database
from videobert.db.models import StageStatus

if TYPE_CHECKING:
    from videobert.core.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageSpec:
    """A per-video stage: its name, code version (bump it when the output changes) and stored input."""

    name: str
    version: str
    reads: tuple[str, str] | None = None  # (upstream stage, its artifact) this stage reads, if any

    @property
    def upstream(self) -> str | None:
        """The stage whose output this one reads."""
        return self.reads[0] if self.reads else None


@dataclass
class StageOutput:
    """What a stage body returns: the artifacts it wrote and what it found."""

    artifacts: dict[str, ObjectInfo] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageOptions:
    """How a run treats stages that are done or failed."""

    force: bool = False  # re-run stages that are done and up to date
    retry_permanent: bool = False  # re-run stages that failed permanently with the same fingerprint
    raise_retryable: bool = False  # re-raise transient errors (after recording them) for the orchestrator


DEFAULT_OPTIONS = StageOptions()
NOT_RUN = "not run"  # a stage whose input stage failed in this run: it was not attempted


@dataclass(frozen=True)
class StageResult:
    """How one (video, stage) ended in this run."""

    video_id: str
    stage: str
    status: str  # done | failed | skipped
    reason: str = ""  # skip reason, or the error type
    message: str = ""
    retryable: bool = False
    outcome: dict[str, Any] = field(default_factory=dict)


def execute_stage(
    db: Database,
    store: ArtifactStore,
    video_id: str,
    spec: StageSpec,
    fingerprint: str,
    body: Callable[[repo.Claim], StageOutput],
    lease_s: float,
    opts: StageOptions = DEFAULT_OPTIONS,
) -> StageResult:
    """Claim (video, stage), run `body`, verify its artifacts, then record the result.

    A failure of `body` is recorded on the row (error type, message, retryable) and returned as a
    'failed' result, so that one bad video never stops a run. With `opts.raise_retryable`, a retryable error is
    re-raised after it is recorded, so that an orchestrator can retry the call with backoff.
    Database and claim errors are never swallowed: without a database nothing can be recorded.
    """
    claim = repo.claim_stage(
        db, video_id, spec.name, fingerprint, lease_s, retry_permanent=opts.retry_permanent, force=opts.force
    )
    if isinstance(claim, repo.Skip):
        return StageResult(video_id, spec.name, "skipped", claim.reason, claim.detail)
    heartbeat = _Heartbeat(db, claim, lease_s)
    try:
        with heartbeat:
            output = body(claim)
        for info in output.artifacts.values():
            store.verify(info)  # the artifact is there, whole, with the sha256 the body computed
    except (DatabaseUnavailableError, ClaimLostError):
        raise
    except Exception as exc:  # the per-video boundary: record and go on
        retryable = bool(getattr(exc, "retryable", False)) or not isinstance(exc, VideobertError)
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, VideobertError):
            # An unexpected error is a bug or an environment problem: keep where it happened.
            message += "\n" + "".join(traceback.format_exception(exc, limit=-3)).strip()
        repo.fail_stage(db, claim, type(exc).__name__, message, retryable)
        log.warning("video %s stage %s failed: %s: %s", video_id, spec.name, type(exc).__name__, str(exc)[:300])
        if opts.raise_retryable and retryable:
            raise
        return StageResult(video_id, spec.name, "failed", type(exc).__name__, message, retryable)
    repo.complete_stage(db, claim, output.artifacts, output.outcome)
    return StageResult(video_id, spec.name, "done", outcome=output.outcome)


class _Heartbeat:
    """Extends a claim's lease every third of it while the stage runs, so that a long stage on a live worker
    is never taken over; a dead worker stops beating and its lease runs out."""

    def __init__(self, db: Database, claim: repo.Claim, lease_s: float) -> None:
        self.db, self.claim, self.lease_s = db, claim, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{claim.video_id}-{claim.stage}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                repo.extend_lease(self.db, self.claim, self.lease_s)
            except Exception as exc:  # a database hiccup must not kill the stage; the next beat retries
                log.warning("could not extend the lease of %s/%s: %s", self.claim.video_id, self.claim.stage, exc)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the skeleton every per-video stage uses ------------------------------------------------------------


def decide(view: repo.StageView | None, fp: str, opts: StageOptions = DEFAULT_OPTIONS) -> str | None:
    """Plan a stage from its row alone: None when it must run, else the reason it is skipped."""
    if view is None or view.fingerprint != fp:
        return None
    if view.status == StageStatus.DONE:
        return None if opts.force else "up to date"
    if view.status == StageStatus.FAILED and view.retryable is False:
        return None if opts.retry_permanent else "failed permanently"
    return None  # pending, running (the claim decides), or failed with a retryable error



def run_stage(rt: Runtime, video_id: str, spec: StageSpec, fingerprint: str, body: Callable[[], StageOutput],
              opts: StageOptions = DEFAULT_OPTIONS) -> StageResult:
    """execute_stage with the runtime's database, store and claim lease."""
    return execute_stage(rt.db, rt.store, video_id, spec, fingerprint, lambda _claim: body(),
                         rt.settings.claim_lease_s, opts)


def stage_input(rt: Runtime, video_id: str, spec: StageSpec) -> ObjectInfo | StageResult:
    """The artifact `spec` reads from its upstream stage, or the 'skipped' result when that stage is not done."""
    assert spec.reads is not None, f"stage {spec.name} reads no other stage's output"
    upstream, artifact = spec.reads
    view = repo.stage_views(rt.db, [upstream], [video_id]).get((video_id, upstream))
    if view is None or view.status != StageStatus.DONE:
        status = view.status if view else "not run"
        return StageResult(video_id, spec.name, "skipped", "upstream not done", f"{upstream} is {status}")
    return view.artifact(artifact)


def run_derived_stage(rt: Runtime, video_id: str, spec: StageSpec, fingerprint_of: Callable[[ObjectInfo], str],
                      body: Callable[[ObjectInfo], StageOutput], opts: StageOptions = DEFAULT_OPTIONS) -> StageResult:
    """A stage that reads another stage's output: read the upstream artifact, fingerprint, run the body, record.

    Skipped (not failed) when the upstream stage is not done; `fingerprint_of` gets the input artifact (its
    sha256 goes into the fingerprint) and `body` gets it to read. An input that no longer verifies marks the
    upstream stage to run again and fails this one with a retryable UpstreamIntegrityError (not re-raised for the
    orchestrator: a retry before the upstream stage is redone would read the same bad input).
    """
    source = stage_input(rt, video_id, spec)
    if isinstance(source, StageResult):
        return source
    try:
        return run_stage(rt, video_id, spec, fingerprint_of(source), lambda: _read_input(rt, video_id, spec, source, body),
                         opts)
    except UpstreamIntegrityError as exc:  # already recorded on the row by execute_stage
        return StageResult(video_id, spec.name, "failed", type(exc).__name__, str(exc), retryable=True)


def _read_input(rt: Runtime, video_id: str, spec: StageSpec, source: ObjectInfo,
                body: Callable[[ObjectInfo], StageOutput]) -> StageOutput:
    """`body(source)`; when it fails on a store object and the input no longer has the size and sha256 the
    database recorded, mark the upstream stage to run again and raise UpstreamIntegrityError."""
    try:
        return body(source)
    except (IntegrityError, ObjectNotFoundError) as exc:
        problem = object_problem(rt.store, source)
        if problem is None:
            raise  # the input verifies: the error is about something else
        assert spec.reads is not None
        upstream, artifact = spec.reads
        kind, detail = problem
        repo.mark_for_rerun(rt.db, video_id, upstream, IntegrityError.__name__,
                            f"{kind}: {detail} (found by {spec.name}); the next run redoes it")
        raise UpstreamIntegrityError(
            f"the input of {spec.name}, the {artifact} of {upstream} of video {video_id}, does not verify ({kind}: "
            f"{detail}); {upstream} is marked to run again, and {spec.name} runs after it") from exc
