"""A production S3 server that dies in the middle of a stage's upload (SeaweedFS's S3 gateway, killed between two
parts of a multipart upload, then started again on the same port): the stage is not done, no half-written object
is visible, and a plain re-run completes."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from tests.conftest import new_bucket_name
from tests.helpers.seaweedfs import S3Gateway, SeaweedFS
from videobert.core.stages import StageOutput, StageSpec, execute_stage
from videobert.core.storage import MinioStore, keys
from videobert.db import repository as repo
from videobert.db.engine import Database

SPEC = StageSpec("features", "1")
LEASE = 600.0
BIG_BYTES = 12 * 1024 * 1024 + 17  # three parts of the SDK's multipart upload (5 MiB each)


def _pending_uploads(gateway: S3Gateway, bucket: str) -> list[str]:
    """Keys of the bucket's multipart uploads started and neither completed nor aborted."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=f"http://{gateway.endpoint}", region_name="us-east-1",
                      aws_access_key_id=gateway.access_key, aws_secret_access_key=gateway.secret_key)
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # the production pair: PostgreSQL + an S3 server
def test_s3_process_killed_mid_upload_then_restarted(db: Database, seaweedfs_cluster: SeaweedFS,
                                                     tmp_path: Path) -> None:
    repo.register_videos(db, [repo.NewVideo("vid1", "local", "/x/vid1.mp4")])
    gateway = seaweedfs_cluster.gateway()  # this test's own S3 process, in front of the suite's filer
    try:
        _kill_mid_upload_then_restart(db, gateway, tmp_path)
    finally:
        gateway.stop()


def _kill_mid_upload_then_restart(db: Database, gateway: S3Gateway, tmp_path: Path) -> None:
    store = MinioStore(gateway.endpoint, new_bucket_name(), gateway.access_key, gateway.secret_key, retries=0,
                       connect_timeout_s=1)
    store.check()
    small_key = keys.video_artifact("vid1", SPEC.name, "meta.json")
    big_key = keys.video_artifact("vid1", SPEC.name, "clips.bin")
    big = tmp_path / "clips.bin"
    big.write_bytes(os.urandom(BIG_BYTES))

    # Kill the S3 process once the first part of the big object has been stored: the upload is under way on the
    # server (started, one part in), and can be neither finished nor aborted.
    killed = threading.Event()
    lock = threading.Lock()
    http = store.client._http
    urlopen = http.urlopen

    def kill_after_first_part(method: str, url: str, *args: object, **kwargs: object) -> object:
        response = urlopen(method, url, *args, **kwargs)
        if method == "PUT" and "partNumber=" in url:
            with lock:
                if not killed.is_set():
                    gateway.kill()
                    killed.set()
        return response

    http.urlopen = kill_after_first_part

    def body(claim: repo.Claim) -> StageOutput:
        small = store.put_json(small_key, {"clips": 3})
        return StageOutput({"meta": small, "clips": store.put_file(big_key, big)})

    r = execute_stage(db, store, "vid1", SPEC, "fp", body, LEASE)
    assert killed.is_set()
    assert (r.status, r.reason, r.retryable) == ("failed", "StoreUnavailableError", True)
    view = repo.stage_views(db, [SPEC.name])[("vid1", SPEC.name)]
    assert (view.status, view.retryable, view.artifacts) == ("failed", True, {})  # not done, nothing recorded

    http.urlopen = urlopen
    gateway.start()  # the same process command on the same port, the filer's data kept
    assert gateway.starts == 2
    store.check()
    # The object written before the crash is there, whole; the one being uploaded is not there at all, though its
    # started upload (with its first part) is still held by the server, out of sight of GET and LIST.
    assert store.list("") == [small_key]
    assert store.get_json(small_key, verify=True) == {"clips": 3}
    assert not store.exists(big_key)
    assert _pending_uploads(gateway, store.bucket) == [big_key]

    again = execute_stage(db, store, "vid1", SPEC, "fp", body, LEASE)  # a plain re-run
    assert again.status == "done"
    view = repo.stage_views(db, [SPEC.name])[("vid1", SPEC.name)]
    assert view.status == "done" and set(view.artifacts) == {"meta", "clips"}
    assert view.artifact("clips").sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    store.verify(view.artifact("clips"))
    assert store.get_bytes(big_key, verify=True) == big.read_bytes()
    assert store.list("") == [big_key, small_key]
