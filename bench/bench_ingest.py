"""Ingest flow benchmarks.

1. No-op re-run: 1,000 registered videos whose three ingest stages are all done. Total flow time and the
   number of Prefect task runs it creates (goals: under 10 s, and none).
2. Flow overhead per video: the ingest flow on small local videos against calling the same stage functions
   in a plain loop, in the same run.

Run: .venv/bin/python bench/bench_ingest.py [--videos 1000] [--small 16]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Timer, machine, project_dir, quiet_env  # noqa: E402

quiet_env()


def _task_runs(flow_run_id: str, settle_s: float = 3.0) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    time.sleep(settle_s)  # task runs are recorded from events, shortly after they happen
    with get_client(sync_client=True) as client:
        flt = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
        return len(client.read_task_runs(flow_run_filter=flt))


def noop_rerun(n: int) -> None:
    from flows.ingest import IngestRequest, ingest
    from videobert.core.params import load_params
    from videobert.core.runtime import get_runtime
    from videobert.db import repository as repo
    from videobert.db.models import StageRun, StageStatus, utcnow
    from videobert.features.stage import FEATURES, features_fingerprint
    from videobert.ingest.plan import plan_ingest
    from videobert.ingest.stages import (
        DOWNLOAD,
        PUNCTUATE,
        TRANSCRIPT,
        download_fingerprint,
        punctuate_fingerprint,
        transcript_fingerprint,
    )

    with project_dir("bench-noop-") as root:
        # all four ingest stages; the weight-free extractor, since S3D's weights cannot be downloaded here
        (root / "params.yaml").write_text("features:\n  extractor: baseline\n")
        folder = root / "videos"
        folder.mkdir()
        for i in range(n):
            (folder / f"video{i:05d}.mp4").write_bytes(b"")  # only their stat enters the fingerprint
        rt = get_runtime()
        params = load_params(root / "params.yaml")
        repo.register_videos(rt.db, [repo.NewVideo(f"video{i:05d}", "local", str(folder / f"video{i:05d}.mp4"))
                                     for i in range(n)])
        videos = repo.get_videos(rt.db, [f"video{i:05d}" for i in range(n)])
        rows = []
        now = utcnow()
        for vid, video in videos.items():
            # stand-in artifact records: the plan reads only their sha256
            tsha, vsha = (hashlib.sha256(f"{kind}:{vid}".encode()).hexdigest() for kind in ("transcript", "video"))
            transcript = {"transcript": {"key": f"videos/{vid}/transcript/captions.json", "sha256": tsha, "size": 10}}
            source = {"video": {"key": f"videos/{vid}/download/source.mp4", "sha256": vsha, "size": 10}}
            for spec, fp, arts in (
                (DOWNLOAD, download_fingerprint(video, params), source),
                (TRANSCRIPT, transcript_fingerprint(rt, video, params), transcript),
                (PUNCTUATE, punctuate_fingerprint(rt, params, tsha), {}),
                (FEATURES, features_fingerprint(rt, params, vsha), {}),
            ):
                rows.append(StageRun(video_id=vid, stage=spec.name, status=StageStatus.DONE, fingerprint=fp,
                                     artifacts=arts, outcome={}, attempts=1, started_at=now, finished_at=now))
        with rt.db.session() as s:
            s.add_all(rows)

        with Timer() as plan_t:
            plan = plan_ingest(rt, sorted(videos), params)
        assert not plan.todo, plan.todo
        ingest(request=IngestRequest())  # warm-up: imports, first flow run on the server
        with Timer() as t:
            summary = ingest(request=IngestRequest())
        runs = _task_runs(summary.flow_run_id)
        print(f"no-op re-run over {n} done videos ({4 * n} stages): flow {t.s:.2f} s "
              f"(plan from the database {plan_t.s * 1000:.0f} ms), task runs created: {runs}; "
              f"goal < 10 s and 0 -> {'met' if t.s < 10 and runs == 0 else 'NOT met'}")
        assert summary.submitted == {"download": 0, "transcript": 0, "punctuate": 0, "features": 0}


def overhead(n: int) -> None:
    import tempfile

    from flows.ingest import IngestRequest, ingest
    from tests.helpers.media import make_video
    from videobert.core.params import load_params
    from videobert.core.runtime import get_runtime
    from videobert.db import repository as repo
    from videobert.features.stage import run_features
    from videobert.ingest.sources import read_local_dir
    from videobert.ingest.stages import run_download, run_punctuate, run_transcript

    with tempfile.TemporaryDirectory(prefix="bench-videos-") as vtmp:
        folder = Path(vtmp) / "videos"
        params_file = Path(vtmp) / "params.yaml"
        params_file.write_text("features:\n  extractor: baseline\n")  # S3D's weights cannot be had here
        params = load_params(params_file)
        for i in range(n):
            make_video(folder / f"clip{i:03d}.mp4", seconds=2)
            (folder / f"clip{i:03d}.en.vtt").write_text(
                "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nstir the sauce\n\n00:00:01.000 --> 00:00:02.000\nadd salt\n")

        with project_dir("bench-plain-"):
            rt = get_runtime()
            scan = read_local_dir(folder)
            repo.register_videos(rt.db, scan.videos)
            with Timer() as plain:
                for v in scan.videos:
                    for run in (run_download, run_transcript, run_punctuate, run_features):
                        assert run(rt, v.id, params).status == "done"

        results = {}
        for conc in (1, 2):
            times = []
            for rep in range(3):
                with project_dir(f"bench-flow{conc}-{rep}-"):
                    get_runtime()  # open (and migrate) the database outside the timing, as the plain loop did
                    with Timer() as t:
                        summary = ingest(request=IngestRequest(local_dir=str(folder), concurrency=conc),
                                         params_file=str(params_file))
                    assert summary.results == {s: {"done": n} for s in ("download", "features", "punctuate",
                                                                          "transcript")}
                    times.append(t.s)
            results[conc] = sorted(times)[1]  # median of 3
    per_plain = plain.s / n * 1000
    print(f"{n} small local videos (2 s, 320x240) x 4 stages: plain loop {plain.s:.2f} s ({per_plain:.0f} ms/video)")
    for conc, s in results.items():
        print(f"  ingest flow, concurrency {conc} (median of 3): {s:.2f} s ({s / n * 1000:.0f} ms/video), "
              f"ratio flow/plain {s / plain.s:.2f}x, overhead {(s - plain.s) / n * 1000:+.0f} ms/video")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--small", type=int, default=16)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    print(f"machine: {machine()}")
    with prefect_test_harness(server_startup_timeout=120):
        noop_rerun(args.videos)
        overhead(args.small)


if __name__ == "__main__":
    main()
