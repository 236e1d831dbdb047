"""A flow process killed with SIGKILL mid-run, then run again: it completes with nothing lost or doubled."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

from tests.conftest import Project
from tests.helpers.httpserver import LocalHTTPServer, Route
from tests.helpers.media import make_video
from videobert.core.storage import ObjectInfo
from videobert.db import repository as repo


def _cli(project: Project, api: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PREFECT_API_URL": api, "VIDEOBERT_DATA_DIR": str(project.data), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "videobert_cli.cli", *args], cwd=project.root, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _rows(project: Project) -> list[tuple[str, str, str]]:
    """The stage rows as another client sees them while the flow runs (SQLite: the file may not exist yet)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    if not project.production and not (project.data / "videobert.db").exists():
        return []
    engine = create_engine(project.database_url, connect_args={} if project.production else {"timeout": 5})
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT video_id, stage, status FROM stage_runs"))]
    except (OperationalError, ProgrammingError):  # not created yet, or locked
        return []
    finally:
        engine.dispose()


def test_sigkill_mid_run_then_rerun_completes(project_any: Project, prefect_api: str) -> None:
    project = project_any  # SQLite + a local folder, and PostgreSQL + the S3-protocol server
    payloads = {f"/v{i}.mp4": make_video(project.root / f"v{i}.mp4", seconds=2 + i, size="640x360").read_bytes()
                for i in range(4)}
    server = LocalHTTPServer().start()
    for path, body in payloads.items():
        server.routes[path] = Route(body, bytes_per_second=max(len(body) // 3, 1))  # about 3 s each
    ids = project.root / "ids.txt"
    ids.write_text("".join(server.url(p) + "\n" for p in payloads))
    try:
        project.write_params("features:\n  extractor: baseline\n")
        proc = _cli(project, prefect_api, "ingest", "--ids", str(ids), "--concurrency", "2", "--quiet")
        deadline = time.monotonic() + 120
        while not any(status == "running" and stage == "download" for _, stage, status in _rows(project)):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the run never started a download"
            time.sleep(0.2)
        time.sleep(1.0)  # mid-transfer
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed_rows = _rows(project)
        assert any(status == "running" for _, _, status in killed_rows)  # it really died mid-stage
        assert not any(status == "done" and stage == "download" for _, stage, status in killed_rows)

        for route in server.routes.values():
            route.bytes_per_second = None
        again = _cli(project, prefect_api, "ingest", "--ids", str(ids), "--quiet")
        out, _ = again.communicate(timeout=300)
        assert again.returncode == 0, out
    finally:
        server.stop()

    rows = _rows(project)
    assert len(rows) == 16 and len(set((v, s) for v, s, _ in rows)) == 16  # no duplicate rows
    assert {status for _, _, status in rows} == {"done"}  # none left running
    rt = project.runtime()
    views = repo.stage_views(rt.db, ["download"])
    for (vid, _), view in views.items():
        info = view.artifact("video")
        rt.store.verify(info)  # the recorded size and sha256 match what is stored
        url = repo.get_video(rt.db, vid).url
        expected = payloads["/" + url.rsplit("/", 1)[1]]
        assert info == ObjectInfo(info.key, len(expected), hashlib.sha256(expected).hexdigest())
    if not project.production:  # on S3 an unfinished upload is never an object: the listing below says it all
        assert list((project.data / "artifacts" / ".tmp").iterdir()) == []  # no partial objects
    assert list((project.data / "tmp").iterdir()) == []  # the dead run's scratch files were cleaned
    assert sorted(k.rsplit("/", 1)[1] for k in rt.store.list("videos/")) == sorted(
        ["source.mp4", "captions.json", "sentences.json", "features.npz", "frames.zip"] * 4
    )
