"""A full disk under the store is transient: the stage fails retryable (StoreFullError), and once space is freed the
same ingest does it (issue: it was recorded as a permanent StoreError and then skipped for good). The store lives on
a real 1 MiB tmpfs, mounted by the test (root, as on these machines; skipped where mounting is not allowed)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import run_cli
from videobert.core.errors import StoreFullError
from videobert.core.storage import LocalStore, keys


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _grow(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=16m", str(mount)], check=True)


def test_a_full_disk_is_a_retryable_store_full_error(small_disk: Path) -> None:
    store = LocalStore(small_disk / "artifacts")
    store.check()
    key = keys.video_artifact("vid1", "download", "source.mp4")
    with pytest.raises(StoreFullError, match="No space left on device") as err:
        store.put_bytes(key, b"\0" * (2 << 20))
    assert err.value.retryable
    assert not store.exists(key) and not list((small_disk / "artifacts" / ".tmp").iterdir())  # nothing half-written
    _grow(small_disk)
    assert store.put_bytes(key, b"\0" * (2 << 20)).size == 2 << 20


@pytest.mark.slow
def test_ingest_onto_a_full_disk_fails_retryable_and_runs_once_space_is_freed(small_disk: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "3",
                    "-c:v", "libx264", "-b:v", "6M", "-pix_fmt", "yuv420p", str(videos / "big.mp4")], check=True)
    assert (videos / "big.mp4").stat().st_size > 1 << 20  # bigger than the disk
    env = {"VIDEOBERT_DATA_DIR": str(tmp_path / "data"), "VIDEOBERT_STORE_DIR": str(small_disk / "artifacts")}
    (tmp_path / "params.yaml").write_text("features:\n  extractor: baseline\n")
    r = run_cli("ingest", "--local", "videos", "--stage", "download", "--quiet", cwd=tmp_path, env=env)
    assert "StoreFullError" in r.stdout + r.stderr, r.stdout + r.stderr
    from videobert.db import repository as repo
    from videobert.db.engine import Database

    db = Database(f"sqlite:///{tmp_path / 'data' / 'videobert.db'}")
    view = repo.stage_views(db, ["download"])[("big", "download")]
    assert (view.status, view.error_type, view.retryable) == ("failed", "StoreFullError", True)
    _grow(small_disk)
    r = run_cli("ingest", "--local", "videos", "--stage", "download", "--quiet", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failed permanently" not in r.stdout + r.stderr
    assert repo.stage_views(db, ["download"])[("big", "download")].status == "done"
    db.dispose()
