from pathlib import Path

import pytest

from videobert.core.errors import SettingsError
from videobert.core.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_embedded_defaults(tmp_path: Path) -> None:
    s = load_settings()
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'videobert.db'}"
    assert s.resolved_store_dir == tmp_path / "data" / "artifacts"


def test_environment_and_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("VIDEOBERT_DATA_DIR=/srv/vb\nVIDEOBERT_MINIO_BUCKET=from-file\n")
    monkeypatch.setenv("VIDEOBERT_MINIO_BUCKET", "from-env")
    s = load_settings()
    assert s.data_dir == Path("/srv/vb")
    assert s.minio_bucket == "from-env"  # the environment wins over .env


def test_postgres_url_gets_the_installed_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOBERT_DATABASE_URL", "postgresql://vb:pw@db.example:5432/videobert")
    assert load_settings().resolved_database_url == "postgresql+psycopg://vb:pw@db.example:5432/videobert"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("VIDEOBERT_DATABASE_URL", "mysql://u@h/db", "VIDEOBERT_DATABASE_URL='mysql://u@h/db': unsupported database"),
        ("VIDEOBERT_DATABASE_URL", "not a url", "VIDEOBERT_DATABASE_URL='not a url'"),
        ("VIDEOBERT_STORE", "s3", "VIDEOBERT_STORE='s3'"),
        ("VIDEOBERT_MINIO_ENDPOINT", "https://minio:9000", "without a scheme"),
        ("VIDEOBERT_MINIO_ENDPOINT", "minio:99999", "port '99999'"),
        ("VIDEOBERT_MINIO_BUCKET", "Bad_Bucket", "VIDEOBERT_MINIO_BUCKET='Bad_Bucket'"),
        ("VIDEOBERT_PREFECT_API_URL", "localhost:4200", "VIDEOBERT_PREFECT_API_URL='localhost:4200'"),
        ("VIDEOBERT_CLAIM_LEASE_S", "-1", "VIDEOBERT_CLAIM_LEASE_S='-1'"),
        ("VIDEOBERT_MINIO_SECURE", "maybe", "VIDEOBERT_MINIO_SECURE='maybe'"),
    ],
)
def test_wrong_setting_names_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert expected in str(err.value)


def test_unknown_variable_gets_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOBERT_DATABSE_URL", "sqlite:///x.db")
    with pytest.raises(SettingsError, match="did you mean VIDEOBERT_DATABASE_URL"):
        load_settings()


def test_minio_needs_its_credentials_and_never_prints_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOBERT_STORE", "minio")
    monkeypatch.setenv("VIDEOBERT_MINIO_ENDPOINT", "127.0.0.1:9000")
    monkeypatch.setenv("VIDEOBERT_MINIO_SECRET_KEY", "s3cr3t-value")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "VIDEOBERT_MINIO_ACCESS_KEY" in str(err.value)
    assert "s3cr3t-value" not in str(err.value)
    monkeypatch.setenv("VIDEOBERT_MINIO_ACCESS_KEY", "ak")
    s = load_settings()
    dump = s.safe_dump()
    assert dump["VIDEOBERT_MINIO_SECRET_KEY"] == "***"
    assert "s3cr3t-value" not in repr(s) and "s3cr3t-value" not in str(dump)


def test_database_password_is_masked_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOBERT_DATABASE_URL", "postgresql+psycopg2://vb:hunter2@db/videobert")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "psycopg2" in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("var", ["VIDEOBERT_DATA_DIR", "VIDEOBERT_STORE_DIR", "VIDEOBERT_TFHUB_CACHE_DIR"])
@pytest.mark.parametrize("below", ["", "sub"])
def test_a_folder_setting_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, below: str) -> None:
    (tmp_path / "afile").write_text("not a folder")
    value = str(tmp_path / "afile" / below) if below else str(tmp_path / "afile")
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert f"{var}={value!r}" in str(err.value) and f"{tmp_path / 'afile'} exists and is not a folder" in str(err.value)
    monkeypatch.setenv(var, str(tmp_path / "not-yet" / "made"))  # a folder that does not exist yet is fine
    load_settings()
