"""Every query of the tracking database, in one place.

Claims are the heart of it: `claim_stage` lets exactly one worker run a (video, stage) at a time, on SQLite
and PostgreSQL alike, with one conditional UPDATE whose row count says who won. A claim held by a worker
that died (same host, process gone) or whose lease expired can be taken over.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from videobert.core.errors import ClaimLostError, SettingsError, UnknownVideoError
from videobert.core.ids import validate_name, validate_video_id
from videobert.core.processes import owner_id, owner_is_dead
from videobert.core.storage import ObjectInfo
from videobert.db.engine import Database
from videobert.db.models import (
    CaptioningRun,
    Codebook,
    CorpusVersion,
    DatasetIndex,
    EvaluationResult,
    EvaluationRun,
    StageRun,
    StageStatus,
    TrainingMetric,
    TrainingRun,
    UTCDateTime,
    Video,
    utcnow,
)

MAX_ERROR_MESSAGE_CHARS = 4000  # keep the head of very long tracebacks/messages
IN_LIST_CHUNK = 1000  # ids per `IN (...)` list and per multi-row insert (well below every driver's limits)


def _chunks(items: Sequence[Any], size: int = IN_LIST_CHUNK) -> list[Sequence[Any]]:
    """`items` in consecutive slices of at most `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- videos -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewVideo:
    """A video to register."""

    id: str
    source: str
    source_id: str
    url: str | None = None
    title: str | None = None
    duration_s: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _insert(dialect: str, table: Any) -> Any:
    """An INSERT of the dialect that knows ON CONFLICT (PostgreSQL's or SQLite's)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def register_videos(db: Database, videos: Iterable[NewVideo]) -> tuple[int, int]:
    """Insert videos not yet known (by id); return (added, already known). Ids are validated first."""
    rows = []
    for v in videos:
        validate_video_id(v.id)
        validate_name(v.source, "source")
        rows.append(
            {
                "id": v.id,
                "source": v.source,
                "source_id": v.source_id,
                "url": v.url,
                "title": v.title,
                "duration_s": v.duration_s,
                "info": v.info,
                "state": "registered",
                "created_at": utcnow(),
                "updated_at": utcnow(),
            }
        )
    added = 0
    with db.session() as s:
        for chunk in _chunks(rows):
            stmt = _insert(db.dialect, Video).values(chunk).on_conflict_do_nothing().returning(Video.id)
            added += len(s.execute(stmt).all())
    return added, len(rows) - added


def get_video(db: Database, video_id: str) -> Video:
    """The video row; UnknownVideoError if the id is not registered."""
    with db.session() as s:
        video = s.get(Video, video_id)
        if video is None:
            raise UnknownVideoError(f"unknown video id {video_id!r}: register it first (videobert ingest)")
        s.expunge(video)
        return video


def get_videos(db: Database, ids: Sequence[str]) -> dict[str, Video]:
    """The registered videos among `ids`, by id (detached rows)."""
    out: dict[str, Video] = {}
    with db.session() as s:
        for chunk in _chunks(ids):
            for video in s.scalars(select(Video).where(Video.id.in_(chunk))):
                out[video.id] = video
        s.expunge_all()
    return out


def all_video_ids(db: Database) -> list[str]:
    """Every registered video id, sorted."""
    with db.session() as s:
        return sorted(s.scalars(select(Video.id)))


def known_video_ids(db: Database, ids: Sequence[str] | None = None) -> set[str]:
    """The registered ids among `ids` (or all registered ids)."""
    with db.session() as s:
        stmt = select(Video.id)
        if ids is not None:
            found: set[str] = set()
            for chunk in _chunks(ids):
                found.update(s.scalars(stmt.where(Video.id.in_(chunk))))
            return found
        return set(s.scalars(stmt))


def update_video(db: Database, video_id: str, **values: Any) -> None:
    """Set columns of one video (title, duration_s, language, info ...)."""
    with db.session() as s:
        result = s.execute(update(Video).where(Video.id == video_id).values(updated_at=utcnow(), **values))
        if result.rowcount == 0:
            raise UnknownVideoError(f"unknown video id {video_id!r}")


# --- stage claims -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """The right to run one (video, stage) until the claim is completed, failed or its lease ends."""

    video_id: str
    stage: str
    fingerprint: str
    token: str
    attempt: int
    owner: str


@dataclass(frozen=True)
class Skip:
    """Why a stage was not claimed."""

    video_id: str
    stage: str
    reason: str  # "up to date" | "running elsewhere" | "failed permanently"
    detail: str = ""


@dataclass(frozen=True)
class StageView:
    """A read-only snapshot of a stage row, for planning."""

    video_id: str
    stage: str
    status: str
    fingerprint: str | None
    artifacts: dict[str, Any]
    outcome: dict[str, Any]
    error_type: str | None
    retryable: bool | None
    attempts: int

    def artifact(self, name: str) -> ObjectInfo:
        """The recorded artifact `name` as ObjectInfo."""
        a = self.artifacts[name]
        return ObjectInfo(a["key"], int(a["size"]), a["sha256"])


def _claimable(fingerprint: Any, now: Any, retry_permanent: bool, force: bool) -> Any:
    """The condition under which a row may be claimed with `fingerprint` at `now` (values or bound parameters)."""
    live_running = and_(StageRun.status == StageStatus.RUNNING, StageRun.lease_expires_at > now)
    conditions = [
        StageRun.status == StageStatus.PENDING,
        and_(StageRun.status == StageStatus.RUNNING, StageRun.lease_expires_at <= now),
        and_(StageRun.status == StageStatus.RUNNING, StageRun.lease_expires_at.is_(None)),
        and_(
            StageRun.status == StageStatus.DONE,
            or_(StageRun.fingerprint.is_(None), StageRun.fingerprint != fingerprint),
        ),
        and_(
            StageRun.status == StageStatus.FAILED,
            or_(
                StageRun.retryable.is_not(False),
                StageRun.fingerprint.is_(None),
                StageRun.fingerprint != fingerprint,
            ),
        ),
    ]
    if retry_permanent:
        conditions.append(StageRun.status == StageStatus.FAILED)
    if force:
        return ~live_running
    return or_(*conditions)


@dataclass(frozen=True)
class _ClaimStatements:
    """The statements of a claim and of its end, built once (bound parameters for every value): building and
    hashing SQLAlchemy expressions on every call cost more CPU than the database spends running them
    (bench/bench_scale.py)."""

    exists: Any  # the video's id, when registered
    make_row: Any  # the (video, stage) row, pending, when missing
    claim: Any  # the conditional UPDATE exactly one caller wins, RETURNING what the Claim needs
    held: Any  # why a row was not claimable: its status, holder and error type
    set_state: Any  # the video's last stage event
    finish: Any  # the claimed row to done or failed, if the claim is still held


@functools.cache
def _statements(dialect: str, retry_permanent: bool, force: bool) -> _ClaimStatements:
    runs = StageRun.__table__
    video_id, stage, now = bindparam("p_video_id"), bindparam("p_stage"), bindparam("p_now", type_=UTCDateTime())
    fingerprint = bindparam("p_fingerprint", type_=runs.c.fingerprint.type)
    key = and_(StageRun.video_id == video_id, StageRun.stage == stage)
    return _ClaimStatements(
        exists=select(Video.id).where(Video.id == video_id),
        make_row=_insert(dialect, runs).values(video_id=video_id, stage=stage, status=StageStatus.PENDING, attempts=0,
                                     artifacts={}, outcome={}).on_conflict_do_nothing(),
        claim=update(runs).where(key, _claimable(fingerprint, now, retry_permanent, force)).values(
            status=StageStatus.RUNNING, fingerprint=fingerprint, claimed_by=bindparam("p_owner"),
            claim_token=bindparam("p_token"), lease_expires_at=bindparam("p_lease", type_=UTCDateTime()),
            attempts=runs.c.attempts + 1, started_at=now, finished_at=None, error_type=None, error_message=None,
            retryable=None,
        ).returning(runs.c.fingerprint, runs.c.attempts, runs.c.claimed_by),
        held=select(runs.c.status, runs.c.claimed_by, runs.c.claim_token, runs.c.error_type).where(key),
        set_state=update(Video.__table__).where(Video.id == video_id).values(state=bindparam("p_state"),
                                                                            updated_at=now),
        finish=update(runs).where(key, StageRun.claim_token == bindparam("p_token"),
                                  StageRun.status == StageStatus.RUNNING).values(
            status=bindparam("p_status"), finished_at=now, lease_expires_at=None,
            artifacts=bindparam("p_artifacts", type_=runs.c.artifacts.type),
            outcome=bindparam("p_outcome", type_=runs.c.outcome.type), error_type=bindparam("p_error_type"),
            error_message=bindparam("p_error_message"), retryable=bindparam("p_retryable", type_=Boolean())),
    )


def claim_stage(
    db: Database,
    video_id: str,
    stage: str,
    fingerprint: str,
    lease_s: float,
    *,
    retry_permanent: bool = False,
    force: bool = False,
    owner: str | None = None,
) -> Claim | Skip:
    """Try to take (video, stage) for running with `fingerprint`; exactly one concurrent caller wins.

    Returns a Claim, or a Skip saying why not: done with the same fingerprint ("up to date"), held by a
    live worker ("running elsewhere"), or failed permanently with the same fingerprint (re-run it with
    `retry_permanent`). `force` re-runs a done stage but never steals a live claim.
    """
    validate_video_id(video_id)
    validate_name(stage, "stage")
    owner = owner or owner_id()
    token = uuid.uuid4().hex
    now = utcnow()
    values = {
        "status": StageStatus.RUNNING,
        "fingerprint": fingerprint,
        "claimed_by": owner,
        "claim_token": token,
        "lease_expires_at": now + dt.timedelta(seconds=lease_s),
        "attempts": StageRun.attempts + 1,
        "started_at": now,
        "finished_at": None,
        "error_type": None,
        "error_message": None,
        "retryable": None,
    }
    sql = _statements(db.dialect, retry_permanent, force)
    bound = {"p_video_id": video_id, "p_stage": stage, "p_now": now, "p_fingerprint": fingerprint, "p_owner": owner,
             "p_token": token, "p_lease": values["lease_expires_at"], "p_state": f"{stage}:{StageStatus.RUNNING}"}
    # One transaction, one commit: the row made when missing, the conditional UPDATE that exactly one concurrent
    # caller wins (on PostgreSQL a second caller's UPDATE waits for the first's commit, then finds the row no longer
    # claimable), and the video's state. A commit is a WAL flush: fewer of them is what claims per second are made of.
    with db.transaction() as conn:
        if conn.execute(sql.exists, bound).first() is None:
            raise UnknownVideoError(f"unknown video id {video_id!r}: register it first")
        conn.execute(sql.make_row, bound)
        won = conn.execute(sql.claim, bound).first()
        if won is not None:
            conn.execute(sql.set_state, bound)
            return Claim(video_id, stage, won.fingerprint, token, won.attempts, won.claimed_by)
        row = conn.execute(sql.held, bound).one()  # not claimable: why (in the same transaction)

    # Take over a claim whose holder died on this host; else say why not.
    if row.status == StageStatus.RUNNING and owner_is_dead(row.claimed_by):
        with db.session() as s:
            won = s.execute(
                update(StageRun)
                .where(StageRun.video_id == video_id, StageRun.stage == stage)
                .where(StageRun.status == StageStatus.RUNNING, StageRun.claim_token == row.claim_token)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
        if won == 1:
            return _claim_from_row(db, video_id, stage, token)
        return Skip(video_id, stage, "running elsewhere", "another worker took over the dead claim first")
    if row.status == StageStatus.RUNNING:
        return Skip(video_id, stage, "running elsewhere", f"claimed by {row.claimed_by}")
    if row.status == StageStatus.FAILED:
        return Skip(video_id, stage, "failed permanently", row.error_type or "")
    return Skip(video_id, stage, "up to date")


def _claim_from_row(db: Database, video_id: str, stage: str, token: str) -> Claim:
    with db.session() as s:
        row = s.execute(
            select(StageRun.fingerprint, StageRun.attempts, StageRun.claimed_by).where(
                StageRun.video_id == video_id, StageRun.stage == stage, StageRun.claim_token == token
            )
        ).one()
        s.execute(
            update(Video)
            .where(Video.id == video_id)
            .values(state=f"{stage}:{StageStatus.RUNNING}", updated_at=utcnow())
        )
    return Claim(video_id, stage, row.fingerprint, token, row.attempts, row.claimed_by)


def _finish(db: Database, claim: Claim, status: StageStatus, *, artifacts: dict[str, Any], outcome: dict[str, Any],
            error_type: str | None = None, error_message: str | None = None, retryable: bool | None = None) -> None:
    sql = _statements(db.dialect, False, False)
    bound = {"p_video_id": claim.video_id, "p_stage": claim.stage, "p_token": claim.token, "p_now": utcnow(),
             "p_status": status, "p_artifacts": artifacts, "p_outcome": outcome, "p_error_type": error_type,
             "p_error_message": error_message, "p_retryable": retryable, "p_state": f"{claim.stage}:{status}"}
    with db.transaction() as conn:
        if conn.execute(sql.finish, bound).rowcount != 1:
            raise ClaimLostError(
                f"stage {claim.stage} of video {claim.video_id}: the claim was taken over by another worker "
                "(its lease expired) before this one finished; its result was not recorded"
            )
        conn.execute(sql.set_state, bound)


def complete_stage(
    db: Database, claim: Claim, artifacts: dict[str, ObjectInfo], outcome: dict[str, Any] | None = None
) -> None:
    """Mark the claimed stage done with its (already written and verified) artifacts."""
    _finish(
        db,
        claim,
        StageStatus.DONE,
        artifacts={n: {"key": a.key, "sha256": a.sha256, "size": a.size} for n, a in artifacts.items()},
        outcome=outcome or {},
    )


def fail_stage(db: Database, claim: Claim, error_type: str, message: str, retryable: bool) -> None:
    """Record the claimed stage's failure; `retryable` decides whether a plain re-run tries it again."""
    if len(message) > MAX_ERROR_MESSAGE_CHARS:
        message = message[:MAX_ERROR_MESSAGE_CHARS] + " ... [truncated]"
    _finish(
        db, claim, StageStatus.FAILED, error_type=error_type, error_message=message, retryable=retryable,
        artifacts={}, outcome={},
    )


def extend_lease(db: Database, claim: Claim, lease_s: float) -> None:
    """Push the claim's lease forward (long stages call this as a heartbeat)."""
    with db.session() as s:
        changed = s.execute(
            update(StageRun)
            .where(StageRun.claim_token == claim.token, StageRun.status == StageStatus.RUNNING)
            .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        ).rowcount
    if changed != 1:
        raise ClaimLostError(f"stage {claim.stage} of video {claim.video_id}: the claim is no longer held")


def release_dead_claims(db: Database) -> int:
    """Mark 'running' rows whose holder died on this host as failed (retryable, type Interrupted)."""
    with db.session() as s:
        rows = s.execute(
            select(StageRun.id, StageRun.claimed_by, StageRun.claim_token).where(
                StageRun.status == StageStatus.RUNNING
            )
        ).all()
    released = 0
    for row in rows:
        if owner_is_dead(row.claimed_by):
            with db.session() as s:
                released += s.execute(
                    update(StageRun)
                    .where(StageRun.id == row.id, StageRun.claim_token == row.claim_token)
                    .where(StageRun.status == StageStatus.RUNNING)
                    .values(
                        status=StageStatus.FAILED,
                        error_type="Interrupted",
                        error_message=f"worker {row.claimed_by} stopped before finishing",
                        retryable=True,
                        finished_at=utcnow(),
                        lease_expires_at=None,
                    )
                    .execution_options(synchronize_session=False)
                ).rowcount
    return released


# --- reads for planning and reporting ---------------------------------------------------------------------


_VIEW_COLUMNS = (  # the columns of a StageView, in its field order
    StageRun.video_id, StageRun.stage, StageRun.status, StageRun.fingerprint, StageRun.artifacts,
    StageRun.outcome, StageRun.error_type, StageRun.retryable, StageRun.attempts,
)


def stage_views(db: Database, stages: Sequence[str], video_ids: Sequence[str] | None = None) -> dict[tuple[str, str], StageView]:
    """Snapshots of the stage rows of `stages` (for `video_ids`, or all), keyed by (video id, stage)."""
    out: dict[tuple[str, str], StageView] = {}
    with db.session() as s:
        base = select(*_VIEW_COLUMNS).where(StageRun.stage.in_(list(stages)))
        for chunk in [None] if video_ids is None else _chunks(video_ids):
            stmt = base if chunk is None else base.where(StageRun.video_id.in_(chunk))
            for r in s.execute(stmt):
                out[(r.video_id, r.stage)] = StageView(*r)
    return out


def done_stage_batches(db: Database, stages: Sequence[str] | None = None,
                       batch: int = IN_LIST_CHUNK) -> Iterator[list[StageView]]:
    """The done stage rows (of `stages`, or of every stage), `batch` at a time in id order: keyset pages, so that
    memory stays flat however many rows there are."""
    last_id = 0
    while True:
        stmt = (select(StageRun.id, *_VIEW_COLUMNS)
                .where(StageRun.status == StageStatus.DONE, StageRun.id > last_id)
                .order_by(StageRun.id).limit(batch))
        if stages is not None:
            stmt = stmt.where(StageRun.stage.in_(list(stages)))
        with db.session() as s:
            rows = s.execute(stmt).all()
        if not rows:
            return
        last_id = rows[-1].id
        yield [StageView(*r[1:]) for r in rows]


def mark_for_rerun(db: Database, video_id: str, stage: str, error_type: str, message: str) -> bool:
    """Mark a (video, stage) that is done or failed as failed with a retryable `error_type` (its artifacts
    dropped), so that the next plain run, and `retry --error-type`, runs it again; True when a row was marked.

    A running row (a worker holds it and will write new outputs) and a pending one (it runs anyway) are left
    as they are.
    """
    now = utcnow()
    with db.session() as s:
        marked = s.execute(
            update(StageRun)
            .where(StageRun.video_id == video_id, StageRun.stage == stage,
                   StageRun.status.in_([StageStatus.DONE, StageStatus.FAILED]))
            .values(status=StageStatus.FAILED, error_type=error_type, error_message=message[:MAX_ERROR_MESSAGE_CHARS],
                    retryable=True, artifacts={}, outcome={}, finished_at=now, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if marked:
            s.execute(update(Video).where(Video.id == video_id)
                      .values(state=f"{stage}:{StageStatus.FAILED}", updated_at=now))
    return marked == 1


def status_counts(db: Database) -> list[tuple[str, str, int]]:
    """(stage, status, count) for every stage and status present, sorted."""
    with db.session() as s:
        rows = s.execute(
            select(StageRun.stage, StageRun.status, func.count()).group_by(StageRun.stage, StageRun.status)
        ).all()
    return sorted((r[0], r[1], r[2]) for r in rows)


def video_count(db: Database) -> int:
    """Number of registered videos."""
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Video)) or 0


def top_errors(db: Database, limit: int = 10) -> list[tuple[str, str, int, str]]:
    """The most frequent (stage, error type) among failed stages, with a count and one sample message."""
    with db.session() as s:
        rows = s.execute(
            select(StageRun.stage, StageRun.error_type, func.count(), func.min(StageRun.error_message))
            .where(StageRun.status == StageStatus.FAILED)
            .group_by(StageRun.stage, StageRun.error_type)
            .order_by(func.count().desc(), StageRun.stage)
            .limit(limit)
        ).all()
    return [(r[0], r[1] or "?", r[2], r[3] or "") for r in rows]


def videos_failed_with(db: Database, error_type: str, stage: str | None = None) -> list[str]:
    """Ids of videos with a stage failed with `error_type` (optionally only in `stage`)."""
    with db.session() as s:
        stmt = select(StageRun.video_id).where(
            StageRun.status == StageStatus.FAILED, StageRun.error_type == error_type
        )
        if stage:
            stmt = stmt.where(StageRun.stage == stage)
        return sorted(set(s.scalars(stmt)))


# --- dataset versions ------------------------------------------------------------------------------------


def register_codebook(db: Database, content_hash: str, *, levels: int, k: int, dim: int, params: dict[str, Any],
                      store_prefix: str, metrics: dict[str, Any], manifest_hash: str | None = None,
                      fit_key: str | None = None) -> None:
    """Record a fitted codebook (or refresh the metrics of one already recorded with the same content hash); it
    becomes the latest codebook."""
    with db.session() as s:
        row = s.scalars(select(Codebook).where(Codebook.content_hash == content_hash)).one_or_none()
        if row is None:
            s.add(Codebook(content_hash=content_hash, levels=levels, k=k, dim=dim, params=params,
                           store_prefix=store_prefix, metrics=metrics, manifest_hash=manifest_hash, fit_key=fit_key,
                           used_at=utcnow()))
        else:
            row.metrics, row.used_at = metrics, utcnow()
            row.manifest_hash = manifest_hash or row.manifest_hash
            row.fit_key = fit_key or row.fit_key


def _codebook_dict(c: Codebook) -> dict[str, Any]:
    return {"content_hash": c.content_hash, "levels": c.levels, "k": c.k, "dim": c.dim, "params": c.params,
            "store_prefix": c.store_prefix, "metrics": c.metrics, "manifest_hash": c.manifest_hash,
            "fit_key": c.fit_key, "created_at": c.created_at}


def codebooks(db: Database, manifest_hash: str | None = None) -> list[dict[str, Any]]:
    """Registered codebooks (those fitted on `manifest_hash` when given), the last used first."""
    with db.session() as s:
        stmt = select(Codebook).order_by(func.coalesce(Codebook.used_at, Codebook.created_at).desc(),
                                         Codebook.id.desc())
        if manifest_hash:
            stmt = stmt.where(Codebook.manifest_hash == manifest_hash)
        return [_codebook_dict(c) for c in s.scalars(stmt)]


def codebook_by_fit_key(db: Database, fit_key: str) -> dict[str, Any] | None:
    """The codebook last fitted with this fit key, if any (see `register_codebook`)."""
    with db.session() as s:
        row = s.scalars(select(Codebook).where(Codebook.fit_key == fit_key)
                        .order_by(Codebook.id.desc()).limit(1)).one_or_none()
        return _codebook_dict(row) if row else None


def touch_codebook(db: Database, content_hash: str) -> None:
    """Make a registered codebook the latest (it was reused instead of fitted again)."""
    with db.session() as s:
        s.execute(update(Codebook).where(Codebook.content_hash == content_hash).values(used_at=utcnow()))


def register_index(db: Database, kind: str, content_hash: str, *, store_key: str, summary: dict[str, Any],
                   manifest_hash: str | None = None, codebook_hash: str | None = None) -> None:
    """Record a dataset index kept in the store (or mark one already recorded as used now): it becomes the latest
    of its kind."""
    validate_name(kind, "index kind")
    with db.session() as s:
        # Insert-or-ignore, then mark used: two workers registering the same content at once both succeed (a
        # read-then-insert let the second fail on the unique constraint).
        now = utcnow()
        s.execute(_insert(db.dialect, DatasetIndex).values(
            kind=kind, content_hash=content_hash, store_key=store_key, summary=summary, manifest_hash=manifest_hash,
            codebook_hash=codebook_hash, used_at=now).on_conflict_do_nothing(index_elements=["kind", "content_hash"]))
        s.execute(update(DatasetIndex).where(DatasetIndex.kind == kind, DatasetIndex.content_hash == content_hash)
                  .values(used_at=now))


def dataset_indexes(db: Database, kind: str, manifest_hash: str | None = None) -> list[dict[str, Any]]:
    """The registered indexes of a kind (covering `manifest_hash` when given), the last used first."""
    with db.session() as s:
        stmt = (select(DatasetIndex).where(DatasetIndex.kind == kind)
                .order_by(DatasetIndex.used_at.desc(), DatasetIndex.id.desc()))
        if manifest_hash:
            stmt = stmt.where(DatasetIndex.manifest_hash == manifest_hash)
        return [{"kind": r.kind, "content_hash": r.content_hash, "store_key": r.store_key, "summary": r.summary,
                 "manifest_hash": r.manifest_hash, "codebook_hash": r.codebook_hash, "created_at": r.created_at}
                for r in s.scalars(stmt)]


def pick_version(versions: list[dict[str, Any]], ref: str | None, what: str, hint: str) -> dict[str, Any]:
    """The version named by `ref` (a content hash or a unique prefix of one) among `versions`, or the first (the
    latest) when `ref` is empty; SettingsError when there is none, or the prefix matches none or several."""
    if not versions:
        raise SettingsError(f"no {what} is registered: {hint}")
    if not ref:
        return versions[0]
    matches = [v for v in versions if v["content_hash"].startswith(ref.lower())]
    if len(matches) != 1:
        known = ", ".join(v["content_hash"][:16] for v in versions[:5])
        raise SettingsError(f"{what} {ref!r} {'is ambiguous' if matches else 'is not registered'} (known: {known})")
    return matches[0]


def register_corpus(db: Database, content_hash: str, *, codebook_hash: str, params: dict[str, Any],
                    stats: dict[str, Any], store_prefix: str) -> None:
    """Record a built corpus with its codebook (or refresh the statistics of one already recorded)."""
    with db.session() as s:
        codebook_id = s.scalars(select(Codebook.id).where(Codebook.content_hash == codebook_hash)).one_or_none()
        row = s.scalars(select(CorpusVersion).where(CorpusVersion.content_hash == content_hash)).one_or_none()
        if row is None:
            s.add(CorpusVersion(content_hash=content_hash, codebook_id=codebook_id, params=params, stats=stats,
                                store_prefix=store_prefix))
        else:
            row.stats = stats


def corpus_versions(db: Database) -> list[dict[str, Any]]:
    """Every registered corpus, newest first: {content_hash, codebook_hash, stats, store_prefix, created_at}."""
    with db.session() as s:
        rows = s.execute(
            select(CorpusVersion, Codebook.content_hash)
            .join(Codebook, CorpusVersion.codebook_id == Codebook.id, isouter=True)
            .order_by(CorpusVersion.created_at.desc(), CorpusVersion.id.desc())
        ).all()
        return [{"content_hash": c.content_hash, "codebook_hash": cb, "stats": c.stats, "params": c.params,
                 "store_prefix": c.store_prefix, "created_at": c.created_at} for c, cb in rows]


def find_corpus(db: Database, ref: str | None) -> dict[str, Any]:
    """The corpus named by `ref` (its hash or a unique prefix of it), or the latest registered when `ref` is
    None; SettingsError when there is none or the prefix is ambiguous."""
    return pick_version(corpus_versions(db), ref, "corpus",
                        "build one first (`videobert dataset corpus` or `dvc repro`)")


# --- training runs ------------------------------------------------------------------------------------------


@dataclass
class TrainingClaim:
    """A training run this process holds."""

    run_id: int
    run_key: str
    status_before: str | None  # None: a new run
    checkpoints: list[dict[str, Any]] = field(default_factory=list)


def claim_training_run(db: Database, run_key: str, *, corpus_hash: str, codebook_hash: str | None,
                       params: dict[str, Any], flow_run_id: str | None = None, force: bool = False,
                       restart: bool = False) -> TrainingClaim:
    """Start (or take over, to resume) the training run `run_key`. A run another live process holds is refused
    (SettingsError) unless `force`; `restart` forgets its checkpoints and metrics (a run trained again from the
    start)."""
    owner = owner_id()
    now = utcnow()
    with db.session() as s:
        row = s.scalars(select(TrainingRun).where(TrainingRun.run_key == run_key)).one_or_none()
        if row is None:
            corpus_id = s.scalars(select(CorpusVersion.id).where(CorpusVersion.content_hash == corpus_hash)).one_or_none()
            row = TrainingRun(run_key=run_key, corpus_version_id=corpus_id, corpus_hash=corpus_hash,
                              codebook_hash=codebook_hash, params=params, status=StageStatus.RUNNING,
                              claimed_by=owner, started_at=now, checkpoints=[], flow_run_id=flow_run_id)
            s.add(row)
            s.flush()
            return TrainingClaim(row.id, run_key, None, [])
        before = row.status
        if before == StageStatus.RUNNING and not force and not owner_is_dead(row.claimed_by) \
                and row.claimed_by != owner:
            raise SettingsError(f"training run {run_key[:16]} is already running in {row.claimed_by} "
                                "(--force takes it over, e.g. after a machine was lost)")
        row.status = StageStatus.RUNNING
        row.claimed_by = owner
        row.error_message = None
        row.finished_at = None
        row.flow_run_id = flow_run_id or row.flow_run_id
        if restart:
            row.checkpoints, row.checkpoint_key, row.final_metrics = [], None, None
            s.execute(delete(TrainingMetric).where(TrainingMetric.run_id == row.id))
        return TrainingClaim(row.id, run_key, before, list(row.checkpoints or []))


def record_checkpoint(db: Database, run_id: int, *, step: int, prefix: str, sha256: str) -> None:
    """Append a checkpoint (its store prefix and content hash) to a training run; the latest is `checkpoint_key`."""
    with db.session() as s:
        row = s.get(TrainingRun, run_id)
        if row is None:
            raise SettingsError(f"training run {run_id} does not exist")
        kept = [c for c in (row.checkpoints or []) if c["step"] != step]
        row.checkpoints = [*kept, {"step": step, "prefix": prefix, "sha256": sha256}]
        row.checkpoint_key = prefix


def forget_checkpoints(db: Database, run_id: int, steps: list[int]) -> None:
    """Take the checkpoints of `steps` off a training run's record (they do not verify); the latest is the newest left."""
    with db.session() as s:
        row = s.get(TrainingRun, run_id)
        if row is None:
            raise SettingsError(f"training run {run_id} does not exist")
        kept = [c for c in (row.checkpoints or []) if int(c["step"]) not in set(steps)]
        row.checkpoints = kept
        row.checkpoint_key = max(kept, key=lambda c: c["step"])["prefix"] if kept else None


def drop_training_metrics_after(db: Database, run_id: int, step: int) -> int:
    """Remove a run's figures logged after `step` (a run resumed from that step logs them again); returns how many."""
    with db.session() as s:
        result = s.execute(delete(TrainingMetric).where(TrainingMetric.run_id == run_id, TrainingMetric.step > step))
        return int(result.rowcount or 0)


def log_training_metrics(db: Database, run_id: int, step: int, split: str, values: dict[str, float]) -> None:
    """Scalars logged at one step (rows are appended: a resumed run first drops what came after its checkpoint)."""
    with db.session() as s:
        s.add_all(TrainingMetric(run_id=run_id, step=step, split=split, name=name[:64], value=float(v))
                  for name, v in values.items())


def finish_training_run(db: Database, run_id: int, status: StageStatus, *, metrics: dict[str, Any] | None = None,
                        error: str | None = None) -> None:
    """Mark a training run done (with its final metrics) or failed (with the error)."""
    with db.session() as s:
        row = s.get(TrainingRun, run_id)
        if row is None:
            raise SettingsError(f"training run {run_id} does not exist")
        row.status = status
        row.finished_at = utcnow()
        row.claimed_by = None
        if metrics is not None:
            row.final_metrics = metrics
        row.error_message = (error or "")[:MAX_ERROR_MESSAGE_CHARS] or None


def training_runs(db: Database, run_key: str | None = None) -> list[dict[str, Any]]:
    """Training runs, newest first (or the one whose key starts with `run_key`), as plain dicts."""
    with db.session() as s:
        stmt = select(TrainingRun).order_by(TrainingRun.started_at.desc(), TrainingRun.id.desc())
        if run_key:
            stmt = stmt.where(TrainingRun.run_key.startswith(run_key))
        return [{"id": r.id, "run_key": r.run_key, "status": r.status, "corpus_hash": r.corpus_hash,
                 "codebook_hash": r.codebook_hash, "params": r.params, "metrics": r.final_metrics,
                 "checkpoints": list(r.checkpoints or []), "checkpoint_key": r.checkpoint_key,
                 "error_message": r.error_message, "started_at": r.started_at, "finished_at": r.finished_at,
                 "flow_run_id": r.flow_run_id} for r in s.scalars(stmt)]


def training_metric_history(db: Database, run_id: int) -> list[tuple[int, str, str, float]]:
    """(step, split, name, value) of a run, in step order."""
    with db.session() as s:
        return [tuple(r) for r in s.execute(
            select(TrainingMetric.step, TrainingMetric.split, TrainingMetric.name, TrainingMetric.value)
            .where(TrainingMetric.run_id == run_id).order_by(TrainingMetric.step, TrainingMetric.id))]


# --- evaluations --------------------------------------------------------------------------------------------


def record_evaluation(db: Database, eval_key: str, *, model_sha256: str, annotations_sha256: str,
                      corpus_hash: str | None, codebook_hash: str | None, params: dict[str, Any],
                      metrics: dict[str, Any], results: Sequence[dict[str, Any]]) -> int:
    """Store an evaluation and its per-segment results (replacing an earlier one with the same key) in one
    transaction; returns its id. A result: {video_id, segment_id, verb, object, verb_top, object_top}."""
    with db.session() as s:
        old = s.scalars(select(EvaluationRun).where(EvaluationRun.eval_key == eval_key)).one_or_none()
        if old is not None:
            s.delete(old)
            s.flush()
        run = EvaluationRun(eval_key=eval_key, model_sha256=model_sha256, annotations_sha256=annotations_sha256,
                            corpus_hash=corpus_hash, codebook_hash=codebook_hash, params=params, metrics=metrics)
        s.add(run)
        s.flush()
        for chunk in _chunks(list(results)):
            s.add_all(EvaluationResult(run_id=run.id, **r) for r in chunk)
        return run.id


def evaluation_runs(db: Database) -> list[dict[str, Any]]:
    """Evaluations, newest first."""
    with db.session() as s:
        return [{"id": r.id, "eval_key": r.eval_key, "model_sha256": r.model_sha256, "corpus_hash": r.corpus_hash,
                 "codebook_hash": r.codebook_hash, "metrics": r.metrics, "created_at": r.created_at}
                for r in s.scalars(select(EvaluationRun).order_by(EvaluationRun.created_at.desc(),
                                                                  EvaluationRun.id.desc()))]


def evaluation_results(db: Database, run_id: int, video_id: str | None = None) -> list[dict[str, Any]]:
    """Per-segment results of an evaluation (of one video), in video and segment order."""
    with db.session() as s:
        stmt = select(EvaluationResult).where(EvaluationResult.run_id == run_id)
        if video_id is not None:
            stmt = stmt.where(EvaluationResult.video_id == video_id)
        return [{"video_id": r.video_id, "segment_id": r.segment_id, "verb": r.verb, "object": r.object,
                 "verb_top": r.verb_top, "object_top": r.object_top}
                for r in s.scalars(stmt.order_by(EvaluationResult.video_id, EvaluationResult.segment_id))]


# --- captioning -------------------------------------------------------------------------------------------------


def start_captioning_run(db: Database, run_key: str, *, inputs: str, videobert_sha256: str, annotations_sha256: str,
                         codebook_hash: str | None, params: dict[str, Any], flow_run_id: str | None) -> int:
    """A captioning run row in status running, replacing an earlier one with the same key; returns its id."""
    with db.session() as s:
        old = s.scalars(select(CaptioningRun).where(CaptioningRun.run_key == run_key)).one_or_none()
        if old is not None:
            s.delete(old)
            s.flush()
        run = CaptioningRun(run_key=run_key, inputs=inputs, status=StageStatus.RUNNING,
                            videobert_sha256=videobert_sha256, annotations_sha256=annotations_sha256,
                            codebook_hash=codebook_hash, params=params, flow_run_id=flow_run_id)
        s.add(run)
        s.flush()
        return run.id


def finish_captioning_run(db: Database, run_key: str, status: StageStatus, *, training: dict[str, Any] | None = None,
                          model_prefix: str | None = None, predictions_key: str | None = None,
                          error: str | None = None) -> None:
    """Record a captioning run's end: done with its training figures and store keys, or failed with its error."""
    with db.session() as s:
        run = s.scalars(select(CaptioningRun).where(CaptioningRun.run_key == run_key)).one()
        run.status = status
        run.training = training if training is not None else run.training
        run.model_prefix = model_prefix or run.model_prefix
        run.predictions_key = predictions_key or run.predictions_key
        run.error_message = error[:MAX_ERROR_MESSAGE_CHARS] if error else None
        run.finished_at = utcnow()


def set_captioning_metrics(db: Database, run_key: str, metrics: dict[str, Any]) -> None:
    """The caption metrics of a finished captioning run."""
    with db.session() as s:
        s.scalars(select(CaptioningRun).where(CaptioningRun.run_key == run_key)).one().metrics = metrics


def captioning_runs(db: Database) -> list[dict[str, Any]]:
    """Captioning runs, newest first."""
    with db.session() as s:
        return [{"id": r.id, "run_key": r.run_key, "inputs": r.inputs, "status": r.status,
                 "videobert_sha256": r.videobert_sha256, "codebook_hash": r.codebook_hash, "training": r.training,
                 "metrics": r.metrics, "model_prefix": r.model_prefix, "predictions_key": r.predictions_key,
                 "error_message": r.error_message, "flow_run_id": r.flow_run_id, "started_at": r.started_at,
                 "finished_at": r.finished_at}
                for r in s.scalars(select(CaptioningRun).order_by(CaptioningRun.started_at.desc(),
                                                                  CaptioningRun.id.desc()))]
