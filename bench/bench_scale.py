"""The tracking database at the paper's scale and HowTo100M's: PostgreSQL with 10k, 100k and 1.2M videos.

Fills a throwaway PostgreSQL cluster (durable settings: fsync, synchronous_commit and full-page writes on, as in
production) with synthetic videos and one `stage_runs` row per (video, stage) for the five per-video stages,
bulk-loaded in SQL (`generate_series`), not through the flow. Then, at each size, the operations a user or a
worker makes, through the project's own code:

* the plan of a 10,000-video ingest request (`release_dead_claims` + `plan_ingest`: what every ingest does
  before submitting anything);
* `videobert status` (`status_counts`, `video_count`, `top_errors`);
* the selection of `videobert retry --error-type` (`videos_failed_with`);
* claim -> complete throughput with 1, 4 and 16 worker processes, every item offered to two workers (as when
  two serving processes plan overlapping requests): the stages claimed are checked to be each claimed once;
* `EXPLAIN` of every statement those operations send, captured as they run: any sequential scan of
  `stage_runs` is reported.

Prints p50 / p99 (or the median of the repeats for whole operations), the ratio of 1.2M to 10k for the
per-video operations (goal <= 1.5x), and the machine.

    .venv/bin/python bench/bench_scale.py                  # 10k, 100k, 1.2M (about 10 minutes on 2 cores)
    .venv/bin/python bench/bench_scale.py --sizes 10000,100000 --claims 600
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, quiet_env  # noqa: E402

# the per-video stages and the artifact each writes (the name the next stage reads)
ARTIFACTS = {"download": "video", "transcript": "transcript", "punctuate": "sentences", "features": "features",
             "tokens": "tokens"}
STAGES = tuple(ARTIFACTS)
PLAN_VIDEOS = 10_000  # the request the plan is measured on
REPEATS = 5  # runs of each whole operation at each size
WORKERS = (1, 4, 16)
LEASE_S = 600.0
# of every stage row: done, failed retryable (NetworkError), failed permanent (VideoUnavailableError), pending,
# running (a live claim of another host: as many as the workers hold at once, a few hundred at 1.2M videos)
MIX = {"done": 0.94, "network": 0.02, "unavailable": 0.01, "pending": 0.0199, "running": 0.0001}


# --- the cluster ---------------------------------------------------------------------------------------------


def start_durable_cluster() -> Any:
    """The test suite's throwaway cluster, restarted with production's durability settings."""
    from tests.conftest import start_cluster

    cluster = start_cluster()
    cluster.stop()
    opts = (f"-p {cluster.port} -c listen_addresses=127.0.0.1 -k {cluster.datadir.parent / 'sock'} "
            "-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=100 "
            "-c shared_buffers=1GB -c maintenance_work_mem=512MB -c max_wal_size=4GB")
    cluster.run(str(cluster.bindir / "pg_ctl"), "-D", str(cluster.datadir), "-l",
                str(cluster.datadir.parent / "server.log"), "-o", opts, "-w", "-t", "60", "start")
    return cluster


def psql(url: str, sql: str) -> None:
    """Run SQL on the database (autocommit)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(sql)


def grow(url: str, start: int, stop: int) -> float:
    """Add videos start..stop-1 with their stage rows; seconds taken (the load and VACUUM ANALYZE)."""
    t0 = time.perf_counter()
    cut = {}  # cumulative thresholds of MIX over a per-row random number
    acc = 0.0
    for name, share in MIX.items():
        acc += share
        cut[name] = acc
    psql(url, f"""
        INSERT INTO videos (id, source, source_id, url, title, duration_s, language, state, info, created_at, updated_at)
        SELECT 'v' || lpad(i::text, 9, '0'), 'youtube', 'yt' || lpad(i::text, 9, '0'),
               'https://www.youtube.com/watch?v=yt' || i, 'how to cook dish ' || i, 300 + (i % 600), 'en',
               'features:done', '{{"categories": ["Food and Entertaining"]}}'::json, now(), now()
        FROM generate_series({start}, {stop - 1}) AS i;
        INSERT INTO stage_runs (video_id, stage, status, fingerprint, artifacts, outcome, error_type, error_message,
                                retryable, attempts, claimed_by, claim_token, lease_expires_at, started_at, finished_at)
        SELECT 'v' || lpad(i::text, 9, '0'), s.stage,
               CASE WHEN r < {cut['done']} THEN 'done' WHEN r < {cut['unavailable']} THEN 'failed'
                    WHEN r < {cut['pending']} THEN 'pending' ELSE 'running' END,
               md5(i::text || s.stage) || md5(s.stage || i::text),
               CASE WHEN r < {cut['done']} THEN json_build_object(s.artifact, json_build_object(
                   'key', 'videos/v' || lpad(i::text, 9, '0') || '/' || s.stage || '/' || s.stage || '.bin',
                   'sha256', md5(i::text) || md5(s.stage), 'size', 1000 + i % 100000)) ELSE '{{}}'::json END,
               '{{}}'::json,
               CASE WHEN r >= {cut['done']} AND r < {cut['network']} THEN 'NetworkError'
                    WHEN r >= {cut['network']} AND r < {cut['unavailable']} THEN 'VideoUnavailableError' END,
               CASE WHEN r >= {cut['done']} AND r < {cut['unavailable']} THEN 'synthetic failure of ' || i END,
               CASE WHEN r >= {cut['done']} AND r < {cut['network']} THEN true
                    WHEN r >= {cut['network']} AND r < {cut['unavailable']} THEN false END,
               1,
               CASE WHEN r >= {cut['pending']} THEN 'otherhost:1:1' END,
               CASE WHEN r >= {cut['pending']} THEN md5(i::text) END,
               CASE WHEN r >= {cut['pending']} THEN now() + interval '1 hour' END,
               now(), CASE WHEN r < {cut['unavailable']} THEN now() END
        FROM generate_series({start}, {stop - 1}) AS i
        CROSS JOIN (VALUES {', '.join(f"('{s}', '{a}')" for s, a in ARTIFACTS.items())}) AS s(stage, artifact)
        CROSS JOIN LATERAL (SELECT ((hashtext(i::text || s.stage)::bigint + 2147483648) % 1000000) / 1e6 AS r) AS h;
    """)
    psql(url, "VACUUM ANALYZE videos")
    psql(url, "VACUUM ANALYZE stage_runs")
    return time.perf_counter() - t0


# --- capturing and explaining the statements an operation sends ----------------------------------------------


@contextmanager
def captured(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    """The (statement, parameters) the engine sends while the block runs."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def seq_scans(engine: Any, statements: list[tuple[str, Any]]) -> list[str]:
    """Relations read by a sequential scan in the plans of `statements` (one entry per distinct statement)."""
    found: list[str] = []
    done: set[str] = set()
    with engine.connect() as conn:
        for statement, parameters in statements:
            if statement in done:
                continue
            done.add(statement)
            plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
            nodes = [plan[0]["Plan"]]
            while nodes:
                node = nodes.pop()
                nodes.extend(node.get("Plans", []))
                if node["Node Type"] == "Seq Scan":
                    found.append(f"{node['Relation Name']} ({statement.split()[0]} ... "
                                 f"{' '.join(statement.split())[:90]})")
        conn.rollback()
    return found


# --- claim workers ---------------------------------------------------------------------------------------------


def _claim_worker(url: str, items: list[tuple[str, str]], ready: Any, go: Any, out: Any) -> None:
    """Claim and complete `items` in order; report (wins, claim latencies, complete latencies)."""
    from videobert.core.settings import Settings
    from videobert.core.storage import ObjectInfo
    from videobert.db import repository as repo
    from videobert.db.engine import open_database

    db = open_database(Settings(database_url=url), migrate=False)
    db.ping()
    ready.release()
    go.wait()
    wins, claim_ms, complete_ms = [], [], []
    for vid, stage in items:
        t0 = time.perf_counter()
        got = repo.claim_stage(db, vid, stage, "f" * 64, LEASE_S)
        t1 = time.perf_counter()
        claim_ms.append((t1 - t0) * 1000)
        if isinstance(got, repo.Claim):
            repo.complete_stage(db, got, {"x": ObjectInfo(f"videos/{vid}/{stage}/x", 1, "0" * 64)})
            complete_ms.append((time.perf_counter() - t1) * 1000)
            wins.append((vid, stage))
    out.put((wins, claim_ms, complete_ms))


def claims_at(url: str, workers: int, n_items: int, tag: str) -> dict[str, Any]:
    """n_items new (video, stage) pairs claimed and completed by `workers` processes, each pair offered to two
    of them (one for a single worker); throughput and latencies, and the exactly-once check."""
    vids = [f"c{tag}w{workers}n{i:06d}" for i in range(n_items)]
    psql(url, "INSERT INTO videos (id, source, source_id, state, info, created_at, updated_at) SELECT v, 'local', v, "
              "'registered', '{}'::json, now(), now() FROM unnest(ARRAY[" + ",".join(f"'{v}'" for v in vids) + "]) v")
    pairs = [(v, "features") for v in vids]
    shards = [pairs[i::workers] for i in range(workers)]
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = []
    for w in range(workers):
        mine = shards[w] + (shards[(w + 1) % workers] if workers > 1 else [])  # own shard first, then a neighbour's
        procs.append(ctx.Process(target=_claim_worker, args=(url, mine, ready, go, out)))
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    t0 = time.perf_counter()
    go.set()
    results = [out.get() for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    wins = [w for r in results for w in r[0]]
    claim_ms = sorted(x for r in results for x in r[1])
    complete_ms = sorted(x for r in results for x in r[2])
    psql(url, "DELETE FROM videos WHERE id LIKE " + f"'c{tag}w{workers}n%'")
    return {"workers": workers, "claimed": len(wins), "unique": len(set(wins)), "offered": n_items,
            "per_s": len(wins) / wall, "wall_s": wall, "claim_p50": pct(claim_ms, 50), "claim_p99": pct(claim_ms, 99),
            "complete_p50": pct(complete_ms, 50), "complete_p99": pct(complete_ms, 99)}


# --- operations ------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile of sorted values (nearest rank)."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))]


def timed(fn: Callable[[], Any], repeats: int = REPEATS) -> list[float]:
    """Milliseconds of each of `repeats` calls, sorted."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def operations(rt: Any, size: int, rng: random.Random) -> tuple[dict[str, list[float]], list[str]]:
    """Each operation's milliseconds at this size, and the sequential scans of stage_runs their statements make."""
    from videobert.core.params import Params
    from videobert.db import repository as repo
    from videobert.ingest.plan import plan_ingest

    params = Params.model_validate({"features": {"extractor": "baseline"}})
    ids = [f"v{i:09d}" for i in rng.sample(range(size), min(PLAN_VIDEOS, size))]

    def plan() -> None:
        repo.release_dead_claims(rt.db)
        plan_ingest(rt, ids, params)

    def status() -> None:
        repo.status_counts(rt.db)
        repo.video_count(rt.db)
        repo.top_errors(rt.db, 10)

    def retry_selection() -> None:
        repo.videos_failed_with(rt.db, "NetworkError")

    def one_video() -> None:  # a worker's per-video read: one video's stage rows
        repo.stage_views(rt.db, list(STAGES), [ids[rng.randrange(len(ids))]])

    ops = {"plan of 10,000 videos": plan, "videobert status": status, "retry --error-type selection":
           retry_selection, "one video's stage rows": one_video}
    times, scans = {}, []
    for name, fn in ops.items():
        fn()  # warm: plans cached, pages in memory, as in a long-running worker
        times[name] = timed(fn, REPEATS if name != "one video's stage rows" else 200)
        with captured(rt.db.engine) as statements:
            fn()
        scans += [f"{name}: {s}" for s in seq_scans(rt.db.engine, statements) if s.startswith("stage_runs")]
    return times, scans


def claim_scans(rt: Any) -> list[str]:
    """The sequential scans of stage_runs in one claim -> complete (a new pair)."""
    from videobert.core.storage import ObjectInfo
    from videobert.db import repository as repo

    psql(rt.db.url, "INSERT INTO videos (id, source, source_id, state, info, created_at, updated_at) VALUES "
                    "('explainme', 'local', 'explainme', 'registered', '{}'::json, now(), now())")
    with captured(rt.db.engine) as statements:
        claim = repo.claim_stage(rt.db, "explainme", "features", "f" * 64, LEASE_S)
        repo.complete_stage(rt.db, claim, {"x": ObjectInfo("videos/explainme/features/x", 1, "0" * 64)})
    psql(rt.db.url, "DELETE FROM videos WHERE id = 'explainme'")
    return [f"claim -> complete: {s}" for s in seq_scans(rt.db.engine, statements) if s.startswith("stage_runs")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1200000", help="video counts, ascending")
    parser.add_argument("--claims", type=int, default=2000, help="pairs claimed at each worker count")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    quiet_env()
    from tests.conftest import create_database, destroy_cluster
    from videobert.core.runtime import get_runtime
    from videobert.core.settings import Settings
    from videobert.db.engine import open_database

    print(f"machine: {machine()}")
    cluster = start_durable_cluster()
    try:
        url = create_database(cluster)
        print(f"PostgreSQL: {cluster.run(str(cluster.bindir / 'postgres'), '--version').stdout.strip()}, fsync on")
        open_database(Settings(database_url=url), migrate=True)
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            rt = get_runtime(Settings(database_url=url, data_dir=Path(tmp)))
            rng = random.Random(0)
            report: dict[str, Any] = {"machine": machine(), "sizes": {}}
            have = 0
            for size in sizes:
                load_s = grow(url, have, size)
                have = size
                rows = size * len(STAGES)
                times, scans = operations(rt, size, rng)
                scans += claim_scans(rt)
                claims = [claims_at(url, w, args.claims, str(size)) for w in WORKERS]
                report["sizes"][size] = {"load_s": load_s, "stage_rows": rows, "ops": times, "claims": claims,
                                         "seq_scans": scans}
                print(f"\n== {size:,} videos, {rows:,} stage rows (loaded in {load_s:.0f} s)")
                for name, ms in times.items():
                    print(f"  {name:32s} p50 {pct(ms, 50):9.1f} ms   p99 {pct(ms, 99):9.1f} ms")
                for c in claims:
                    ok = "ok" if c["claimed"] == c["unique"] == c["offered"] else "CLAIMED TWICE OR LOST"
                    print(f"  claim->complete, {c['workers']:2d} workers: {c['per_s']:6.0f}/s  claim p50 "
                          f"{c['claim_p50']:.1f} p99 {c['claim_p99']:.1f} ms, complete p50 {c['complete_p50']:.1f} "
                          f"p99 {c['complete_p99']:.1f} ms, {c['claimed']}/{c['offered']} claimed once: {ok}")
                print("  sequential scans of stage_runs: " + ("; ".join(scans) if scans else "none"))
        first, last = report["sizes"][sizes[0]], report["sizes"][sizes[-1]]
        print(f"\nratio {sizes[-1]:,} / {sizes[0]:,} videos (goal <= 1.5x for per-video operations):")
        for name in first["ops"]:
            print(f"  {name:32s} {statistics.median(last['ops'][name]) / statistics.median(first['ops'][name]):5.2f}x")
        for a, b in zip(first["claims"], last["claims"], strict=True):
            print(f"  claim p50, {a['workers']:2d} workers          {b['claim_p50'] / a['claim_p50']:5.2f}x   "
                  f"throughput {b['per_s'] / a['per_s']:5.2f}x")
        du = cluster.run("du", "-sb", str(cluster.datadir)).stdout.split()[0]
        print(f"database folder: {int(du) / 2**30:.2f} GiB at {sizes[-1]:,} videos")
        if args.json:
            args.json.write_text(json.dumps(report, indent=1, default=str))
    finally:
        destroy_cluster(cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())
