"""How the command line and the demo show a flow's summary and where things are."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # imported lazily: `videobert --help` must not load Prefect
    from flows.summaries import StageRunSummary
    from videobert.core.settings import Settings


def print_stage_runs(console: Console, summary: StageRunSummary, title: str) -> None:
    """Counts by stage and status (and skipped before submitting), then the most frequent errors."""
    table = Table("stage", "status", "count", title=title)
    for stage, by_status in summary.results.items():
        for status, n in by_status.items():
            table.add_row(stage, status, str(n))
    for stage, reasons in summary.skipped_before_submit.items():
        for reason, n in reasons.items():
            table.add_row(stage, f"skipped ({reason})", str(n))
    console.print(table)
    if summary.top_errors:
        etable = Table("stage", "error type", "count", title="most frequent errors")
        for e in summary.top_errors:
            etable.add_row(e.stage, e.error_type, str(e.count))
        console.print(etable)
    from flows.summaries import IngestSummary

    if isinstance(summary, IngestSummary):
        for entry, why in summary.rejected:
            console.print(f"[yellow]rejected[/] {entry}: {why}")
        if summary.rejected_count > len(summary.rejected):
            console.print(f"... and {summary.rejected_count - len(summary.rejected)} more rejected entries")
        for vid in summary.unknown_ids:
            console.print(f"[yellow]unknown video id[/] {vid}")


def print_locations(console: Console, settings: Settings) -> None:
    """Where the database and the artifacts are (password masked)."""
    from videobert.core.settings import mask_url_password
    from videobert.core.storage import open_store

    console.print(f"database: {mask_url_password(settings.resolved_database_url)}")
    console.print(f"artifacts: {open_store(settings, check=False).describe()}")
