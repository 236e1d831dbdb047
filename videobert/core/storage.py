"""The artifact store: the only module that talks to it and the only one that builds object keys.

Two backends behind one interface (`ArtifactStore`):

* `LocalStore` — a folder (the embedded default). Objects are files; each has a sidecar record of its size
  and sha256 under `.meta/`. Writes go to `.tmp/` and are renamed into place, so no reader ever sees a
  partial object.
* `MinioStore` — a bucket on MinIO or any S3-protocol server, through the `minio` SDK. S3 makes an object
  visible only once its upload completes; the sha256 travels as user metadata (`x-amz-meta-sha256`).

Keys are built only by the `keys` helpers below, from validated ids, so `../`, absolute paths, NUL bytes,
slashes and shell characters never reach a path or a request.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from videobert.core.errors import (
    IntegrityError,
    InvalidIdError,
    ObjectNotFoundError,
    StoreConfigError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)
from videobert.core.ids import validate_key_part, validate_name, validate_video_id

if TYPE_CHECKING:
    from videobert.core.settings import Settings

CHUNK_BYTES = 1 << 20  # read/hash granularity
SHA256_META = "sha256"


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows of one object."""

    key: str
    size: int  # bytes
    sha256: str  # hex digest of the content


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return (sha256 hex, size in bytes) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- keys --------------------------------------------------------------------------------------------


def install_folder(dest: Path, fill: Callable[[Path], None], complete: Callable[[Path], bool]) -> None:
    """Make `dest` by calling `fill` on a temporary sibling folder of this process's own, then renaming it
    into place. Several processes (the ranks of one torchrun, two workers on one cache) may install the same
    folder at once: each fills its own sibling, the first rename wins and the others drop their copy, so no
    process reads a folder that another is writing or deleting. A `dest` that is not `complete` (left by a
    killed process) is moved aside first; a complete one is kept and nothing is fetched."""
    if complete(dest):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex}.partial")
    try:
        fill(tmp)
        if complete(dest):  # another process installed it meanwhile
            return
        if dest.exists():
            stale = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.stale")
            with contextlib.suppress(OSError):
                dest.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:
            if not complete(dest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class keys:  # noqa: N801 - a namespace of key builders, used as `keys.video_artifact(...)`
    """Builders of every object key the project uses. Each part is validated before it is joined."""

    @staticmethod
    def video_artifact(video_id: str, stage: str, name: str) -> str:
        """Key of a per-video stage output, e.g. `videos/<id>/download/source.mp4`."""
        return "/".join(
            ("videos", validate_video_id(video_id), validate_name(stage, "stage"), validate_name(name, "object name"))
        )

    @staticmethod
    def video_prefix(video_id: str) -> str:
        """Prefix of every object of one video."""
        return f"videos/{validate_video_id(video_id)}/"

    @staticmethod
    def dataset_artifact(kind: str, version: str, name: str) -> str:
        """Key of a dataset-level output (codebook, corpus, checkpoint) identified by a content hash."""
        return "/".join(
            (validate_name(kind, "dataset kind"), validate_name(version, "version"), validate_name(name, "object name"))
        )

    @staticmethod
    def dataset_prefix(kind: str, version: str) -> str:
        """Prefix of every object of one dataset-level output, e.g. `codebooks/<hash>/`."""
        return f"{validate_name(kind, 'dataset kind')}/{validate_name(version, 'version')}/"

    @staticmethod
    def check(key: str) -> str:
        """Validate a key that came back from the database or a listing before using it."""
        if not isinstance(key, str) or not key:
            raise InvalidIdError(f"object key {key!r} is empty or not a string")
        for part in key.split("/"):
            if part == "":
                raise InvalidIdError(f"object key {key!r} has an empty part (leading, trailing or double '/')")
            validate_key_part(part)
        return key


# --- interface ------------------------------------------------------------------------------------------


class ArtifactStore(ABC):
    """Put, get, stat, list and delete objects by key; every object carries its sha256."""

    @abstractmethod
    def describe(self) -> str:
        """Human-readable location of the store (folder path or endpoint/bucket)."""

    @abstractmethod
    def check(self) -> None:
        """Verify the store is reachable and usable; raise StoreUnavailableError or StoreConfigError."""

    @abstractmethod
    def put_file(self, key: str, path: str | os.PathLike[str], content_type: str | None = None) -> ObjectInfo:
        """Store the file at `path` under `key`, atomically; return its size and sha256."""

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Store `data` under `key`, atomically."""
        with tempfile.NamedTemporaryFile(prefix="videobert-put-", delete=False) as tmp:
            tmp.write(data)
        try:
            return self.put_file(key, tmp.name, content_type)
        finally:
            os.unlink(tmp.name)

    def put_json(self, key: str, value: object) -> ObjectInfo:
        """Store `value` as UTF-8 JSON (sorted keys, so equal values give equal hashes)."""
        data = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        return self.put_bytes(key, data, "application/json")

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and sha256 of the object; ObjectNotFoundError when there is none."""

    def exists(self, key: str) -> bool:
        """True when an object is stored under `key`."""
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    @abstractmethod
    def _open(self, key: str) -> IO[bytes]:
        """A readable binary stream of the object's content."""

    @abstractmethod
    def _recorded_sha256(self, key: str) -> str | None:
        """The sha256 recorded when the object was written (None when it was written by someone else)."""

    def _check_digest(self, key: str, actual: str) -> None:
        expected = self._recorded_sha256(key)
        if expected is not None and actual != expected:
            raise IntegrityError(
                f"object {key} in {self.describe()} is corrupt: its content has sha256 {actual}, "
                f"but {expected} was recorded when it was written"
            )

    def get_bytes(self, key: str, verify: bool = False) -> bytes:
        """The object's content; with `verify`, checked against the sha256 recorded at write time."""
        with self._open(key) as fh:
            data = fh.read()
        if verify:
            self._check_digest(key, hashlib.sha256(data).hexdigest())
        return data

    def get_json(self, key: str, verify: bool = False) -> object:
        """The object's content parsed as JSON."""
        return json.loads(self.get_bytes(key, verify=verify))

    def get_file(self, key: str, dest: str | os.PathLike[str], verify: bool = False) -> ObjectInfo:
        """Copy the object to `dest` (written to a temporary name, then renamed); return its info."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        size = 0
        try:
            with self._open(key) as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if verify:
                self._check_digest(key, digest.hexdigest())
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return ObjectInfo(key, size, digest.hexdigest())

    @contextlib.contextmanager
    def local_path(self, key: str, verify: bool = False) -> Iterator[Path]:
        """A local file holding the object for the duration of the block (a temporary copy if remote)."""
        with tempfile.TemporaryDirectory(prefix="videobert-get-") as tmp:
            dest = Path(tmp) / key.rsplit("/", 1)[-1]
            self.get_file(key, dest, verify=verify)
            yield dest

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error if it does not exist."""

    @abstractmethod
    def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A URL to read the object: presigned on MinIO, `file://` on a local folder."""

    def content_info(self, key: str) -> ObjectInfo:
        """Size and sha256 of the object's content, read and hashed as a stream: nothing recorded is trusted or
        updated (what `videobert verify` compares with the database); ObjectNotFoundError when there is none."""
        digest = hashlib.sha256()
        size = 0
        with self._open(key) as fh:
            while chunk := fh.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        return ObjectInfo(key, size, digest.hexdigest())

    def verify(self, info: ObjectInfo) -> ObjectInfo:
        """Check that the stored object still has the size and sha256 in `info` (no content read)."""
        current = self.stat(info.key)
        if (current.size, current.sha256) != (info.size, info.sha256):
            raise IntegrityError(
                f"object {info.key} changed: expected {info.size} bytes sha256 {info.sha256}, "
                f"found {current.size} bytes sha256 {current.sha256}"
            )
        return current


# --- local folder ---------------------------------------------------------------------------------------

# OS errors of a write that a later try can get past: a full disk or quota (once space is freed), an I/O error or a
# busy or interrupted call on a network or failing disk. Anything else (no permission, a read-only store) needs a
# person.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ENOMEM,
                               errno.ESTALE})


def os_store_error(what: str, exc: OSError) -> StoreError:
    """The store error for an OS error of the local store: StoreFullError and StoreUnavailableError are retryable."""
    if exc.errno in _FULL_ERRNOS:
        return StoreFullError(f"{what}: {exc} (free space, then run again)")
    if exc.errno in _TRANSIENT_ERRNOS:
        return StoreUnavailableError(f"{what}: {exc}")
    return StoreError(f"{what}: {exc}")



class LocalStore(ArtifactStore):
    """Objects as files under `root`; sha256 records under `root/.meta`; writes through `root/.tmp`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self._tmp = self.root / ".tmp"
        self._meta = self.root / ".meta"

    def describe(self) -> str:
        return f"local folder {self.root}"

    def check(self) -> None:
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            self._meta.mkdir(parents=True, exist_ok=True)
            probe = self._tmp / f"probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreConfigError(f"artifact folder {self.root} is not writable: {exc}") from exc

    def _path(self, key: str) -> Path:
        keys.check(key)
        return self.root.joinpath(*key.split("/"))

    def _meta_path(self, key: str) -> Path:
        return self._meta.joinpath(*key.split("/")).with_name(key.rsplit("/", 1)[-1] + ".json")

    def _write_meta(self, key: str, path: Path, sha256: str) -> ObjectInfo:
        st = path.stat()
        record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
        meta = self._meta_path(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"meta-{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, meta)
        return ObjectInfo(key, st.st_size, sha256)

    def put_file(self, key: str, path: str | os.PathLike[str], content_type: str | None = None) -> ObjectInfo:
        dest = self._path(key)
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"obj-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)  # atomic on one filesystem: readers see the old or the new file
        except FileNotFoundError as exc:
            raise StoreError(f"cannot store {key}: source file {path} does not exist") from exc
        except OSError as exc:
            raise os_store_error(f"cannot store {key} in {self.root}", exc) from exc
        finally:
            tmp.unlink(missing_ok=True)
        try:
            return self._write_meta(key, dest, digest.hexdigest())
        except OSError as exc:
            raise os_store_error(f"cannot record {key} in {self.root}", exc) from exc

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {key} in {self.describe()}") from None
        try:
            record = json.loads(self._meta_path(key).read_text())
            if (record["size"], record["mtime_ns"], record["ino"]) == (st.st_size, st.st_mtime_ns, st.st_ino):
                return ObjectInfo(key, st.st_size, record["sha256"])
        except (FileNotFoundError, ValueError, KeyError):
            pass
        # The file was replaced behind our back (or its record is missing): hash it again.
        sha, _ = sha256_file(path)
        return self._write_meta(key, path, sha)

    def _recorded_sha256(self, key: str) -> str | None:
        try:
            return json.loads(self._meta_path(key).read_text())["sha256"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def _open(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {key} in {self.describe()}") from None

    @contextlib.contextmanager
    def local_path(self, key: str, verify: bool = False) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(f"no object {key} in {self.describe()}")
        if verify:
            self._check_digest(key, sha256_file(path)[0])
        yield path

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if d not in {".tmp", ".meta"}]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    found.append(key)
        return sorted(found)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        return self._path(key).as_uri()


# --- MinIO / S3 --------------------------------------------------------------------------------------


class MinioStore(ArtifactStore):
    """Objects in one bucket of a MinIO (or other S3-protocol) server."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        secure: bool = False,
        region: str | None = None,
        create_bucket: bool = True,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        retries: int = 3,
    ) -> None:
        import urllib3
        from minio import Minio

        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self.create_bucket = create_bucket
        # Our own pool: bounded retries and timeouts, so an unreachable server fails in seconds.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504], allowed_methods=None
            ),
            maxsize=16,
        )
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region, http_client=http
        )
        self._bucket_checked = False

    def describe(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"bucket {self.bucket} on {scheme}://{self.endpoint}"

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate SDK and network errors into the store's error types."""
        from minio.error import S3Error, ServerError
        from urllib3.exceptions import HTTPError

        try:
            yield
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}:
                raise ObjectNotFoundError(f"no object {what} in {self.describe()}") from None
            if exc.code in {"NoSuchBucket"}:
                raise StoreConfigError(f"{self.describe()}: the bucket does not exist") from None
            if exc.code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise StoreConfigError(f"{self.describe()}: access denied ({exc.code}) for {what}") from None
            raise StoreError(f"{self.describe()}: {exc.code} on {what}: {exc.message}") from None
        except ServerError as exc:
            raise StoreUnavailableError(f"{self.describe()}: server error {exc.status_code} on {what}") from None
        except (HTTPError, ConnectionError, TimeoutError) as exc:
            raise StoreUnavailableError(f"cannot reach {self.describe()} ({what}): {exc}") from None

    def check(self) -> None:
        with self._errors("bucket check"):
            if not self.client.bucket_exists(bucket_name=self.bucket):
                if not self.create_bucket:
                    raise StoreConfigError(
                        f"{self.describe()}: the bucket does not exist (and VIDEOBERT_MINIO_CREATE_BUCKET=false)"
                    )
                self.client.make_bucket(bucket_name=self.bucket)
        self._bucket_checked = True

    def _require_bucket(self) -> None:
        """StoreConfigError when the bucket does not exist (now: it may have been removed since `check`)."""
        with self._errors("bucket check"):
            exists = self.client.bucket_exists(bucket_name=self.bucket)
        if not exists:
            raise StoreConfigError(f"{self.describe()}: the bucket does not exist")

    def _ensure_bucket(self) -> None:
        if not self._bucket_checked:
            self.check()

    def put_file(self, key: str, path: str | os.PathLike[str], content_type: str | None = None) -> ObjectInfo:
        keys.check(key)
        self._ensure_bucket()
        try:
            sha, size = sha256_file(path)
        except FileNotFoundError as exc:
            raise StoreError(f"cannot store {key}: source file {path} does not exist") from exc
        with self._errors(key):
            self.client.fput_object(
                bucket_name=self.bucket,
                object_name=key,
                file_path=str(path),
                content_type=content_type or "application/octet-stream",
                metadata={SHA256_META: sha},
            )
        return ObjectInfo(key, size, sha)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        keys.check(key)
        self._ensure_bucket()
        sha = hashlib.sha256(data).hexdigest()
        with self._errors(key):
            self.client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=io.BytesIO(data),
                length=len(data),
                content_type=content_type or "application/octet-stream",
                metadata={SHA256_META: sha},
            )
        return ObjectInfo(key, len(data), sha)

    def _stat_object(self, key: str) -> tuple[int, str | None]:
        keys.check(key)
        try:
            with self._errors(key):
                obj = self.client.stat_object(bucket_name=self.bucket, object_name=key)
        except ObjectNotFoundError:
            # A HEAD response has no body, so the SDK names every 404 NoSuchKey, a missing bucket included (once it
            # knows the bucket's region: set, or cached from an earlier call). Tell the two apart.
            self._require_bucket()
            raise
        meta = {k.lower(): v for k, v in (obj.metadata or {}).items()}
        return int(obj.size or 0), meta.get(f"x-amz-meta-{SHA256_META}") or meta.get(SHA256_META)

    def _recorded_sha256(self, key: str) -> str | None:
        return self._stat_object(key)[1]

    def stat(self, key: str) -> ObjectInfo:
        size, sha = self._stat_object(key)
        if not sha:
            # An object written by someone else (no sha256 metadata): hash its content.
            with self._open(key) as fh:
                digest = hashlib.sha256()
                while chunk := fh.read(CHUNK_BYTES):
                    digest.update(chunk)
            sha = digest.hexdigest()
        return ObjectInfo(key, size, sha)

    def _open(self, key: str) -> IO[bytes]:
        keys.check(key)
        with self._errors(key):
            response = self.client.get_object(bucket_name=self.bucket, object_name=key)
        return _ResponseStream(response)

    def list(self, prefix: str = "") -> list[str]:
        with self._errors(f"list {prefix!r}"):
            return sorted(
                o.object_name
                for o in self.client.list_objects(bucket_name=self.bucket, prefix=prefix, recursive=True)
                if o.object_name and not o.is_dir
            )

    def delete(self, key: str) -> None:
        keys.check(key)
        with self._errors(key):
            self.client.remove_object(bucket_name=self.bucket, object_name=key)

    def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        keys.check(key)
        with self._errors(key):
            return self.client.presigned_get_object(bucket_name=self.bucket, object_name=key, expires=expires)


class _ResponseStream(io.RawIOBase):
    """A urllib3 response as a closable binary stream that releases its connection."""

    def __init__(self, response: object) -> None:
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        from urllib3.exceptions import HTTPError

        try:
            data = self._response.read(len(buffer))  # type: ignore[attr-defined]
        except (HTTPError, ConnectionError, TimeoutError) as exc:
            raise StoreUnavailableError(f"connection lost while reading an object: {exc}") from None
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(CHUNK_BYTES):
                chunks.append(chunk)
            return b"".join(chunks)
        return super().read(size) or b""

    def close(self) -> None:
        if not self.closed:
            self._response.close()  # type: ignore[attr-defined]
            self._response.release_conn()  # type: ignore[attr-defined]
        super().close()


def open_store(settings: Settings, check: bool = True) -> ArtifactStore:
    """The artifact store the settings describe; with `check`, fail now if it is unusable."""
    store: ArtifactStore
    if settings.store == "minio":
        assert settings.minio_endpoint and settings.minio_access_key and settings.minio_secret_key
        store = MinioStore(
            endpoint=settings.minio_endpoint,
            bucket=settings.minio_bucket,
            access_key=settings.minio_access_key,
            secret_key=settings.minio_secret_key.get_secret_value(),
            secure=settings.minio_secure,
            region=settings.minio_region,
            create_bucket=settings.minio_create_bucket,
        )
    else:
        store = LocalStore(settings.resolved_store_dir)
    if check:
        store.check()
    return store


__all__ = [
    "ArtifactStore",
    "LocalStore",
    "MinioStore",
    "ObjectInfo",
    "keys",
    "open_store",
    "sha256_file",
]
