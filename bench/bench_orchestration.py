"""The orchestration at size: Prefect task runs per (video, stage) against one Prefect server on PostgreSQL.

Stage bodies do no work here: each (video, stage) is the stage's claim and its completion in the tracking
database (PostgreSQL too), so only our scheduling (`flows.futures.run_per_video`, the flows' per-video
scheduler), the database and Prefect are measured. Two designs, each with 1, 2 and 4 flow-run processes on
shards of the videos (what a process work pool's workers run, each flow run in a process of its own):

* `task-per-stage`: one Prefect task run per (video, stage), the download -> transcript -> punctuate -> features
  order kept by the scheduler (today's ingest flow);
* `task-per-video`: one task run per video, running its stages in order inside it (the database still per
  (video, stage)).

Baseline in the same run: the same claims and completions in a plain loop in one process, no Prefect.
Prints task runs/s, Prefect's cost per (video, stage) over the baseline, the Prefect database's growth per
task run and the server's memory, and the machine.

    .venv/bin/python bench/bench_orchestration.py --videos 1000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_scale import psql, start_durable_cluster  # noqa: E402
from bench.common import machine, quiet_env  # noqa: E402

STAGES = ("download", "transcript", "punctuate", "features")  # the ingest stages, in order
UPSTREAM = {"transcript": "download", "punctuate": "transcript", "features": "download"}
CONCURRENCY = 8  # videos in flight per flow run (the ingest default's order of magnitude)
LEASE_S = 600.0
PROCESSES = (1, 2, 4)
SERVER_START_S = 180


def _claim_and_complete(db: Any, video_id: str, stage: str) -> str:
    """A stage without a body: claimed, then completed with one (made-up) artifact; its status."""
    from videobert.core.storage import ObjectInfo
    from videobert.db import repository as repo

    got = repo.claim_stage(db, video_id, stage, "f" * 64, LEASE_S)
    if not isinstance(got, repo.Claim):
        return "skipped"
    repo.complete_stage(db, got, {"x": ObjectInfo(f"videos/{video_id}/{stage}/x", 1, "0" * 64)})
    return "done"


def _db() -> Any:
    from videobert.core.runtime import get_runtime

    return get_runtime().db


def run_shard(design: str, shard: int, shards: int, videos: int, tag: str) -> None:
    """One flow run over every `shards`-th video (from `shard`), as a work pool's worker would run it."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.futures import run_per_video

    @task(name="stage", task_run_name="{stage}-{video_id}", persist_result=False)
    def stage_task(video_id: str, stage: str) -> dict[str, Any]:
        return {"status": _claim_and_complete(_db(), video_id, stage), "reason": None}

    @task(name="video", task_run_name="video-{video_id}", persist_result=False)
    def video_task(video_id: str) -> dict[str, Any]:
        db = _db()
        statuses = [_claim_and_complete(db, video_id, stage) for stage in STAGES]
        return {"status": "done" if all(s == "done" for s in statuses) else "skipped", "reason": None}

    @flow(name=f"bench-{design}", task_runner=ThreadPoolTaskRunner(max_workers=64), persist_result=False)
    def bench_flow() -> None:
        ids = [f"{tag}{i:07d}" for i in range(shard, videos, shards)]
        if design == "task-per-stage":
            plan = {v: list(STAGES) for v in ids}
            run_per_video(plan, lambda vid, stage: stage_task.submit(vid, stage), UPSTREAM, CONCURRENCY, design)
        else:
            plan = {v: ["video"] for v in ids}
            run_per_video(plan, lambda vid, _: video_task.submit(vid), {}, CONCURRENCY, design)

    started = time.time()
    bench_flow()
    print(f"SHARD {started} {time.time()}", flush=True)  # the flow run's span, start-up of the process left out


def register(url: str, tag: str, videos: int) -> None:
    psql(url, f"INSERT INTO videos (id, source, source_id, state, info, created_at, updated_at) SELECT "
              f"'{tag}' || lpad(i::text, 7, '0'), 'local', '{tag}' || i, 'registered', '{{}}'::json, now(), now() "
              f"FROM generate_series(0, {videos - 1}) AS i")


def done_pairs(url: str, tag: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(f"SELECT count(*) FROM stage_runs WHERE video_id LIKE '{tag}%' AND status = 'done'"
                            ).fetchone()[0]


def db_bytes(url: str, name: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]


def settled_bytes(url: str, name: str, quiet_s: float = 5.0, timeout_s: float = 120.0) -> int:
    """The Prefect database's size once the server has written what it was sent (the events of the task runs are
    persisted in the background, after the flow runs return): unchanged for `quiet_s`."""
    last, since, deadline = db_bytes(url, name), time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(1.0)
        now = db_bytes(url, name)
        if now != last:
            last, since = now, time.monotonic()
    return last


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for t in Path(f"/proc/{p}/task").iterdir():
                kids = (t / "children").read_text().split()
                pids += [int(k) for k in kids]
        except OSError:
            continue
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--processes", default=",".join(map(str, PROCESSES)), help="flow-run process counts")
    parser.add_argument("--designs", default="task-per-stage,task-per-video", help="designs to measure")
    parser.add_argument("--shard", nargs=5, metavar=("DESIGN", "SHARD", "SHARDS", "VIDEOS", "TAG"),
                        help=argparse.SUPPRESS)  # a child process: run one shard's flow
    args = parser.parse_args()
    quiet_env()
    if args.shard:
        design, shard, shards, videos, tag = args.shard
        run_shard(design, int(shard), int(shards), int(videos), tag)
        return 0

    from tests.conftest import create_database, destroy_cluster, free_port
    from videobert.core.settings import Settings
    from videobert.db.engine import open_database

    print(f"machine: {machine()}")
    cluster = start_durable_cluster()
    server = None
    try:
        url = create_database(cluster)
        prefect_db = create_database(cluster)
        prefect_name = prefect_db.rsplit("/", 1)[1]
        open_database(Settings(database_url=url), migrate=True)
        home = Path(tempfile.mkdtemp(prefix="bench-orch-"))
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db.replace("+psycopg", "+asyncpg"),
               "PREFECT_UI_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        log = (home / "server.log").open("w")
        server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
                                   "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        _wait_healthy(api, server)
        print(f"Prefect server on PostgreSQL ({prefect_name}), pid {server.pid}, {tree_rss_mb(server.pid):.0f} MB")
        child_env = {**os.environ, "PREFECT_API_URL": api, "VIDEOBERT_DATABASE_URL": url,
                     "VIDEOBERT_DATA_DIR": str(home / "data"), "PREFECT_LOGGING_LEVEL": "WARNING"}

        # baseline: the same claims and completions, a plain loop in this process
        db = open_database(Settings(database_url=url), migrate=False)
        register(url, "base", args.videos)
        t0 = time.perf_counter()
        for i in range(args.videos):
            for stage in STAGES:
                _claim_and_complete(db, f"base{i:07d}", stage)
        base_s = time.perf_counter() - t0
        pairs = args.videos * len(STAGES)
        print(f"baseline, plain loop: {pairs} (video, stage) in {base_s:.1f} s: {pairs / base_s:.0f}/s, "
              f"{base_s / pairs * 1000:.2f} ms each")

        rows = []
        for design in args.designs.split(","):
            for procs in [int(p) for p in args.processes.split(",")]:
                tag = f"{design[9]}{procs}x"
                register(url, tag, args.videos)
                before = db_bytes(url, prefect_name)
                children = [subprocess.Popen([sys.executable, __file__, "--shard", design, str(s), str(procs),
                                              str(args.videos), tag], env=child_env, stdout=subprocess.PIPE,
                                             text=True) for s in range(procs)]
                spans = [line.split()[1:] for c in children for line in c.communicate()[0].splitlines()
                         if line.startswith("SHARD ")]
                exited = time.time()  # the last process gone: its Prefect client has sent every event
                codes = [c.returncode for c in children]
                if len(spans) < procs:  # a flow run failed: say so (the server's log says why) and go on
                    print(f"{design}, {procs} flow-run processes: {procs - len(spans)} of {procs} flow runs failed "
                          f"(exit codes {codes}); the server's log: {home / 'server.log'}", flush=True)
                    continue
                # from the first flow run's start (the processes' imports left out) to the last process's exit: a
                # flow run returns before its client has sent the task runs' events to the server, and with a
                # server that falls behind the process waits for them at exit
                wall = exited - min(float(b) for b, _ in spans)
                flows_s = max(float(e) for _, e in spans) - min(float(b) for b, _ in spans)
                grown = settled_bytes(url, prefect_name) - before
                task_runs = pairs if design == "task-per-stage" else args.videos
                done = done_pairs(url, tag)
                rss = tree_rss_mb(server.pid)
                rows.append((design, procs, wall, task_runs, done, grown, rss, codes))
                print(f"{design}, {procs} flow-run processes: {wall:.1f} s (flow runs returned after {flows_s:.1f} s), "
                      f"{task_runs / wall:.0f} task runs/s, "
                      f"{pairs / wall:.0f} (video, stage)/s, {done}/{pairs} done, Prefect database +"
                      f"{grown / task_runs / 1024:.1f} KiB per task run, server {rss:.0f} MB, exit codes {codes}",
                      flush=True)
        print(f"\n{args.videos} videos x {len(STAGES)} stages; baseline loop {pairs / base_s:.0f} (video, stage)/s")
        print("| design | flow-run processes | wall s | task runs/s | (video, stage)/s | vs the loop | ms per "
              "(video, stage) beyond the loop | Prefect DB per (video, stage) | server RSS |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for design, procs, wall, task_runs, _done, grown, rss, _ in rows:
            extra_ms = (wall - base_s) / pairs * 1000
            print(f"| {design} | {procs} | {wall:.1f} | {task_runs / wall:.0f} | {pairs / wall:.0f} | "
                  f"{base_s / wall:.2f}x | {extra_ms:.1f} | {grown / pairs / 1024:.1f} KiB | {rss:.0f} MB |")
    finally:
        if server is not None:
            import signal

            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        destroy_cluster(cluster)
    return 0


def _wait_healthy(api: str, server: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=5):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Prefect server did not start") from None
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
