"""The artifact store: the same cases on a local folder, on moto's S3 server and on SeaweedFS's S3 gateway; then
what the two S3 servers do differently (missing bucket or key, wrong keys, multipart ETags, listings past 1,000)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import S3Server, free_port, s3_server_named
from videobert.core.errors import (
    IntegrityError,
    InvalidIdError,
    ObjectNotFoundError,
    StoreConfigError,
    StoreUnavailableError,
)
from videobert.core.storage import ArtifactStore, LocalStore, MinioStore, keys


@pytest.fixture(params=["local", "moto", "seaweedfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """An empty artifact store: a local folder, a bucket on moto, a bucket on SeaweedFS. (Overrides conftest's
    `store`, which the stage tests use with a local folder and moto.)"""
    s: ArtifactStore
    if request.param == "local":
        s = LocalStore(tmp_path / "artifacts")
    else:
        s = s3_server_named(request, request.param).store()
    s.check()
    return s


def test_put_get_stat_round_trip(store: ArtifactStore) -> None:
    key = keys.video_artifact("vid_1", "download", "source.mp4")
    data = os.urandom(100_000)
    info = store.put_bytes(key, data)
    assert info.key == key
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.stat(key) == info
    assert store.exists(key)
    assert store.get_bytes(key, verify=True) == data


def test_put_file_and_get_file(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(12 * 1024 * 1024 + 17))  # over one multipart part on S3
    info = store.put_file("videos/-dash_id/download/source.mp4", src)
    assert info.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    out = store.get_file(info.key, tmp_path / "sub" / "out.bin", verify=True)
    assert out == info
    assert (tmp_path / "sub" / "out.bin").read_bytes() == src.read_bytes()
    with store.local_path(info.key, verify=True) as p:
        assert p.read_bytes()[:100] == src.read_bytes()[:100]


def test_json_round_trip_is_canonical(store: ArtifactStore) -> None:
    a = store.put_json("videos/v/transcript/captions.json", {"b": 1, "a": [1, 2]})
    b = store.put_json("videos/v/transcript/captions2.json", {"a": [1, 2], "b": 1})
    assert a.sha256 == b.sha256
    assert store.get_json(a.key) == {"a": [1, 2], "b": 1}


def test_list_by_prefix_and_delete(store: ArtifactStore) -> None:
    for vid in ("a1", "a2", "b1"):
        store.put_bytes(keys.video_artifact(vid, "features", "clips.npz"), b"x")
    store.put_bytes(keys.video_artifact("a1", "download", "source.mp4"), b"y")
    assert store.list("videos/a") == [
        "videos/a1/download/source.mp4",
        "videos/a1/features/clips.npz",
        "videos/a2/features/clips.npz",
    ]
    assert store.list(keys.video_prefix("b1")) == ["videos/b1/features/clips.npz"]
    store.delete("videos/a1/features/clips.npz")
    store.delete("videos/a1/features/clips.npz")  # deleting twice is fine
    assert not store.exists("videos/a1/features/clips.npz")
    assert len(store.list("")) == 3


def test_missing_object(store: ArtifactStore) -> None:
    with pytest.raises(ObjectNotFoundError, match="no object videos/nope/x/y"):
        store.stat("videos/nope/x/y")
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes("videos/nope/x/y")
    assert not store.exists("videos/nope/x/y")


@pytest.mark.parametrize(
    "bad_id", ["../etc", "/etc/passwd", "a/b", "a\x00b", "$(touch pwned)", "x;rm -rf ~", "..", "", "a b"]
)
def test_bad_ids_are_rejected_before_anything_is_written(store: ArtifactStore, bad_id: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidIdError):
        keys.video_artifact(bad_id, "download", "source.mp4")
    if bad_id != "a/b":  # "videos/a/b/download/source.mp4" is a well-formed key; only keys.* build keys
        with pytest.raises(InvalidIdError):
            store.put_bytes(f"videos/{bad_id}/download/source.mp4", b"data")
    assert store.list("") == []
    assert not (tmp_path.parent / "etc").exists()


@pytest.mark.parametrize("bad_key", ["/abs/key", "videos//x", "videos/x/", "a/../b", "a/./b", "a\x00/b"])
def test_bad_keys_are_rejected(store: ArtifactStore, bad_key: str) -> None:
    with pytest.raises(InvalidIdError):
        store.put_bytes(bad_key, b"data")
    assert store.list("") == []


def test_readers_never_see_a_partial_object(store: ArtifactStore) -> None:
    key = "videos/v/features/big.bin"
    versions = [bytes([i]) * (3 * 1024 * 1024) for i in range(3)]
    digests = {hashlib.sha256(v).hexdigest() for v in versions}
    store.put_bytes(key, versions[0])
    stop = threading.Event()
    seen: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            store.put_bytes(key, versions[i % 3])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            seen.append(hashlib.sha256(store.get_bytes(key)).hexdigest())
    finally:
        stop.set()
        thread.join()
    assert seen and set(seen) <= digests  # every read was one whole version


def test_verify_detects_a_changed_object(store: ArtifactStore) -> None:
    info = store.put_bytes("videos/v/download/source.mp4", b"original")
    store.verify(info)
    store.put_bytes("videos/v/download/source.mp4", b"replaced")
    with pytest.raises(IntegrityError, match="changed"):
        store.verify(info)


def test_url(store: ArtifactStore) -> None:
    info = store.put_bytes("videos/v/frames/frames.bin", b"picture bytes")
    url = store.url(info.key)
    if isinstance(store, LocalStore):
        assert url.startswith("file://") and Path(url[len("file://") :]).read_bytes() == b"picture bytes"
    else:
        assert "X-Amz-Signature" in url
        assert requests.get(url, timeout=10).content == b"picture bytes"


# --- backend-specific behaviour --------------------------------------------------------------------------


def test_local_corruption_is_detected_on_verified_read(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "a")
    info = store.put_bytes("videos/v/download/source.mp4", b"A" * 1000)
    path = tmp_path / "a" / "videos" / "v" / "download" / "source.mp4"
    st = path.stat()
    with open(path, "r+b") as fh:  # flip bytes in place, keep size and mtime: bit rot
        fh.write(b"B")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert store.get_bytes(info.key) [:1] == b"B"
    with pytest.raises(IntegrityError, match="corrupt"):
        store.get_bytes(info.key, verify=True)
    with pytest.raises(IntegrityError):
        store.get_file(info.key, tmp_path / "out", verify=True)
    assert not (tmp_path / "out").exists()  # nothing half-written is left at the destination


def test_local_store_rehashes_a_file_replaced_behind_its_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "a")
    store.put_bytes("videos/v/x/y", b"one")
    (tmp_path / "a" / "videos" / "v" / "x" / "y").write_bytes(b"three")
    assert store.stat("videos/v/x/y").sha256 == hashlib.sha256(b"three").hexdigest()


def test_local_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "a")
    store.check()
    for i in range(5):
        store.put_bytes(f"videos/v/x/o{i}", b"z" * i)
    assert list((tmp_path / "a" / ".tmp").iterdir()) == []
    assert store.list("") == [f"videos/v/x/o{i}" for i in range(5)]


def test_local_store_in_an_unusable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreConfigError, match="not writable"):
        LocalStore(blocker / "store").check()


def test_s3_corrupt_metadata_is_detected(s3_server: S3Server) -> None:
    store = s3_server.store()
    store.check()
    store.client.put_object(
        bucket_name=store.bucket, object_name="videos/v/x/y", data=io.BytesIO(b"abc"), length=3,
        metadata={"sha256": "0" * 64},
    )
    with pytest.raises(IntegrityError, match="corrupt"):
        store.get_bytes("videos/v/x/y", verify=True)


def test_s3_object_written_by_someone_else_is_hashed(s3_server: S3Server) -> None:
    store = s3_server.store()
    store.check()
    store.client.put_object(bucket_name=store.bucket, object_name="videos/v/x/y", data=io.BytesIO(b"abc"), length=3)
    assert store.stat("videos/v/x/y").sha256 == hashlib.sha256(b"abc").hexdigest()
    assert store.get_bytes("videos/v/x/y", verify=True) == b"abc"


def test_s3_bucket_is_created_or_required(s3_server: S3Server) -> None:
    s3_server.store().check()
    with pytest.raises(StoreConfigError, match="does not exist"):
        s3_server.store(create_bucket=False).check()


# --- what the two S3 servers do differently ------------------------------------------------------------------


@pytest.mark.parametrize("region", [None, "us-east-1"])
def test_s3_a_bucket_removed_under_the_store_is_a_configuration_error(s3_server: S3Server, region: str | None) -> None:
    store = s3_server.store(region=region)
    store.put_bytes("videos/v/x/y", b"data")
    store.delete("videos/v/x/y")
    store.client.remove_bucket(bucket_name=store.bucket)  # someone removes the bucket the store has been using
    # Both servers answer NoSuchBucket to a GET and 404 without a body to a HEAD, which the SDK calls NoSuchKey:
    # stat and exists must still say "no bucket", not "no object".
    for call in (lambda: store.stat("videos/v/x/y"), lambda: store.exists("videos/v/x/y"),
                 lambda: store.get_bytes("videos/v/x/y"), lambda: store.list("videos/"),
                 lambda: store.delete("videos/v/x/y")):
        with pytest.raises(StoreConfigError, match="the bucket does not exist"):
            call()
    if s3_server.name == "seaweedfs" and region:
        # SeaweedFS creates a missing bucket on an upload by an admin identity (-s3.autoCreateBucket, on by
        # default). Without a region the SDK first asks for the bucket's location, which fails as on moto.
        store.put_bytes("videos/v/x/y", b"data")
        assert store.get_bytes("videos/v/x/y") == b"data"
    else:  # as S3 and MinIO do
        with pytest.raises(StoreConfigError, match="the bucket does not exist"):
            store.put_bytes("videos/v/x/y", b"data")


def test_s3_a_missing_key_is_object_not_found(s3_server: S3Server) -> None:
    store = s3_server.store(region="us-east-1")
    store.check()
    for call in (lambda: store.stat("videos/v/x/none"), lambda: store.get_bytes("videos/v/x/none"),
                 lambda: store.content_info("videos/v/x/none")):
        with pytest.raises(ObjectNotFoundError, match="no object videos/v/x/none"):
            call()
    assert not store.exists("videos/v/x/none")
    store.delete("videos/v/x/none")  # deleting what is not there is fine on both


@pytest.mark.parametrize("wrong", ["secret", "access key"])
def test_s3_wrong_credentials(s3_server: S3Server, wrong: str) -> None:
    good = s3_server.store()
    good.put_bytes("videos/v/x/y", b"data")
    access, secret = s3_server.access_key, s3_server.secret_key
    bad_secret = "not-the-secret-0123456789"
    if wrong == "secret":
        secret = bad_secret
    else:
        access = "nobody"
    bad = MinioStore(s3_server.endpoint, good.bucket, access, secret)
    if not s3_server.checks_credentials:  # moto accepts any keys: only a real server can test this
        bad.check()
        assert bad.get_bytes("videos/v/x/y") == b"data"
        return
    code = "SignatureDoesNotMatch" if wrong == "secret" else "InvalidAccessKeyId"
    for call in (bad.check, lambda: bad.get_bytes("videos/v/x/y"), lambda: bad.stat("videos/v/x/y"),
                 lambda: bad.put_bytes("videos/v/x/z", b"data"), lambda: bad.list("")):
        with pytest.raises(StoreConfigError, match=f"access denied \\({code}\\)") as caught:
            call()
        assert bad_secret not in str(caught.value)
    assert good.list("") == ["videos/v/x/y"]  # nothing was written with the wrong keys


def test_s3_multipart_etag_is_not_the_content_md5(s3_server: S3Server, tmp_path: Path) -> None:
    store = s3_server.store()
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * 1024 * 1024 + 17))  # three parts of the SDK's multipart upload
    info = store.put_file("videos/v/features/big.bin", src)
    etag = store.client.stat_object(bucket_name=store.bucket, object_name=info.key).etag
    # Both servers give a multipart object S3's ETag: the MD5 of the parts' MD5s, then "-<number of parts>", not
    # the content's MD5. Nothing in the store relies on ETags: the sha256 travels as metadata, which both keep
    # through multipart uploads.
    content = src.read_bytes()
    part = 5 * 1024 * 1024  # the SDK's part size for this length
    part_md5s = b"".join(hashlib.md5(content[i : i + part]).digest() for i in range(0, len(content), part))
    assert etag == f"{hashlib.md5(part_md5s).hexdigest()}-3" != hashlib.md5(content).hexdigest()
    assert store.stat(info.key) == info
    assert store._recorded_sha256(info.key) == info.sha256
    store.verify(info)
    assert store.get_bytes(info.key, verify=True) == src.read_bytes()


def test_s3_list_past_one_page_of_1000_keys(s3_server: S3Server) -> None:
    store = s3_server.store()
    store.check()
    names = [keys.video_artifact("v", "frames", f"f{i:05d}.jpg") for i in range(1_001)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.put_bytes(k, b""), names))
    store.put_bytes(keys.video_artifact("w", "frames", "f00000.jpg"), b"")  # outside the prefix

    pages = []
    http = store.client._http  # count the listing requests: the server must really have split the listing
    urlopen = http.urlopen

    def counting(method: str, url: str, *args: object, **kwargs: object) -> object:
        if method == "GET" and "list-type=2" in url:
            pages.append(url)
        return urlopen(method, url, *args, **kwargs)

    http.urlopen = counting
    assert store.list("videos/v/") == names  # every key once, in order, across pages
    assert len(pages) == 2  # each server pages at 1,000 keys, and the store follows the continuation token
    assert len(store.list("")) == 1_002


def test_unreachable_s3_server_gives_a_clear_error_quickly() -> None:
    port = free_port()  # nothing listens there
    store = MinioStore(f"127.0.0.1:{port}", "videobert", "k", "s", retries=1, connect_timeout_s=1)
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=f"cannot reach bucket videobert on http://127.0.0.1:{port}"):
        store.check()
    with pytest.raises(StoreUnavailableError):
        store.put_bytes("videos/v/x/y", b"data")
    assert time.monotonic() - t0 < 20


def test_install_folder_by_several_workers_at_once_never_shows_a_half_folder(tmp_path: Path) -> None:
    """The ranks of one torchrun fetch the same corpus into one cache at once (CI once saw one rank delete the
    other's half-written folder): each fills its own folder, one wins, every caller sees a complete one."""
    from videobert.core.storage import install_folder

    dest = tmp_path / "cache" / "corpus"
    seen: list[list[str]] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def fill(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        for i in range(5):
            (tmp / f"shard-{i}").write_text(str(i))
            time.sleep(0.01)
        (tmp / "done").write_text("")

    def worker() -> None:
        try:
            gate.wait()
            install_folder(dest, fill, complete=lambda f: (f / "done").exists())
            seen.append(sorted(p.name for p in dest.iterdir()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert seen == [["done", *(f"shard-{i}" for i in range(5))]] * 4
    assert sorted(p.name for p in dest.parent.iterdir()) == ["corpus"]  # no temporary folder left

    # a folder left incomplete by a killed process is replaced; a complete one is kept as it is
    (dest / "done").unlink()
    install_folder(dest, fill, complete=lambda f: (f / "done").exists())
    assert (dest / "done").exists()
    install_folder(dest, lambda tmp: pytest.fail("a complete folder is fetched again"),
                   complete=lambda f: (f / "done").exists())
