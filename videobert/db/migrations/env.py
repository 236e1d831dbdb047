"""Alembic environment: runs migrations on the engine handed over by `videobert.db.engine.Database`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from videobert.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from videobert.core.settings import load_settings
        from videobert.db.engine import Database

        engine = Database(load_settings().resolved_database_url).engine
    with engine.connect() as connection:
        _run(connection)
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `videobert db upgrade`")
run_migrations_online()
