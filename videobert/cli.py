"""The `videobert` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from videobert.errors import SettingsError, VideobertError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="VideoBERT pipeline.")
db_app = typer.Typer(no_args_is_help=True, help="Tracking database.")
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _settings():  # noqa: ANN202 - imported lazily so that `--help` stays fast
    from videobert.settings import load_settings

    return load_settings()


@app.command()
def config() -> None:
    """Show the effective settings (secrets masked) and where data lives."""
    settings = _settings()
    table = Table("setting", "value", title="settings")
    for name, value in settings.safe_dump().items():
        table.add_row(name, "" if value is None else str(value))
    console.print(table)
    console.print(f"database: {settings.resolved_database_url and _masked(settings.resolved_database_url)}")


def _masked(url: str) -> str:
    from videobert.settings import mask_url_password

    return mask_url_password(url)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (creates the tables on an empty database)."""
    from videobert.db.engine import Database

    settings = _settings()
    db = Database(settings.resolved_database_url)
    db.ping()
    before, after = db.upgrade(revision)
    console.print(f"database {db.describe()}: schema {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the one this code needs."""
    from videobert.db.engine import Database

    db = Database(_settings().resolved_database_url)
    console.print(f"database {db.describe()}: at {db.current_revision() or 'empty'}, code needs {db.head_revision()}")


@app.command()
def status(
    errors: Annotated[int, typer.Option(help="How many of the most frequent errors to list.")] = 10,
) -> None:
    """Per-stage counts by status and the most frequent errors."""
    from videobert.db import repository as repo
    from videobert.db.engine import open_database

    db = open_database(_settings())
    counts = repo.status_counts(db)
    statuses = ["pending", "running", "done", "failed"]
    by_stage: dict[str, dict[str, int]] = {}
    for stage, st, n in counts:
        by_stage.setdefault(stage, {})[st] = n
    table = Table("stage", *statuses, "total", title=f"{repo.video_count(db)} videos in {db.describe()}")
    for stage, row in by_stage.items():
        table.add_row(stage, *(str(row.get(s, 0)) for s in statuses), str(sum(row.values())))
    console.print(table)
    top = repo.top_errors(db, errors)
    if top:
        etable = Table("stage", "error type", "videos", "example message", title="most frequent errors")
        for stage, etype, n, msg in top:
            etable.add_row(stage, etype, str(n), msg.splitlines()[0][:120] if msg else "")
        console.print(etable)


@app.command()
def demo() -> None:
    """Run the pipeline on embedded defaults and a few generated sample videos."""
    from videobert.demo import run_demo

    run_demo(console)


def main() -> None:
    """Entry point: run the app, turning the project's errors into one clear line and an exit code."""
    try:
        app(standalone_mode=False)
    except SettingsError as exc:
        err_console.print(f"[bold red]configuration error:[/] {exc}")
        sys.exit(2)
    except VideobertError as exc:
        err_console.print(f"[bold red]error ({type(exc).__name__}):[/] {exc}")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
