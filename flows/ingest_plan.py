"""What an ingest run will do, decided without Prefect: the request, its videos, and the run/skip plan.

The `ingest` flow starts with `plan_request`. The command line calls it first with `register=False` (it
then writes nothing but the release of stages that dead workers of this host left running): when nothing is
left to run, it prints that summary and starts no Prefect flow run at all, which keeps a no-op run at the cost
of reading the database (this module imports no Prefect).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from flows.inputs import BASE_NOTE, effective_params, input_path
from flows.summaries import MAX_LISTED, IngestSummary
from videobert.core.params import Params, TranscriptSource, apply_override
from videobert.core.runtime import Runtime
from videobert.core.stages import StageOptions
from videobert.db import repository as repo
from videobert.ingest.plan import STAGE_NAMES, IngestPlan, plan_ingest
from videobert.ingest.sources import (
    DEFAULT_HOWTO100M_CATEGORIES,
    SourceScan,
    read_howto100m_csv,
    read_id_entries,
    read_id_file,
    read_local_dir,
)

StageName = Literal[STAGE_NAMES]  # type: ignore[valid-type]  # the ingest stages, in order: a picker in a form
SOURCES = ("youtube", "ids_file", "howto100m_csv", "local_dir", "video_ids", "retry_error_type")


class IngestRequest(BaseModel):
    """Which videos to ingest and how. Give at most one source; none means every registered video."""

    youtube: list[str] | None = Field(
        None, description="YouTube video ids or URLs (or other http(s) video URLs) to register and ingest, one per "
        "entry: type new videos here")
    ids_file: str | None = Field(None, description=f"text file of YouTube ids or URLs, one per line; {BASE_NOTE}")
    howto100m_csv: str | None = Field(None, description=f"HowTo100M csv (video_id, category_1, ...); {BASE_NOTE}")
    local_dir: str | None = Field(None, description=f"folder of video files, ids from file names; {BASE_NOTE}")
    video_ids: list[str] | None = Field(None, description="video ids registered already (`videobert status`)")
    retry_error_type: str | None = Field(None, description="re-run only videos that failed with this error type "
                                         "(e.g. VideoUnavailableError; the `ingest-errors` artifact lists them)")
    categories: list[str] = Field(list(DEFAULT_HOWTO100M_CATEGORIES),
                                  description="HowTo100M category filter (howto100m_csv only)")
    limit: int | None = Field(None, ge=1, description="take only the first N videos of the source (empty: all)")
    stages: list[StageName] = Field(list(STAGE_NAMES), description="stages to run (each needs the one before it "
                                    "done, in this run or before)")
    force: bool = Field(False, description="re-run stages that are up to date")
    concurrency: int | None = Field(None, ge=1, description="videos in flight; empty: params ingest.concurrency")
    howto100m_captions: str | None = Field(
        None, description=f"HowTo100M raw_caption.json (overrides transcript.howto100m_captions); {BASE_NOTE}")
    transcript_sources: list[TranscriptSource] | None = Field(
        None, description="override transcript.sources for this run, e.g. [whisper] with stages [transcript] and "
        "force to re-transcribe videos by speech recognition (the same as overrides transcript.sources)")

    @field_validator("youtube")
    @classmethod
    def _valid_entries(cls, value: list[str] | None) -> list[str] | None:
        """Each entry must be a YouTube id or URL, or an http(s) URL: the id file's rules."""
        if value:
            scan = read_id_entries((f"youtube[{i}]", v) for i, v in enumerate(value))
            if scan.rejected:
                raise ValueError("; ".join(f"{where}: {why}" for where, why in scan.rejected))
        return value

    @model_validator(mode="after")
    def _one_source(self) -> IngestRequest:
        given = [n for n in SOURCES if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give at most one source, got {', '.join(given)}")
        return self


@dataclass
class PlannedIngest:
    """An ingest run decided: its parameters, options, plan, and the summary so far (nothing run yet)."""

    params: Params
    opts: StageOptions
    plan: IngestPlan
    summary: IngestSummary
    unregistered: int  # source entries not registered yet (only when planned with register=False)

    @property
    def nothing_to_run(self) -> bool:
        return not self.plan.todo and not self.unregistered


def plan_request(rt: Runtime, request: IngestRequest, params_file: str | None, logger: Any = None,
                 register: bool = True, overrides: Any = None) -> PlannedIngest:
    """Recover what dead workers of this host left, read the source (registering its videos unless `register`
    is false), and plan every (video, stage) from the database. `overrides`: a ParamsOverride (or the same as
    a mapping) applied to the params file's values."""
    logger = logger or logging.getLogger(__name__)
    effective = effective_params(params_file, overrides, logger if register else None)
    params = request_params(request, effective.params)
    _recover(rt, logger)

    ids, scan, added, unregistered = _select(request, rt.db, register)
    if scan is not None and register:
        logger.info("source: %d videos (%d new), %d entries rejected", len(scan.videos), added, len(scan.rejected))
        for entry, why in scan.rejected[:MAX_LISTED]:
            logger.warning("rejected %s: %s", entry, why)

    opts = StageOptions(force=request.force, retry_permanent=bool(request.retry_error_type))
    plan = plan_ingest(rt, ids, params, request.stages, opts)
    summary = IngestSummary(
        videos=len(ids), new_videos=added,
        rejected=(scan.rejected if scan else [])[:MAX_LISTED], rejected_count=len(scan.rejected) if scan else 0,
        unknown_ids=plan.unknown[:MAX_LISTED], submitted={s: plan.count(s) for s in request.stages},
        skipped_before_submit=plan.skipped, params_file=effective.params_file,
        overrides={**effective.overrides, **{f"transcript.{k}": v for k, v in _request_overrides(request).items()}},
    )
    return PlannedIngest(params, opts, plan, summary, unregistered)


def _request_overrides(request: IngestRequest) -> dict[str, Any]:
    """The transcript values the request itself overrides (its caption file, absolute, and its sources)."""
    out: dict[str, Any] = {}
    if request.howto100m_captions:
        out["howto100m_captions"] = str(input_path(request.howto100m_captions, "HowTo100M caption file"))
    if request.transcript_sources:
        out["sources"] = list(request.transcript_sources)
    return out


def request_params(request: IngestRequest, params: Params) -> Params:
    """The parameters of the run: `params` with the request's overrides of the caption file and sources."""
    changes = _request_overrides(request)
    return apply_override(params, {"transcript": changes}) if changes else params


def _select(request: IngestRequest, db: Any, register: bool) -> tuple[list[str], SourceScan | None, int, int]:
    """Register the source's videos (when `register`); return the ids to work on, the scan, how many were new,
    and how many are not registered (when not `register`)."""
    scan: SourceScan | None = None
    if request.youtube:
        scan = read_id_entries(((f"youtube[{i}]", v) for i, v in enumerate(request.youtube)), request.limit)
    elif request.ids_file:
        scan = read_id_file(input_path(request.ids_file, "id file"), request.limit)
    elif request.howto100m_csv:
        scan = read_howto100m_csv(input_path(request.howto100m_csv, "HowTo100M csv"), request.categories or None,
                                  request.limit)
    elif request.local_dir:
        scan = read_local_dir(input_path(request.local_dir, "video folder", kind="folder"), request.limit)
    if scan is not None:
        ids = [v.id for v in scan.videos]
        if not register:
            return ids, scan, 0, len(set(ids) - repo.known_video_ids(db, ids))
        added, _known = repo.register_videos(db, scan.videos)
        return ids, scan, added, 0
    if request.video_ids:
        ids = list(request.video_ids)
    elif request.retry_error_type:
        ids = repo.videos_failed_with(db, request.retry_error_type)
    else:
        ids = repo.all_video_ids(db)
    return (ids[: request.limit] if request.limit else ids), None, 0, 0


def _recover(rt: Runtime, logger: Any) -> None:
    """Release the stages and scratch folders that workers of this host left when they stopped."""
    released = repo.release_dead_claims(rt.db)
    if released:
        logger.info("released %d stages left running by workers that stopped", released)
    cleaned = rt.clean_scratch()
    if cleaned:
        logger.info("removed %d scratch folders of workers that stopped", cleaned)
