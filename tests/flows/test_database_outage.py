"""PostgreSQL stopped in the middle of an ingest: the run stops within about a minute, says why in one line and
exits 1 (it retried for minutes and exited 0 before); once the database is back, the same command finishes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import create_database, destroy_cluster, start_cluster
from tests.helpers.media import make_video
from tests.test_cli import run_cli
from videobert.db import repository as repo
from videobert.db.engine import Database

pytestmark = pytest.mark.slow
VIDEOS = 12
STOPS_WITHIN_S = 90  # the goal: about a minute after the database went away (a loaded machine: margin)


def test_a_database_that_goes_away_mid_ingest_stops_the_run(tmp_path: Path) -> None:
    cluster = start_cluster()  # its own cluster: the suite's one stays up for the other tests
    try:
        url = create_database(cluster)
        env = {"VIDEOBERT_DATA_DIR": str(tmp_path / "data"), "VIDEOBERT_DATABASE_URL": url, "COLUMNS": "200"}
        assert run_cli("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
        for i in range(VIDEOS):
            make_video(tmp_path / "videos" / f"v{i:02d}.mp4", seconds=4)
        (tmp_path / "params.yaml").write_text("features:\n  extractor: baseline\n")
        import os

        proc = subprocess.Popen([sys.executable, "-m", "videobert_cli.cli", "ingest", "--local", "videos",
                                 "--concurrency", "2", "--quiet"], cwd=tmp_path, env={**os.environ, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        db = Database(url)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and proc.poll() is None:  # some stages done: the run is under way
                views = repo.stage_views(db, ["download", "features"])
                if sum(v.status == "done" for v in views.values()) >= 2:
                    break
                time.sleep(0.2)
            assert proc.poll() is None, "the ingest finished before the database could be stopped"
            db.dispose()
            cluster.stop("immediate")
            stopped_at = time.monotonic()
            out, err = proc.communicate(timeout=300)
            took = time.monotonic() - stopped_at
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 1, (proc.returncode, out[-2000:], err[-2000:])
        errors = [line for line in err.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and "DatabaseUnavailableError" in errors[0] and "the run stopped" in errors[0], err
        print(f"stopped {took:.1f} s after the database went away")
        assert took < STOPS_WITHIN_S, f"{took:.0f} s after the database went away"
        # the database is back: the same command finishes every video
        cluster.start()
        r = run_cli("ingest", "--local", "videos", "--concurrency", "2", "--quiet", cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        views = repo.stage_views(db, ["download", "transcript", "punctuate", "features"])
        assert len(views) == 4 * VIDEOS and all(v.status == "done" for v in views.values()), sorted(
            (k, v.status, v.error_type) for k, v in views.items() if v.status != "done")
        db.dispose()
    finally:
        destroy_cluster(cluster)
