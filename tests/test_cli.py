"""The `videobert` command line, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port
from videobert.db import repository as repo
from videobert.db.engine import Database


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "videobert_cli.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def test_db_upgrade_and_status_on_postgres(tmp_path: Path, pg_url: str) -> None:
    env = {"VIDEOBERT_DATABASE_URL": pg_url}
    r = run_cli("status", cwd=tmp_path, env=env)
    assert r.returncode == 1 and "videobert db upgrade" in r.stderr
    r = run_cli("db", "upgrade", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert f"schema empty -> {Database(pg_url).head_revision()}" in r.stdout
    db = Database(pg_url)
    repo.register_videos(db, [repo.NewVideo(v, "youtube", v) for v in ("a", "b", "c")])
    repo.complete_stage(db, repo.claim_stage(db, "a", "download", "fp", 60), {})
    for v in ("b", "c"):
        repo.fail_stage(db, repo.claim_stage(db, v, "download", "fp", 60), "VideoUnavailable", "Private video", False)
    r = run_cli("status", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "3 videos" in r.stdout
    line = next(line for line in r.stdout.splitlines() if "download" in line and "│" in line)
    assert [c.strip() for c in line.split("│")[1:-1]] == ["download", "0", "0", "1", "2", "3"]
    assert "VideoUnavailable" in r.stdout and "Private video" in r.stdout


def test_bad_setting_stops_at_start(tmp_path: Path) -> None:
    r = run_cli("status", cwd=tmp_path, env={"VIDEOBERT_STORE": "ftp"})
    assert r.returncode == 2
    assert "VIDEOBERT_STORE='ftp'" in r.stderr


def test_unreachable_database(tmp_path: Path) -> None:
    port = free_port()
    r = run_cli("status", cwd=tmp_path, env={"VIDEOBERT_DATABASE_URL": f"postgresql://vb:pw123@127.0.0.1:{port}/x"})
    assert r.returncode == 1
    assert "DatabaseUnavailableError" in r.stderr and f"127.0.0.1:{port}" in r.stderr and "pw123" not in r.stderr


def test_config_masks_secrets(tmp_path: Path) -> None:
    env = {
        "VIDEOBERT_STORE": "minio",
        "VIDEOBERT_MINIO_ENDPOINT": "127.0.0.1:9000",
        "VIDEOBERT_MINIO_ACCESS_KEY": "ak",
        "VIDEOBERT_MINIO_SECRET_KEY": "topsecret",
    }
    r = run_cli("config", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "topsecret" not in r.stdout and "***" in r.stdout
