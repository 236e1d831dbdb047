"""Engines, sessions and migrations for the tracking database (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from videobert.core.errors import DatabaseUnavailableError, SchemaOutOfDateError
from videobert.core.settings import mask_url_password, scrub_passwords

if TYPE_CHECKING:
    from videobert.core.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another's lock before failing
PG_CONNECT_TIMEOUT_S = 5


class Database:
    """An engine plus a session factory; `session()` gives a transaction that commits or rolls back."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.safe_url = mask_url_password(url)
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({self.safe_url})"

    def describe(self) -> str:
        """Human-readable location (password masked)."""
        return self.safe_url

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.translate_errors():
            with self._sessions.begin() as session:
                yield session

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in one transaction (no ORM: for the hot paths, such as claims): committed on success,
        rolled back on error."""
        with self.translate_errors(), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn connection-level failures into DatabaseUnavailableError naming the URL."""
        try:
            yield
        except OperationalError as exc:
            raise DatabaseUnavailableError(
                f"database {self.safe_url} is unavailable: {self._driver_says(exc)}"
            ) from None
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise DatabaseUnavailableError(
                    f"connection to database {self.safe_url} was lost: {self._driver_says(exc)}"
                ) from None
            raise

    def _driver_says(self, exc: DBAPIError) -> str:
        """The first line of the driver's message, the URL's passwords scrubbed (a raw '@' in a password makes the
        driver see part of it as the host name, and say that name)."""
        return scrub_passwords(_first_line(exc.orig or exc), self.url)

    def ping(self) -> None:
        """Open a connection and run `SELECT 1`; raise DatabaseUnavailableError if that fails."""
        with self.translate_errors(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # --- migrations ----------------------------------------------------------------------------

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["engine"] = self.engine
        return cfg

    def head_revision(self) -> str | None:
        """The newest migration this code knows."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        """The migration the database is at (None for an empty database)."""
        from alembic.runtime.migration import MigrationContext

        with self.translate_errors(), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Apply migrations up to `revision`; return (revision before, revision after)."""
        from alembic import command

        before = self.current_revision()
        with self.translate_errors():
            command.upgrade(self._alembic_config(), revision)
        return before, self.current_revision()

    def check_schema(self) -> None:
        """Raise SchemaOutOfDateError unless the database is at this code's head revision."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            raise SchemaOutOfDateError(
                f"database {self.safe_url} is at schema revision {current or 'none (empty)'}, "
                f"this code needs {head}: run `videobert db upgrade`"
            )

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _first_line(exc: object) -> str:
    text_ = str(exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def open_database(settings: Settings, migrate: bool | None = None) -> Database:
    """Connect to the configured database and make sure its schema is current.

    `migrate=None` (the default) upgrades the embedded SQLite database automatically and only checks a
    PostgreSQL one (upgrade it with `videobert db upgrade`); True or False force either behaviour.
    """
    db = Database(settings.resolved_database_url)
    db.ping()
    if migrate is None:
        migrate = db.dialect == "sqlite"
    if migrate:
        db.upgrade()
    else:
        db.check_schema()
    return db
