"""Stored artifacts against the sha256 the database recorded: `videobert verify [--repair]`, and a stage whose input
does not verify, which marks the stage that produced it to run again (issue 8, defect 3).

Objects are corrupted the way that fools the store's own records: same size, and the local folder's sidecar
record (same mtime and inode) or the S3 object's sha256 metadata left saying the old content, so that only
hashing the content against the database finds it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Project, new_bucket_name
from tests.flows.prefect_api import task_run_names
from tests.helpers.media import make_video
from videobert.core.errors import IntegrityError
from videobert.core.fingerprint import stage_fingerprint
from videobert.core.runtime import Runtime
from videobert.core.settings import load_settings
from videobert.core.stages import StageOutput, StageSpec, decide, execute_stage, run_derived_stage
from videobert.core.storage import ArtifactStore, LocalStore, MinioStore, keys
from videobert.core.verify import readers, verify_stages
from videobert.db import repository as repo
from videobert.db.engine import Database

UP = StageSpec("up", "1")
MID = StageSpec("mid", "1", reads=("up", "out"))
LOW = StageSpec("low", "1", reads=("mid", "out"))
OTHER = StageSpec("other", "1")
SPECS = (UP, MID, LOW, OTHER)
LEASE = 600.0


def corrupt(store: ArtifactStore, key: str) -> None:
    """Flip one byte of the object, keeping its size and the store's own record of its sha256."""
    before = store.stat(key)
    data = bytearray(store.get_bytes(key))
    data[len(data) // 2] ^= 0xFF
    if isinstance(store, LocalStore):
        path = store.root.joinpath(*key.split("/"))
        st = path.stat()
        with open(path, "r+b") as fh:  # in place: same inode
            fh.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        assert isinstance(store, MinioStore)
        store.client.put_object(bucket_name=store.bucket, object_name=key, data=io.BytesIO(bytes(data)),
                                length=len(data), metadata={"sha256": before.sha256})
    assert store.stat(key) == before  # the store's records still say the old content


def _payload(video_id: str, stage: str) -> bytes:
    return f"{video_id}:{stage}:".encode() * 100


def _run(db: Database, store: ArtifactStore, video_id: str, spec: StageSpec) -> str:
    """Run `spec` for the video with a body that writes one artifact; returns the stage's status."""
    def body(claim: repo.Claim) -> StageOutput:
        key = keys.video_artifact(video_id, spec.name, "out.bin")
        return StageOutput({"out": store.put_bytes(key, _payload(video_id, spec.name))})

    return execute_stage(db, store, video_id, spec, f"fp-{spec.name}", body, LEASE).status


def _status(db: Database, stages: tuple[StageSpec, ...] = SPECS) -> dict[tuple[str, str], tuple[str, str | None]]:
    views = repo.stage_views(db, [s.name for s in stages])
    return {k: (v.status, v.error_type) for k, v in views.items()}


@pytest.fixture
def ran(db: Database, store: ArtifactStore) -> list[str]:
    """Three videos with every stage of SPECS done."""
    videos = ["v1", "v2", "v3"]
    repo.register_videos(db, [repo.NewVideo(v, "local", f"/x/{v}.mp4") for v in videos])
    for v in videos:
        for spec in SPECS:
            assert _run(db, store, v, spec) == "done"
    return videos


def test_readers_follow_the_stage_graph() -> None:
    assert readers(SPECS, "up") == ["mid", "low"]
    assert readers(SPECS, "mid") == ["low"]
    assert readers(SPECS, "low") == readers(SPECS, "other") == []


def test_verify_reports_corrupt_and_missing_objects(db: Database, store: ArtifactStore, ran: list[str]) -> None:
    corrupt(store, "videos/v1/up/out.bin")
    store.delete("videos/v2/other/out.bin")
    report = verify_stages(db, store, SPECS)
    counts = {name: (c.checked, c.ok, c.corrupt, c.missing, c.marked) for name, c in report.stages.items()}
    assert counts == {"up": (3, 2, 1, 0, 0), "mid": (3, 3, 0, 0, 0), "low": (3, 3, 0, 0, 0),
                      "other": (3, 2, 0, 1, 0)}
    assert sorted((p.video_id, p.stage, p.artifact, p.kind) for p in report.problems) == [
        ("v1", "up", "out", "corrupt"), ("v2", "other", "out", "missing")]
    assert all(s == ("done", None) for s in _status(db).values())  # without --repair nothing changes

    only = verify_stages(db, store, SPECS, stages=["mid", "other"])
    assert sorted(only.stages) == ["mid", "other"] and len(only.problems) == 1


def test_repair_marks_what_does_not_verify_and_its_readers_then_a_plain_run_redoes_them(
        db: Database, store: ArtifactStore, ran: list[str]) -> None:
    corrupt(store, "videos/v1/up/out.bin")
    store.delete("videos/v2/other/out.bin")
    report = verify_stages(db, store, SPECS, repair=True)
    assert {name: c.marked for name, c in report.stages.items()} == {"up": 1, "mid": 1, "low": 1, "other": 1}
    marked = {k: s for k, s in _status(db).items() if s != ("done", None)}
    assert marked == {("v1", "up"): ("failed", "IntegrityError"), ("v1", "mid"): ("failed", "UpstreamIntegrityError"),
                      ("v1", "low"): ("failed", "UpstreamIntegrityError"), ("v2", "other"): ("failed", "IntegrityError")}
    views = repo.stage_views(db, [s.name for s in SPECS])
    for key in marked:
        view = views[key]
        assert view.retryable is True and view.artifacts == {}
        assert decide(view, f"fp-{key[1]}") is None  # the planner runs it again, with the same fingerprint
    assert repo.videos_failed_with(db, "IntegrityError") == ["v1", "v2"]  # and `retry --error-type` finds it

    # a plain run (same fingerprints) claims exactly the marked stages, in order
    ran_again = [(v, s.name) for v in ran for s in SPECS if _run(db, store, v, s) == "done"]
    assert sorted(ran_again) == sorted(marked)
    assert store.get_bytes("videos/v1/up/out.bin") == _payload("v1", "up")
    after = verify_stages(db, store, SPECS)
    assert after.problems == [] and all(s == ("done", None) for s in _status(db).values())


def test_repair_leaves_a_running_stage_to_its_worker(db: Database, store: ArtifactStore, ran: list[str]) -> None:
    corrupt(store, "videos/v3/up/out.bin")
    repo.mark_for_rerun(db, "v3", "low", "IntegrityError", "to be run")  # failed: still marked again below
    claim = repo.claim_stage(db, "v3", "mid", "fp-other-params", LEASE)  # a live worker is redoing it
    assert isinstance(claim, repo.Claim)
    report = verify_stages(db, store, SPECS, repair=True)
    assert {name: c.marked for name, c in report.stages.items() if c.marked} == {"up": 1, "low": 1}
    status = _status(db)
    assert status[("v3", "mid")] == ("running", None)
    assert status[("v3", "low")] == ("failed", "UpstreamIntegrityError")


def test_verify_pages_through_many_rows(db: Database, store: ArtifactStore) -> None:
    videos = [f"p{i}" for i in range(7)]
    repo.register_videos(db, [repo.NewVideo(v, "local", f"/x/{v}.mp4") for v in videos])
    for v in videos:
        _run(db, store, v, UP)
    pages = list(repo.done_stage_batches(db, ["up"], batch=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(view.video_id for page in pages for view in page) == videos


# --- a stage whose input does not verify -------------------------------------------------------------------


@pytest.fixture
def rt(db: Database, store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.chdir(tmp_path)
    repo.register_videos(db, [repo.NewVideo("v1", "local", "/x/v1.mp4")])
    assert _run(db, store, "v1", UP) == "done"
    return Runtime(load_settings(), db, store)


def _run_mid(rt: Runtime, fail: Exception | None = None):  # noqa: ANN202
    """MID reads UP's output verified, as every stage does, and writes it upper-cased."""
    def body(info):  # noqa: ANN001, ANN202
        data = rt.store.get_bytes(info.key, verify=True)
        if fail:
            raise fail
        return StageOutput({"out": rt.store.put_bytes(keys.video_artifact("v1", MID.name, "out.bin"), data.upper())})

    return run_derived_stage(rt, "v1", MID, lambda src: stage_fingerprint(MID.name, MID.version, {}, {"up": src.sha256}),
                             body)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_an_input_that_does_not_verify_marks_its_producer_to_run_again(rt: Runtime, damage: str) -> None:
    key = "videos/v1/up/out.bin"
    corrupt(rt.store, key) if damage == "corrupt" else rt.store.delete(key)
    r = _run_mid(rt)
    assert (r.status, r.reason, r.retryable) == ("failed", "UpstreamIntegrityError", True)
    assert "up is marked to run again" in r.message and key in r.message
    views = repo.stage_views(rt.db, ["up", "mid"])
    assert (views[("v1", "up")].status, views[("v1", "up")].error_type) == ("failed", "IntegrityError")
    assert views[("v1", "up")].retryable is True
    messages = {(stage, etype): msg for stage, etype, _, msg in repo.top_errors(rt.db)}
    assert messages[("up", "IntegrityError")].startswith(f"{damage}: ") and "found by mid" in messages[("up", "IntegrityError")]
    assert (views[("v1", "mid")].status, views[("v1", "mid")].retryable) == ("failed", True)

    # the next plain run redoes the producer, then the stage that read it
    assert decide(views[("v1", "up")], "fp-up") is None
    assert _run(rt.db, rt.store, "v1", UP) == "done"
    assert _run_mid(rt).status == "done"
    assert rt.store.get_bytes("videos/v1/mid/out.bin") == _payload("v1", "up").upper()


def test_an_integrity_error_that_is_not_about_the_input_leaves_the_producer_alone(rt: Runtime) -> None:
    r = _run_mid(rt, fail=IntegrityError("the model file is corrupt"))
    assert (r.status, r.reason, r.retryable) == ("failed", "IntegrityError", False)
    assert repo.stage_views(rt.db, ["up"])[("v1", "up")].status == "done"


# --- end to end: the ingest flow, the CLI, on SQLite + a folder and on PostgreSQL + the S3 server ----------------

BASELINE = "features:\n  extractor: baseline\n"


@pytest.fixture(params=["sqlite+local", pytest.param("postgres+s3", marks=[pytest.mark.postgres, pytest.mark.s3])])
def backend(request: pytest.FixtureRequest, project: Project) -> Iterator[Project]:
    """The project on the embedded defaults, or on PostgreSQL and the S3-protocol server."""
    from videobert.core.runtime import reset_runtimes

    if request.param == "postgres+s3":
        from tests.conftest import create_database

        url = create_database(request.getfixturevalue("pg_cluster"))
        Database(url).upgrade()
        for name, value in {"DATABASE_URL": url, "STORE": "minio", "MINIO_BUCKET": new_bucket_name(),
                            "MINIO_ENDPOINT": request.getfixturevalue("s3_endpoint"),
                            "MINIO_ACCESS_KEY": "test-access", "MINIO_SECRET_KEY": "test-secret"}.items():
            project.monkeypatch.setenv(f"VIDEOBERT_{name}", value)
    yield project
    reset_runtimes()


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "videobert_cli.cli", *args], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=300)


def _table_row(out: str, first: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith("│") and line.split("│")[1].strip() == first)
    return [c.strip() for c in line.split("│")[1:-1]]


def _ingested(project: Project) -> tuple[Path, Path]:
    from flows.ingest import IngestRequest, ingest

    videos = project.root / "videos"
    make_video(videos / "alpha.mp4", seconds=2)
    make_video(videos / "bravo.mp4", seconds=2, pattern="testsrc")
    params = project.write_params(BASELINE)
    s = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    assert s.results == {stage: {"done": 2} for stage in ("download", "transcript", "punctuate", "features")}
    return videos, params


def _all_done(project: Project) -> bool:
    return {v.status for v in repo.stage_views(project.runtime().db, ["download", "transcript", "punctuate",
                                                                      "features"]).values()} == {"done"}


@pytest.mark.usefixtures("prefect_api")
def test_verify_and_repair_through_the_cli_then_ingest_redoes_exactly_those(backend: Project) -> None:
    from flows.ingest import IngestRequest, ingest

    videos, params = _ingested(backend)
    store = backend.runtime().store
    corrupt(store, "videos/alpha/download/source.mp4")

    r = _cli(backend, "verify")
    assert r.returncode == 1, r.stdout + r.stderr
    assert _table_row(r.stdout, "download") == ["download", "2", "1", "1", "0"]
    assert _table_row(r.stdout, "features") == ["features", "2", "2", "0", "0"]
    assert "alpha" in r.stdout and "videos/alpha/download/source.mp4" in r.stdout
    status = _cli(backend, "status")
    assert _table_row(status.stdout, "download")[1:] == ["0", "0", "2", "0", "2"]  # verify alone changes nothing

    r = _cli(backend, "verify", "--repair")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _table_row(r.stdout, "download") == ["download", "2", "1", "1", "0", "1"]
    assert _table_row(r.stdout, "features") == ["features", "2", "2", "0", "0", "1"]
    status = _cli(backend, "status")
    assert _table_row(status.stdout, "download")[1:] == ["0", "0", "1", "1", "2"]
    assert "IntegrityError" in status.stdout and "UpstreamIntegrityError" in status.stdout

    s = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))  # a plain run
    assert task_run_names(s.flow_run_id, 2) == ["download-alpha", "features-alpha"]
    assert _all_done(backend)
    assert store.get_bytes("videos/alpha/download/source.mp4") == (videos / "alpha.mp4").read_bytes()
    r = _cli(backend, "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "every done stage's artifacts verify" in r.stdout


@pytest.mark.usefixtures("prefect_api")
def test_a_corrupt_download_found_by_features_is_downloaded_again_by_the_next_run(backend: Project) -> None:
    from flows.ingest import IngestRequest, ingest

    videos, _ = _ingested(backend)
    corrupt(backend.runtime().store, "videos/alpha/download/source.mp4")
    params = backend.write_params(BASELINE + "  frame_jpeg_quality: 70\n")  # features run again and read it

    s1 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    assert s1.results == {"features": {"done": 1, "failed": 1}}
    assert [(e.stage, e.error_type) for e in s1.top_errors] == [("features", "UpstreamIntegrityError")]
    views = repo.stage_views(backend.runtime().db, ["download"])
    assert (views[("alpha", "download")].status, views[("alpha", "download")].error_type) == ("failed", "IntegrityError")

    s2 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))  # a plain run
    assert task_run_names(s2.flow_run_id, 2) == ["download-alpha", "features-alpha"]
    assert _all_done(backend)
