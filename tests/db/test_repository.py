"""Queries and claims of the tracking database, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import socket
import subprocess
import sys

import pytest
from sqlalchemy import select

from videobert.core.errors import ClaimLostError, InvalidIdError, UnknownVideoError
from videobert.core.storage import ObjectInfo
from videobert.db import repository as repo
from videobert.db.engine import Database
from videobert.db.models import StageRun, StageStatus, Video

LEASE_S = 3600.0


def _register(db: Database, *ids: str) -> None:
    repo.register_videos(db, [repo.NewVideo(id=i, source="local", source_id=f"/videos/{i}.mp4") for i in ids])


def _dead_owner() -> str:
    """The owner id of a process that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()}:{int(proc.stdout)}:1"


def test_register_videos_counts_new_and_known(db: Database) -> None:
    assert repo.register_videos(db, [repo.NewVideo("v1", "youtube", "v1"), repo.NewVideo("v2", "youtube", "v2")]) == (2, 0)
    assert repo.register_videos(db, [repo.NewVideo("v2", "youtube", "v2"), repo.NewVideo("v3", "youtube", "v3")]) == (1, 1)
    assert repo.known_video_ids(db) == {"v1", "v2", "v3"}
    assert repo.known_video_ids(db, ["v1", "zz"]) == {"v1"}
    assert repo.get_video(db, "v1").source == "youtube"
    with pytest.raises(UnknownVideoError, match="unknown video id 'zz'"):
        repo.get_video(db, "zz")


def test_register_rejects_bad_ids_and_writes_nothing(db: Database) -> None:
    with pytest.raises(InvalidIdError):
        repo.register_videos(db, [repo.NewVideo("ok", "local", "a"), repo.NewVideo("../bad", "local", "b")])
    assert repo.video_count(db) == 0


def test_claim_lifecycle(db: Database) -> None:
    _register(db, "v1")
    claim = repo.claim_stage(db, "v1", "download", "fp1", LEASE_S)
    assert isinstance(claim, repo.Claim) and claim.attempt == 1
    other = repo.claim_stage(db, "v1", "download", "fp1", LEASE_S, owner="otherhost:1:1")
    assert isinstance(other, repo.Skip) and other.reason == "running elsewhere"

    art = ObjectInfo("videos/v1/download/source.mp4", 10, "ab" * 32)
    repo.complete_stage(db, claim, {"video": art}, {"format": "mp4"})
    view = repo.stage_views(db, ["download"])[("v1", "download")]
    assert view.status == StageStatus.DONE and view.artifact("video") == art and view.outcome == {"format": "mp4"}
    assert repo.get_video(db, "v1").state == "download:done"

    # same fingerprint: up to date; new fingerprint: runs again
    skip = repo.claim_stage(db, "v1", "download", "fp1", LEASE_S)
    assert isinstance(skip, repo.Skip) and skip.reason == "up to date"
    again = repo.claim_stage(db, "v1", "download", "fp2", LEASE_S)
    assert isinstance(again, repo.Claim) and again.attempt == 2
    # a forced run of a done stage
    repo.complete_stage(db, again, {"video": art})
    forced = repo.claim_stage(db, "v1", "download", "fp2", LEASE_S, force=True)
    assert isinstance(forced, repo.Claim)


def test_force_never_takes_a_claim_a_live_worker_holds(db: Database) -> None:
    _register(db, "v1")
    held = repo.claim_stage(db, "v1", "download", "fp", LEASE_S, owner="otherhost:1:1")  # live: its lease runs
    assert isinstance(held, repo.Claim)
    for fp in ("fp", "fp-new"):
        forced = repo.claim_stage(db, "v1", "download", fp, LEASE_S, force=True, retry_permanent=True)
        assert isinstance(forced, repo.Skip) and forced.reason == "running elsewhere", fp
    mine = repo.claim_stage(db, "v1", "features", "fp", LEASE_S)  # held by this live process
    assert isinstance(repo.claim_stage(db, "v1", "features", "fp", LEASE_S, force=True), repo.Skip)
    repo.complete_stage(db, held, {})  # the holder still owns it, and finishes
    repo.complete_stage(db, mine, {})
    assert isinstance(repo.claim_stage(db, "v1", "download", "fp", LEASE_S, force=True), repo.Claim)  # done: forced


def test_failures_permanent_and_transient(db: Database) -> None:
    _register(db, "v1", "v2")
    c1 = repo.claim_stage(db, "v1", "download", "fp", LEASE_S)
    repo.fail_stage(db, c1, "VideoUnavailable", "Private video", retryable=False)
    c2 = repo.claim_stage(db, "v2", "download", "fp", LEASE_S)
    repo.fail_stage(db, c2, "NetworkError", "connection reset", retryable=True)

    skip = repo.claim_stage(db, "v1", "download", "fp", LEASE_S)
    assert isinstance(skip, repo.Skip) and skip.reason == "failed permanently" and skip.detail == "VideoUnavailable"
    assert isinstance(repo.claim_stage(db, "v1", "download", "fp-new", LEASE_S), repo.Claim)  # inputs changed
    assert isinstance(repo.claim_stage(db, "v2", "download", "fp", LEASE_S), repo.Claim)  # transient: retried

    assert repo.top_errors(db) == []  # both were claimed again, so both are running now
    assert repo.videos_failed_with(db, "NetworkError") == []


def test_retry_permanent_and_error_queries(db: Database) -> None:
    _register(db, "a", "b", "c")
    for vid, etype in (("a", "VideoUnavailable"), ("b", "VideoUnavailable"), ("c", "DurationLimit")):
        repo.fail_stage(db, repo.claim_stage(db, vid, "download", "fp", LEASE_S), etype, f"{vid} failed", False)
    assert repo.top_errors(db) == [
        ("download", "VideoUnavailable", 2, "a failed"),
        ("download", "DurationLimit", 1, "c failed"),
    ]
    assert repo.videos_failed_with(db, "VideoUnavailable") == ["a", "b"]
    assert repo.videos_failed_with(db, "VideoUnavailable", stage="features") == []
    assert isinstance(repo.claim_stage(db, "a", "download", "fp", LEASE_S, retry_permanent=True), repo.Claim)
    assert ("download", "failed", 2) in repo.status_counts(db)
    assert ("download", "running", 1) in repo.status_counts(db)


def test_long_error_messages_are_truncated(db: Database) -> None:
    _register(db, "v")
    c = repo.claim_stage(db, "v", "s", "fp", LEASE_S)
    repo.fail_stage(db, c, "Boom", "x" * 100_000, True)
    msg = repo.top_errors(db)[0][3]
    assert len(msg) < 5000 and msg.endswith("[truncated]")


def test_claim_of_unknown_video(db: Database) -> None:
    with pytest.raises(UnknownVideoError):
        repo.claim_stage(db, "nope", "download", "fp", LEASE_S)


def test_lost_claim_is_never_marked_done(db: Database) -> None:
    _register(db, "v1")
    first = repo.claim_stage(db, "v1", "features", "fp", lease_s=0.001, owner="elsewhere:1:1")
    assert isinstance(first, repo.Claim)
    second = repo.claim_stage(db, "v1", "features", "fp", LEASE_S)  # the first lease expired
    assert isinstance(second, repo.Claim) and second.attempt == 2
    with pytest.raises(ClaimLostError):
        repo.complete_stage(db, first, {})
    with pytest.raises(ClaimLostError):
        repo.fail_stage(db, first, "X", "y", True)
    with pytest.raises(ClaimLostError):
        repo.extend_lease(db, first, LEASE_S)
    repo.extend_lease(db, second, LEASE_S)
    repo.complete_stage(db, second, {})
    assert repo.stage_views(db, ["features"])[("v1", "features")].status == "done"


def test_dead_local_owner_is_taken_over(db: Database) -> None:
    _register(db, "v1", "v2")
    dead = _dead_owner()
    stale = repo.claim_stage(db, "v1", "download", "fp", LEASE_S, owner=dead)
    assert isinstance(stale, repo.Claim)
    taken = repo.claim_stage(db, "v1", "download", "fp", LEASE_S)
    assert isinstance(taken, repo.Claim) and taken.attempt == 2

    repo.claim_stage(db, "v2", "download", "fp", LEASE_S, owner=dead)
    repo.claim_stage(db, "v1", "features", "fp", LEASE_S, owner="some-other-host:1:1")  # cannot judge: kept
    assert repo.release_dead_claims(db) == 1
    views = repo.stage_views(db, ["download", "features"])
    assert views[("v2", "download")].status == "failed" and views[("v2", "download")].error_type == "Interrupted"
    assert views[("v1", "features")].status == "running"
    assert views[("v1", "download")].status == "running"  # held by this live process


def test_owner_identity() -> None:
    me = repo.owner_id()
    assert me.startswith(socket.gethostname() + ":")
    assert not repo.owner_is_dead(me)
    assert repo.owner_is_dead(_dead_owner())
    assert not repo.owner_is_dead("another-machine:1:1")
    # same pid, different start time: the pid was reused by a new process
    host, pid, _ = me.rsplit(":", 2)
    assert repo.owner_is_dead(f"{host}:{pid}:0")


def test_timestamps_are_aware_utc(db: Database) -> None:
    _register(db, "v1")
    c = repo.claim_stage(db, "v1", "s", "fp", LEASE_S)
    with db.session() as s:
        row = s.scalars(select(StageRun)).one()
        assert row.started_at.tzinfo is not None
        assert abs(row.started_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
        assert row.lease_expires_at - row.started_at == dt.timedelta(seconds=LEASE_S)
    repo.complete_stage(db, c, {})


def test_video_delete_cascades(db: Database) -> None:
    _register(db, "v1")
    repo.complete_stage(db, repo.claim_stage(db, "v1", "s", "fp", LEASE_S), {})
    with db.session() as s:
        s.delete(s.get(Video, "v1"))
    with db.session() as s:
        assert s.scalars(select(StageRun)).all() == []


def test_update_video(db: Database) -> None:
    _register(db, "v1")
    repo.update_video(db, "v1", title="Pancakes", duration_s=61.5, language="en")
    v = repo.get_video(db, "v1")
    assert (v.title, v.duration_s, v.language) == ("Pancakes", 61.5, "en")
    with pytest.raises(UnknownVideoError):
        repo.update_video(db, "zz", title="x")


# --- concurrent claims from separate processes -------------------------------------------------------------

ROUNDS = 25


def _claim_worker(url: str, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[name-defined]
    database = Database(url)
    wins = []
    for i in range(ROUNDS):
        barrier.wait(timeout=60)
        result = repo.claim_stage(database, "v1", f"stage{i}", "fp", LEASE_S)
        wins.append(isinstance(result, repo.Claim))
    database.dispose()
    out.put(wins)


def test_two_processes_claiming_the_same_stage_one_wins(db: Database, db_url: str) -> None:
    _register(db, "v1")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_worker, args=(db_url, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for i in range(ROUNDS):
        assert results[0][i] + results[1][i] == 1, f"round {i}: {results[0][i]}, {results[1][i]}"
    with db.session() as s:
        rows = s.scalars(select(StageRun)).all()
        assert len(rows) == ROUNDS  # no duplicate rows
        assert {r.attempts for r in rows} == {1}


def test_schema_constraint_forbids_duplicate_stage_rows(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError as SAIntegrityError

    _register(db, "v1")
    repo.claim_stage(db, "v1", "s", "fp", LEASE_S)
    with pytest.raises(SAIntegrityError):
        with db.session() as s:
            s.add(StageRun(video_id="v1", stage="s", status="pending", attempts=0, artifacts={}, outcome={}))


def test_status_counts_by_stage(db: Database) -> None:
    _register(db, "a", "b")
    repo.complete_stage(db, repo.claim_stage(db, "a", "download", "fp", LEASE_S), {})
    repo.claim_stage(db, "b", "download", "fp", LEASE_S)
    assert repo.status_counts(db) == [("download", "done", 1), ("download", "running", 1)]


# --- registering one dataset index from several processes at once --------------------------------------------

INDEX_ROUNDS = 10
INDEX_WORKERS = 3


def _register_index_worker(url: str, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[name-defined]
    database = Database(url)
    errors = []
    for i in range(INDEX_ROUNDS):
        barrier.wait(timeout=60)
        try:
            repo.register_index(database, "manifests", f"{i:064x}", store_key=f"manifests/{i:064x}/manifest.json",
                                summary={"videos": i})
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            errors.append(f"round {i}: {type(exc).__name__}: {exc}"[:300])
    database.dispose()
    out.put(errors)


def test_registering_the_same_index_from_several_processes_at_once_is_idempotent(db: Database, db_url: str) -> None:
    """Two workers building the same dataset version both register it: no IntegrityError, one row each."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(INDEX_WORKERS)
    out = ctx.Queue()
    procs = [ctx.Process(target=_register_index_worker, args=(db_url, barrier, out)) for _ in range(INDEX_WORKERS)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in out.get(timeout=180)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert errors == []
    rows = repo.dataset_indexes(db, "manifests")
    assert sorted(r["content_hash"] for r in rows) == [f"{i:064x}" for i in range(INDEX_ROUNDS)]
    assert all(r["summary"] == {"videos": int(r["content_hash"], 16)} and r["created_at"] for r in rows)
