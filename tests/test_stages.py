"""execute_stage: artifacts first, then the row; failures recorded; nothing marked done without its data."""

from __future__ import annotations

import pytest

from tests.conftest import free_port, new_bucket_name
from videobert.core.errors import PermanentStageError, TransientStageError
from videobert.core.fingerprint import stage_fingerprint
from videobert.core.stages import StageOptions, StageOutput, StageSpec, execute_stage
from videobert.core.storage import ArtifactStore, MinioStore, ObjectInfo, keys
from videobert.db import repository as repo
from videobert.db.engine import Database

SPEC = StageSpec("demo", "1")
LEASE = 600.0


@pytest.fixture
def video(db: Database) -> str:
    repo.register_videos(db, [repo.NewVideo("vid1", "local", "/x/vid1.mp4")])
    return "vid1"


def _writer(store: ArtifactStore, payload: bytes):  # noqa: ANN202
    calls = []

    def body(claim: repo.Claim) -> StageOutput:
        calls.append(claim)
        return StageOutput({"out": store.put_bytes(keys.video_artifact(claim.video_id, SPEC.name, "out.bin"), payload)})

    return body, calls


def test_runs_then_skips_when_unchanged(db: Database, store: ArtifactStore, video: str) -> None:
    fp = stage_fingerprint(SPEC.name, SPEC.version, {"x": 1}, {})
    body, calls = _writer(store, b"result")
    assert execute_stage(db, store, video, SPEC, fp, body, LEASE).status == "done"
    second = execute_stage(db, store, video, SPEC, fp, body, LEASE)
    assert (second.status, second.reason) == ("skipped", "up to date")
    assert len(calls) == 1
    changed = stage_fingerprint(SPEC.name, SPEC.version, {"x": 2}, {})
    assert execute_stage(db, store, video, SPEC, changed, body, LEASE).status == "done"
    assert len(calls) == 2
    view = repo.stage_views(db, [SPEC.name])[(video, SPEC.name)]
    assert view.artifact("out") == store.stat("videos/vid1/demo/out.bin")


def test_permanent_error_is_recorded_and_not_retried(db: Database, store: ArtifactStore, video: str) -> None:
    def body(claim: repo.Claim) -> StageOutput:
        raise PermanentStageError("corrupt file: moov atom not found")

    r = execute_stage(db, store, video, SPEC, "fp", body, LEASE)
    assert (r.status, r.reason, r.retryable) == ("failed", "PermanentStageError", False)
    assert "moov atom" in r.message
    assert execute_stage(db, store, video, SPEC, "fp", body, LEASE).reason == "failed permanently"


def test_transient_error_can_be_raised_for_the_orchestrator(db: Database, store: ArtifactStore, video: str) -> None:
    def body(claim: repo.Claim) -> StageOutput:
        raise TransientStageError("HTTP Error 503")

    with pytest.raises(TransientStageError):
        execute_stage(db, store, video, SPEC, "fp", body, LEASE, StageOptions(raise_retryable=True))
    view = repo.stage_views(db, [SPEC.name])[(video, SPEC.name)]
    assert (view.status, view.error_type, view.retryable) == ("failed", "TransientStageError", True)
    body2, _ = _writer(store, b"ok")
    assert execute_stage(db, store, video, SPEC, "fp", body2, LEASE).status == "done"  # a plain re-run retries


def test_unexpected_error_keeps_its_traceback(db: Database, store: ArtifactStore, video: str) -> None:
    def body(claim: repo.Claim) -> StageOutput:
        return {}["missing"]  # type: ignore[return-value]

    r = execute_stage(db, store, video, SPEC, "fp", body, LEASE)
    assert r.reason == "KeyError" and r.retryable and "test_stages.py" in r.message


def test_artifact_that_does_not_verify_is_not_marked_done(db: Database, store: ArtifactStore, video: str) -> None:
    def body(claim: repo.Claim) -> StageOutput:
        info = store.put_bytes(keys.video_artifact(video, SPEC.name, "out.bin"), b"abc")
        return StageOutput({"out": ObjectInfo(info.key, info.size, "0" * 64)})  # claims the wrong hash

    r = execute_stage(db, store, video, SPEC, "fp", body, LEASE)
    assert (r.status, r.reason) == ("failed", "IntegrityError")
    assert repo.stage_views(db, [SPEC.name])[(video, SPEC.name)].status == "failed"


def test_store_that_goes_away_mid_stage(db: Database, video: str) -> None:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # this test's own S3 server
    server.start()
    s3 = MinioStore(f"127.0.0.1:{port}", new_bucket_name(), "k", "s", retries=0, connect_timeout_s=1)
    s3.check()
    written: list[ObjectInfo] = []

    def body(claim: repo.Claim) -> StageOutput:
        written.append(s3.put_bytes(keys.video_artifact(video, SPEC.name, "first.bin"), b"first"))
        server.stop()  # the store goes away between two writes of the stage
        second = s3.put_bytes(keys.video_artifact(video, SPEC.name, "second.bin"), b"second")
        return StageOutput({"first": written[0], "second": second})

    r = execute_stage(db, s3, video, SPEC, "fp", body, LEASE)
    assert written and (r.status, r.reason, r.retryable) == ("failed", "StoreUnavailableError", True)
    assert "cannot reach" in r.message
    view = repo.stage_views(db, [SPEC.name])[(video, SPEC.name)]
    assert (view.status, view.retryable, view.artifacts) == ("failed", True, {})  # not done, no artifacts recorded

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # the store is back
    server.start()
    try:
        s3.check()
        again, _ = _writer(s3, b"data")
        assert execute_stage(db, s3, video, SPEC, "fp", again, LEASE).status == "done"  # a plain re-run retries it
    finally:
        server.stop()


def test_fingerprint_covers_inputs_params_and_code() -> None:
    base = stage_fingerprint("s", "1", {"fps": 20, "clip": 30}, {"video": "a" * 64})
    assert base == stage_fingerprint("s", "1", {"clip": 30, "fps": 20}, {"video": "a" * 64})  # key order
    assert base != stage_fingerprint("s", "2", {"fps": 20, "clip": 30}, {"video": "a" * 64})
    assert base != stage_fingerprint("s", "1", {"fps": 10, "clip": 30}, {"video": "a" * 64})
    assert base != stage_fingerprint("s", "1", {"fps": 20, "clip": 30}, {"video": "b" * 64})
    assert base != stage_fingerprint("t", "1", {"fps": 20, "clip": 30}, {"video": "a" * 64})
    with pytest.raises(TypeError, match="cannot fingerprint"):
        stage_fingerprint("s", "1", {"x": object()}, {})


def test_long_stage_keeps_its_claim_alive(db: Database, store: ArtifactStore, video: str) -> None:
    import time

    stolen: list[object] = []

    def slow(claim: repo.Claim) -> StageOutput:
        time.sleep(1.0)  # four times the lease: only the heartbeat keeps the claim
        stolen.append(repo.claim_stage(db, video, SPEC.name, "fp", 0.25, owner="other-host:1:1"))
        return StageOutput()

    result = execute_stage(db, store, video, SPEC, "fp", slow, lease_s=0.25)
    assert result.status == "done"
    assert isinstance(stolen[0], repo.Skip) and stolen[0].reason == "running elsewhere"
