"""What a flow run shows in the Prefect UI besides its logs: its artifacts (the run page's Artifacts tab).

Every flow that runs per-video stages publishes its `StageRunSummary` with `publish_stage_summary`: a table of
counts by stage and status (with the stages skipped before submitting, by reason) under `<flow>-summary`, and
the most frequent errors, each with an example video, under `<flow>-errors`. Pictures (a loss curve, confusion
matrices) go in with `publish_image`, other figures with `publish_table`.

Artifact keys may hold only lowercase letters, digits and dashes (Prefect's rule): `artifact_key` makes one.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from flows.summaries import StageRunSummary

__all__ = ["SKIPPED_PREFIX", "artifact_key", "error_lines", "publish_image", "publish_stage_summary",
           "publish_table", "summary_rows"]

SKIPPED_PREFIX = "skipped before submit: "  # status of the rows counting (video, stage) pairs decided before running


def artifact_key(*parts: str) -> str:
    """A valid Prefect artifact key from `parts`: lowercase, every run of other characters a dash.

    >>> artifact_key("ingest", "summary")
    'ingest-summary'
    >>> artifact_key("Zero_Shot scores")
    'zero-shot-scores'
    """
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    if not key:
        raise ValueError(f"no artifact key can be made of {parts!r}")
    return key


def summary_rows(summary: StageRunSummary) -> list[dict[str, Any]]:
    """One row `{"stage", "status", "count"}` per (stage, status) that ran, then per (stage, reason) decided
    before submitting (status `skipped before submit: <reason>`), in stage order."""
    stages = list(dict.fromkeys([*summary.submitted, *summary.results, *summary.skipped_before_submit]))
    rows: list[dict[str, Any]] = []
    for stage in stages:
        for status, n in sorted(summary.results.get(stage, {}).items()):
            rows.append({"stage": stage, "status": status, "count": n})
        for reason, n in sorted(summary.skipped_before_submit.get(stage, {}).items()):
            rows.append({"stage": stage, "status": SKIPPED_PREFIX + reason, "count": n})
    return rows


def error_lines(summary: StageRunSummary) -> list[str]:
    """The top errors as markdown table lines (stage, error type, count, an example video)."""
    if not summary.top_errors:
        return ["No stage failed in this run."]
    lines = ["| stage | error type | count | example video |", "|---|---|---:|---|"]
    for e in summary.top_errors:
        lines.append(f"| {e.stage} | {e.error_type} | {e.count} | {e.example_video or ''} |")
    return lines


def publish_stage_summary(summary: StageRunSummary, flow_name: str) -> tuple[UUID, UUID]:
    """Publish the counts by stage and status as table artifact `<flow_name>-summary` and the top errors as
    markdown artifact `<flow_name>-errors`; returns their ids. Call it inside a flow run."""
    from prefect.artifacts import create_markdown_artifact

    rows = summary_rows(summary)
    total = sum(r["count"] for r in rows if not str(r["status"]).startswith(SKIPPED_PREFIX))
    table = publish_table(rows, artifact_key(flow_name, "summary"),
                          f"{flow_name}: {total} task runs by stage and status, and the (video, stage) pairs "
                          f"skipped before submitting, by reason; {summary.failed()} failed or not run")
    text = "\n".join([f"## Most frequent errors of this {flow_name} run", "",
                      *error_lines(summary), "",
                      "Each failed stage keeps its error on its row: `videobert status --errors` lists them; "
                      "a re-run with `retry_error_type` retries one type."])
    errors = create_markdown_artifact(text, key=artifact_key(flow_name, "errors"),
                                      description=f"{flow_name}: top errors, each with an example video")
    return table, errors


def publish_table(rows: Sequence[dict[str, Any]], key: str, description: str) -> UUID:
    """A table artifact of `rows` (dicts of the same columns) under `key` (made valid by `artifact_key`)."""
    from prefect.artifacts import create_table_artifact

    return create_table_artifact([dict(r) for r in rows], key=artifact_key(key), description=description)


def publish_image(path: str | Path, key: str, title: str) -> UUID | None:
    """A markdown artifact with the PNG at `path` inline (a data URL: the UI needs no access to the file) and
    the path under it; None, and nothing published, when the file does not exist."""
    from prefect.artifacts import create_markdown_artifact

    path = Path(path)
    if not path.is_file():
        return None
    png = base64.b64encode(path.read_bytes()).decode()
    return create_markdown_artifact(f"## {title}\n\n![{title}](data:image/png;base64,{png})\n\n`{path.resolve()}`",
                                    key=artifact_key(key), description=title)
