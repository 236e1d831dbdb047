"""The DVC remote of a dataset version: the S3-protocol store the pipeline already uses (MinIO), set from the same
`VIDEOBERT_MINIO_*` settings, so that `dvc push` / `dvc pull` move codebooks and corpora between machines.

The remote's URL and endpoint go into `.dvc/config` (committed with the dataset version); the access keys go into
`.dvc/config.local` (DVC keeps that file out of git), never into a committed file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from videobert.core.errors import SettingsError
from videobert.core.settings import Settings
from videobert.core.storage import open_store

DEFAULT_REMOTE = "store"
DEFAULT_PREFIX = "dvc"  # objects under s3://<bucket>/dvc/, beside the pipeline's own artifacts
DVC_TIMEOUT_S = 120


def remote_url(settings: Settings, prefix: str = DEFAULT_PREFIX) -> str:
    """`s3://<bucket>/<prefix>` of the configured MinIO bucket."""
    return f"s3://{settings.minio_bucket}/{prefix.strip('/')}"


def _dvc(repo_root: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo_root, capture_output=True, text=True,
                            timeout=DVC_TIMEOUT_S)
    if result.returncode != 0:
        raise SettingsError(f"dvc {' '.join(args[:3])} failed in {repo_root}: {result.stderr.strip() or result.stdout}")
    return result.stdout


def configure_remote(settings: Settings, repo_root: Path, name: str = DEFAULT_REMOTE,
                     prefix: str = DEFAULT_PREFIX) -> str:
    """Make `name` the default DVC remote of the DVC project at `repo_root`, on the configured S3 store; returns
    its URL. SettingsError when the store is not MinIO or the folder is not a DVC project."""
    if settings.store != "minio" or not settings.minio_endpoint:
        raise SettingsError("a DVC remote on the store needs VIDEOBERT_STORE=minio and VIDEOBERT_MINIO_ENDPOINT "
                            f"(VIDEOBERT_STORE is {settings.store!r})")
    if not (repo_root / ".dvc").is_dir():
        raise SettingsError(f"{repo_root} is not a DVC project (no .dvc folder): run `dvc init` there first")
    # The bucket must exist before the first `dvc push` (DVC does not create it: NoSuchBucket): the store's own check
    # creates it, as for every other command (VIDEOBERT_MINIO_CREATE_BUCKET), or says why it cannot.
    open_store(settings, check=True)
    url = remote_url(settings, prefix)
    scheme = "https" if settings.minio_secure else "http"
    _dvc(repo_root, "remote", "add", "--default", "--force", name, url)
    _dvc(repo_root, "remote", "modify", name, "endpointurl", f"{scheme}://{settings.minio_endpoint}")
    if settings.minio_region:
        _dvc(repo_root, "remote", "modify", name, "region", settings.minio_region)
    access = settings.minio_access_key
    secret = settings.minio_secret_key
    if access is not None:
        _dvc(repo_root, "remote", "modify", "--local", name, "access_key_id", _plain(access))
    if secret is not None:
        _dvc(repo_root, "remote", "modify", "--local", name, "secret_access_key", _plain(secret))
    return url


def _plain(value: object) -> str:
    """A setting's value, unwrapping pydantic's SecretStr."""
    getter = getattr(value, "get_secret_value", None)
    return getter() if callable(getter) else str(value)
