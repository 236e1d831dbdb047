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


# --- database passwords are never shown (issue 21, item 5) ----------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # userinfo `user:password@`, the driver and the port kept readable
        ("postgresql://vb:SECRET@db.example:5432/videobert", "postgresql://vb:***@db.example:5432/videobert"),
        ("postgresql+psycopg://vb:SECRET@db.example/vb", "postgresql+psycopg://vb:***@db.example/vb"),
        # a raw '@' in the password: the host is after the LAST '@' (SQLAlchemy would split at the first)
        ("postgresql://vb:SECRET1@SECRET2@db.example:5432/vb", "postgresql://vb:***@db.example:5432/vb"),
        ("postgresql://vb:SECRET1@SECRET2@SECRET3@db.example/vb", "postgresql://vb:***@db.example/vb"),
        # a space, ':', '/', '?', '&' in the password
        ("postgresql://vb:SECRET with spaces@db.example/vb", "postgresql://vb:***@db.example/vb"),
        ("postgresql://vb:SECRET:a/b?c&d=e@db.example/vb?sslmode=require", "postgresql://vb:***@db.example/vb?sslmode=require"),
        ("postgresql://:SECRET@db.example/vb", "postgresql://:***@db.example/vb"),  # no user name
        # the query parameter `password=`, any case, percent-encoded, libpq-style among others
        ("postgresql://vb@db.example:5432/vb?password=SECRET", "postgresql://vb@db.example:5432/vb?password=***"),
        ("postgresql://vb@db.example/vb?PassWord=SECRET", "postgresql://vb@db.example/vb?PassWord=***"),
        ("postgresql://vb@db.example/vb?PASSWORD=SECRET", "postgresql://vb@db.example/vb?PASSWORD=***"),
        ("postgresql://vb@db.example/vb?pass%77ord=SECRET", "postgresql://vb@db.example/vb?pass%77ord=***"),
        ("postgresql://vb@db.example/vb?sslmode=require&password=SECRET with space&application_name=vb",
         "postgresql://vb@db.example/vb?sslmode=require&password=***&application_name=vb"),
        ("postgresql://vb@db.example/vb?sslmode=verify-full&sslpassword=SECRET",
         "postgresql://vb@db.example/vb?sslmode=verify-full&sslpassword=***"),
        ("postgresql://vb:SECRET1@db.example/vb?password=SECRET2", "postgresql://vb:***@db.example/vb?password=***"),
        ("postgresql://vb@db.example/vb?password=", "postgresql://vb@db.example/vb?password=***"),
        # libpq's keyword form (not a URL: only in an error message), quoted with spaces or not
        ("host=db.example password='SECRET with space' dbname=vb", "host=db.example password=*** dbname=vb"),
        ("host=db.example PASSWORD = SECRET dbname=vb", "host=db.example PASSWORD = *** dbname=vb"),
        # nothing secret: unchanged
        ("postgresql://vb@db.example:5432/vb", "postgresql://vb@db.example:5432/vb"),
        ("postgresql://db.example:5432/vb?sslmode=require", "postgresql://db.example:5432/vb?sslmode=require"),
        ("sqlite:////srv/data/videobert.db", "sqlite:////srv/data/videobert.db"),
        ("sqlite:///relative/x.db", "sqlite:///relative/x.db"),
    ],
)
def test_mask_url_password_masks_every_form_and_keeps_the_rest(url: str, shown: str) -> None:
    from videobert.core.settings import mask_url_password

    assert mask_url_password(url) == shown
    assert "SECRET" not in mask_url_password(url)


def test_the_passwords_of_a_url_are_scrubbed_from_a_driver_message() -> None:
    from videobert.core.settings import scrub_passwords, url_passwords

    url = "postgresql+psycopg://vb:first@SECOND%20x@db.example/vb?password=THIRD"
    assert set(url_passwords(url)) >= {"first@SECOND%20x", "SECOND%20x", "SECOND x", "THIRD"}
    # psycopg splits at the first '@' and names the rest as the host it cannot resolve
    said = scrub_passwords("failed to resolve host 'SECOND%20x@db.example': [Errno -2] Name or service not known", url)
    assert said == "failed to resolve host '***@db.example': [Errno -2] Name or service not known"
    # a one-letter password is scrubbed as a word only, not out of every other word
    assert scrub_passwords("password authentication failed for user vb: p", "postgresql://vb:p@h/d") == (
        "password authentication failed for user vb: ***")
    assert scrub_passwords("nothing to hide", "postgresql://vb@h/d") == "nothing to hide"


@pytest.mark.parametrize("url", ["postgresql://vb@db.example:5432/vb?password=SECRET",
                                 "postgresql://vb:SECRET with space@db.example:5432/vb",
                                 "postgresql://vb:SECRET1@SECRET2@db.example:5432/vb"])
def test_settings_show_the_database_url_masked(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from videobert.core.settings import mask_url_password
    from videobert.db.engine import Database

    monkeypatch.setenv("VIDEOBERT_DATABASE_URL", url)
    s = load_settings()
    shown = s.safe_dump()["VIDEOBERT_DATABASE_URL"]
    assert "SECRET" not in shown and "db.example:5432/vb" in shown and shown.startswith("postgresql://vb")
    assert "SECRET" not in mask_url_password(s.resolved_database_url)
    db = Database(s.resolved_database_url)  # no connection is made
    assert "SECRET" not in db.describe() + repr(db) and "db.example:5432/vb" in db.describe()


@pytest.mark.parametrize("url", ["mysql://vb@db/x?password=SECRET", "mysql://vb:SECRET with space@db/x",
                                 "postgresql+psycopg2://vb:SECRET1@SECRET2@db/x"])
def test_a_wrong_database_url_is_named_with_its_password_masked(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("VIDEOBERT_DATABASE_URL", url)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "VIDEOBERT_DATABASE_URL=" in str(err.value) and "SECRET" not in str(err.value)
