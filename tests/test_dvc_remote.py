"""The DVC remote on the S3-protocol store: set from the VIDEOBERT_MINIO_* settings, real `dvc push` / `dvc pull`,
on moto and on SeaweedFS (which checks the keys DVC signs with)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import S3Server
from videobert.core.errors import SettingsError
from videobert.core.settings import load_settings
from videobert.dataset.dvc_remote import configure_remote


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_push_then_pull_into_a_fresh_copy(tmp_path: Path, s3_server: S3Server) -> None:
    store = s3_server.store()  # a new bucket name, not created yet: `dataset remote` creates it (the first push needs it)
    bucket, secret = store.bucket, s3_server.secret_key
    assert not store.client.bucket_exists(bucket)
    settings = load_settings(env_file=None, store="minio", minio_endpoint=s3_server.endpoint, minio_bucket=bucket,
                             minio_access_key=s3_server.access_key, minio_secret_key=secret,
                             data_dir=tmp_path / "data")
    first = tmp_path / "first"
    (first / "dataset").mkdir(parents=True)
    assert _dvc(first, "init", "--no-scm", "-q").returncode == 0
    url = configure_remote(settings, first)
    assert url == f"s3://{bucket}/dvc" and store.client.bucket_exists(bucket)
    assert secret not in (first / ".dvc" / "config").read_text()  # keys stay in config.local
    assert secret in (first / ".dvc" / "config.local").read_text()

    payload = os.urandom(300_000)
    (first / "dataset" / "corpus.bin").write_bytes(payload)
    assert _dvc(first, "add", "dataset/corpus.bin").returncode == 0
    pushed = _dvc(first, "push")
    assert pushed.returncode == 0, pushed.stderr
    assert any(k.startswith("dvc/") for k in store.list("dvc/"))

    # a fresh copy of the project (what a clone holds: no cache, no data, no local config)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".dvc").mkdir()
    shutil.copy(first / ".dvc" / "config", fresh / ".dvc" / "config")
    shutil.copy(first / "dataset" / "corpus.bin.dvc", fresh / "corpus.bin.dvc")
    (fresh / "dataset").mkdir()
    shutil.move(fresh / "corpus.bin.dvc", fresh / "dataset" / "corpus.bin.dvc")
    configure_remote(settings, fresh)  # the keys, on the new machine
    pulled = _dvc(fresh, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert (fresh / "dataset" / "corpus.bin").read_bytes() == payload


def test_a_remote_needs_the_minio_store_and_a_dvc_project(tmp_path: Path) -> None:
    local = load_settings(env_file=None, data_dir=tmp_path / "data")
    with pytest.raises(SettingsError, match="VIDEOBERT_STORE=minio"):
        configure_remote(local, tmp_path)
    minio = load_settings(env_file=None, store="minio", minio_endpoint="127.0.0.1:9", minio_access_key="a",
                          minio_secret_key="b", data_dir=tmp_path / "data")
    with pytest.raises(SettingsError, match="not a DVC project"):
        configure_remote(minio, tmp_path)
