"""The ingest flow end to end: real Prefect flow runs, real videos, the tracking database and the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.ingest import IngestRequest, ingest
from tests.conftest import Project
from tests.flows.prefect_api import task_run_names
from tests.helpers.httpserver import LocalHTTPServer, Route
from tests.helpers.media import make_video
from videobert.db import repository as repo
from videobert.db.models import StageRun

pytestmark = pytest.mark.usefixtures("prefect_api")

VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nfirst crack the eggs\n\n00:00:02.500 --> 00:00:03.000\nthen whisk\n"


def _videos(folder: Path) -> Path:
    make_video(folder / "alpha.mp4", seconds=2)
    make_video(folder / "bravo.mp4", seconds=3, audio=True)
    (folder / "bravo.en.vtt").write_text(VTT)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "bad name!.mp4").write_bytes(b"x")
    return folder


BASELINE = "features:\n  extractor: baseline\n"


def test_ingest_runs_skips_and_reruns_exactly_what_changed(project_any: Project) -> None:
    project = project_any  # SQLite + a local folder, and PostgreSQL + the S3-protocol server
    videos = _videos(project.root / "videos")
    params = project.write_params(BASELINE)
    s1 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))

    # a bad video never fails the flow: it is counted and recorded
    assert s1.results == {
        "download": {"done": 2, "failed": 2}, "features": {"done": 2, "not run": 2},
        "punctuate": {"done": 4}, "transcript": {"done": 4},
    }
    assert ("download", "CorruptVideoError", 2) in [(e.stage, e.error_type, e.count) for e in s1.top_errors]
    assert s1.rejected_count == 1 and "bad_name!" in s1.rejected[0][1]
    assert sorted(task_run_names(s1.flow_run_id, 14)) == sorted(
        [f"{stage}-{v}" for v in ("alpha", "bravo", "corrupt", "empty") for stage in ("download", "transcript", "punctuate")]
        + ["features-alpha", "features-bravo"]  # no task run for features whose download failed
    )
    rt = project.runtime()
    views = repo.stage_views(rt.db, ["download", "transcript", "punctuate"])
    assert views[("empty", "download")].error_type == "CorruptVideoError"
    assert views[("bravo", "transcript")].outcome["source"] == "subtitles"
    assert views[("alpha", "transcript")].outcome["source"] == "none"  # no transcript is an outcome
    sentences = json.loads(rt.store.get_bytes(views[("bravo", "punctuate")].artifact("sentences").key))
    assert [s["text"] for s in sentences["sentences"]] == ["first crack the eggs.", "then whisk."]
    assert sentences["method"].startswith("fallback")
    assert rt.store.get_bytes("videos/alpha/download/source.mp4") == (videos / "alpha.mp4").read_bytes()

    # nothing changed: no task runs at all
    s2 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    assert s2.submitted == {"download": 0, "transcript": 0, "punctuate": 0, "features": 0}
    assert s2.skipped_before_submit["download"] == {"up to date": 2, "failed permanently": 2}
    assert task_run_names(s2.flow_run_id, 0) == []

    # one video's file changes: only that video's stages that read it run again (the transcript too, as the
    # whisper source would hear its audio; then its punctuation, which finds the same transcript)
    make_video(videos / "alpha.mp4", seconds=3, size="160x120")
    s3 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    assert sorted(task_run_names(s3.flow_run_id, 4)) == ["download-alpha", "features-alpha", "punctuate-alpha",
                                                         "transcript-alpha"]
    assert rt.store.get_bytes("videos/alpha/download/source.mp4") == (videos / "alpha.mp4").read_bytes()

    # one stage parameter changes: that stage runs for every video that has its input, nothing else
    params = project.write_params(BASELINE + "punctuate:\n  fallback_max_words: 2\n")
    s4 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    assert s4.submitted == {"download": 0, "transcript": 0, "punctuate": 4, "features": 0}
    assert task_run_names(s4.flow_run_id, 4) == ["punctuate-alpha", "punctuate-bravo", "punctuate-corrupt", "punctuate-empty"]
    sentences = json.loads(rt.store.get_bytes("videos/bravo/punctuate/sentences.json"))
    assert [s["text"] for s in sentences["sentences"]] == ["first crack.", "the eggs.", "then whisk."]

    # retry by error type: only the videos that failed with it
    s5 = ingest(request=IngestRequest(retry_error_type="CorruptVideoError"), params_file=str(params))
    assert task_run_names(s5.flow_run_id, 2) == ["download-corrupt", "download-empty"]
    with rt.db.session() as s:
        rows = s.scalars(select(StageRun)).all()
    assert len(rows) == 14  # one row per (video, stage), however many runs (features: 2 videos)
    assert {r.attempts for r in rows if r.video_id == "corrupt" and r.stage == "download"} == {2}


def test_transient_errors_are_retried_and_permanent_ones_are_not(project: Project) -> None:
    video = make_video(project.root / "src.mp4", seconds=2).read_bytes()
    server = LocalHTTPServer().start()
    server.routes["/flaky.mp4"] = Route(video, fail_first=2)
    try:
        ids = project.root / "ids.txt"
        ids.write_text(f"{server.url('/flaky.mp4')}\n{server.url('/gone.mp4')}\n")
        params = project.write_params("download:\n  task_retries: 3\n  retry_backoff_s: 0\n  http_retries: 0\n")
        summary = ingest(request=IngestRequest(ids_file=str(ids), stages=["download"]), params_file=str(params))
    finally:
        server.stop()
    assert summary.results == {"download": {"done": 1, "failed": 1}}
    rt = project.runtime()
    views = {vid: v for (vid, _), v in repo.stage_views(rt.db, ["download"]).items()}
    by_url = {repo.get_video(rt.db, vid).url.rsplit("/", 1)[1]: v for vid, v in views.items()}
    assert by_url["flaky.mp4"].status == "done" and by_url["flaky.mp4"].attempts == 3  # two transient failures
    assert by_url["gone.mp4"].error_type == "VideoUnavailableError" and by_url["gone.mp4"].attempts == 1


def test_a_tf_hub_model_that_cannot_be_had_stops_the_flow_before_any_task(project: Project) -> None:
    from videobert.core.errors import SettingsError
    from videobert.features.extractors import tfhub_cache_path

    missing = project.root / "no-such-s3d"
    project.monkeypatch.setenv("VIDEOBERT_S3D_HANDLE", str(missing))
    project.monkeypatch.setenv("VIDEOBERT_TFHUB_CACHE_DIR", str(project.root / "tfhub"))
    make_video(project.root / "videos" / "alpha.mp4", seconds=1)
    params = project.write_params("features:\n  extractor: s3d\n")
    state = ingest(request=IngestRequest(local_dir=str(project.root / "videos")), params_file=str(params),
                   return_state=True)
    assert state.is_failed()
    with pytest.raises(SettingsError) as err:
        state.result()
    # the handle and the cache folder to pre-fill are named
    assert str(missing) in str(err.value) and str(tfhub_cache_path(str(missing), str(project.root / "tfhub"))) in str(err.value)
    assert task_run_names(str(state.state_details.flow_run_id), 0, settle_s=1.0) == []  # no task at all, not one per video
    assert repo.stage_views(project.runtime().db, ["download", "transcript", "punctuate", "features"]) == {}


def test_one_task_run_per_video_records_every_stage_as_the_per_stage_runs_do(project: Project) -> None:
    """`ingest.task_runs: video`: one Prefect task run per video runs its stages in order; the summary, the stage
    rows and the re-run rules are those of one task run per (video, stage)."""
    videos = _videos(project.root / "videos")
    params = project.write_params(BASELINE + "ingest:\n  task_runs: video\n")
    s1 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    assert s1.results == {
        "download": {"done": 2, "failed": 2}, "features": {"done": 2, "not run": 2},
        "punctuate": {"done": 4}, "transcript": {"done": 4},
    }
    assert ("download", "CorruptVideoError", 2) in [(e.stage, e.error_type, e.count) for e in s1.top_errors]
    assert sorted(task_run_names(s1.flow_run_id, 4)) == [f"ingest-{v}" for v in ("alpha", "bravo", "corrupt", "empty")]
    rt = project.runtime()
    views = repo.stage_views(rt.db, ["download", "transcript", "punctuate", "features"])
    assert {k for k, v in views.items() if v.status == "done"} == (
        {(v, s) for v in ("alpha", "bravo", "corrupt", "empty") for s in ("transcript", "punctuate")}
        | {(v, s) for v in ("alpha", "bravo") for s in ("download", "features")})
    assert ("corrupt", "features") not in views  # not attempted: its download failed

    s2 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))  # nothing changed
    assert task_run_names(s2.flow_run_id, 0) == [] and not s2.results
    make_video(videos / "alpha.mp4", seconds=3, size="160x120")  # one video changes: one task run, its stages
    s3 = ingest(request=IngestRequest(local_dir=str(videos)), params_file=str(params))
    assert task_run_names(s3.flow_run_id, 1) == ["ingest-alpha"]
    # (its transcript is heard again from the new file and is the same: its punctuation is up to date, as with
    # one task run per stage)
    assert s3.results == {"download": {"done": 1}, "transcript": {"done": 1}, "punctuate": {"skipped": 1},
                          "features": {"done": 1}}
