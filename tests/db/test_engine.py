"""Connections, migrations and failures of the tracking database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.conftest import PgCluster, create_database, destroy_cluster, free_port, start_cluster
from videobert.core.errors import DatabaseUnavailableError, SchemaOutOfDateError
from videobert.core.settings import load_settings
from videobert.db import repository as repo
from videobert.db.engine import Database, open_database
from videobert.db.models import Base


def test_migrations_create_the_schema_and_match_the_models(db_url: str) -> None:
    db = Database(db_url)
    assert db.current_revision() is None
    before, after = db.upgrade()
    assert (before, after) == (None, db.head_revision())
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    assert db.upgrade() == (after, after)  # idempotent
    db.dispose()


def test_open_database_migrates_sqlite_and_checks_postgres(tmp_path, pg_url: str, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    db = open_database(load_settings())  # embedded default: created and migrated
    assert db.current_revision() == db.head_revision()
    assert (tmp_path / "data" / "videobert.db").exists()

    monkeypatch.setenv("VIDEOBERT_DATABASE_URL", pg_url)
    with pytest.raises(SchemaOutOfDateError, match="run `videobert db upgrade`"):
        open_database(load_settings())
    Database(pg_url).upgrade()
    assert open_database(load_settings()).current_revision() == db.head_revision()


def test_unreachable_database_names_the_url_without_password() -> None:
    port = free_port()
    db = Database(f"postgresql+psycopg://vb:hunter2@127.0.0.1:{port}/videobert")
    with pytest.raises(DatabaseUnavailableError) as err:
        db.ping()
    msg = str(err.value)
    assert f"127.0.0.1:{port}/videobert" in msg and "hunter2" not in msg and "vb:***@" in msg
    with pytest.raises(DatabaseUnavailableError):
        repo.register_videos(db, [repo.NewVideo("v", "local", "v")])


def test_database_that_goes_away_and_comes_back(tmp_path) -> None:  # noqa: ANN001
    cluster: PgCluster = start_cluster()
    try:
        url = create_database(cluster)
        db = Database(url)
        db.upgrade()
        repo.register_videos(db, [repo.NewVideo("v1", "local", "v1")])
        claim = repo.claim_stage(db, "v1", "features", "fp", lease_s=0.5)
        assert isinstance(claim, repo.Claim)
        cluster.stop("fast")  # disconnects every client (the suite's clusters run with synchronous_commit=off)
        with pytest.raises(DatabaseUnavailableError):
            repo.complete_stage(db, claim, {})
        cluster.start()
        # pool_pre_ping replaces the dead connections; the stage was never marked done
        view = repo.stage_views(db, ["features"])[("v1", "features")]
        assert view.status == "running"
        import time

        time.sleep(0.6)  # the lease of the interrupted claim ends
        again = repo.claim_stage(db, "v1", "features", "fp", lease_s=60)
        assert isinstance(again, repo.Claim)
        repo.complete_stage(db, again, {})
        assert repo.stage_views(db, ["features"])[("v1", "features")].status == "done"
        db.dispose()
    finally:
        destroy_cluster(cluster)
