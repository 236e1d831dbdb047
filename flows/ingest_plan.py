"""What an ingest run will do, decided without Prefect: the request, its videos, and the run/skip plan.

The `ingest` flow starts with `plan_request`. The command line calls it first with `register=False` (it
then writes nothing but the release of stages that dead workers of this host left running): when nothing is
left to run, it prints that summary and starts no Prefect flow run at all, which keeps a no-op run at the cost
of reading the database (this module imports no Prefect).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, model_validator

from flows.summaries import MAX_LISTED, IngestSummary
from videobert.core.params import Params, TranscriptSource, load_params
from videobert.core.runtime import Runtime
from videobert.core.stages import StageOptions
from videobert.db import repository as repo
from videobert.ingest.plan import STAGE_NAMES, IngestPlan, plan_ingest
from videobert.ingest.sources import (
    DEFAULT_HOWTO100M_CATEGORIES,
    SourceScan,
    read_howto100m_csv,
    read_id_file,
    read_local_dir,
)


class IngestRequest(BaseModel):
    """Which videos to ingest and how. Give at most one source; none means every registered video."""

    ids_file: str | None = Field(None, description="text file of YouTube ids or URLs, one per line")
    howto100m_csv: str | None = Field(None, description="HowTo100M csv (video_id, category_1, ...)")
    local_dir: str | None = Field(None, description="folder of video files; ids from file names")
    video_ids: list[str] | None = Field(None, description="registered video ids")
    retry_error_type: str | None = Field(None, description="re-run only videos that failed with this error type")
    categories: list[str] = Field(list(DEFAULT_HOWTO100M_CATEGORIES), description="HowTo100M category filter")
    limit: int | None = Field(None, ge=1, description="take only the first N videos of the source")
    stages: list[str] = Field(list(STAGE_NAMES), description="stages to run")
    force: bool = Field(False, description="re-run stages that are up to date")
    concurrency: int | None = Field(None, ge=1, description="videos in flight; default: params ingest.concurrency")
    howto100m_captions: str | None = Field(None, description="override transcript.howto100m_captions")
    transcript_sources: list[TranscriptSource] | None = Field(
        None, description="override transcript.sources for this run, e.g. [whisper] with stages [transcript] and "
        "force to re-transcribe videos by speech recognition")

    @model_validator(mode="after")
    def _one_source(self) -> IngestRequest:
        given = [n for n in ("ids_file", "howto100m_csv", "local_dir", "video_ids", "retry_error_type")
                 if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give at most one source, got {', '.join(given)}")
        unknown = [s for s in self.stages if s not in STAGE_NAMES]
        if unknown:
            raise ValueError(f"unknown stages {unknown}: choose from {list(STAGE_NAMES)}")
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


def plan_request(rt: Runtime, request: IngestRequest, params_file: str, logger: Any = None,
                 register: bool = True) -> PlannedIngest:
    """Recover what dead workers of this host left, read the source (registering its videos unless `register`
    is false), and plan every (video, stage) from the database."""
    logger = logger or logging.getLogger(__name__)
    params = request_params(request, params_file)
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
        skipped_before_submit=plan.skipped,
    )
    return PlannedIngest(params, opts, plan, summary, unregistered)


def request_params(request: IngestRequest, params_file: str) -> Params:
    """The parameters of the run: the file's, with the request's overrides of the caption file and sources."""
    params = load_params(params_file)
    overrides: dict[str, Any] = {}
    if request.howto100m_captions:
        overrides["howto100m_captions"] = request.howto100m_captions
    if request.transcript_sources:
        overrides["sources"] = list(request.transcript_sources)
    if overrides:
        params = params.model_copy(update={"transcript": params.transcript.model_copy(update=overrides)})
    return params


def _select(request: IngestRequest, db: Any, register: bool) -> tuple[list[str], SourceScan | None, int, int]:
    """Register the source's videos (when `register`); return the ids to work on, the scan, how many were new,
    and how many are not registered (when not `register`)."""
    scan: SourceScan | None = None
    if request.ids_file:
        scan = read_id_file(request.ids_file, request.limit)
    elif request.howto100m_csv:
        scan = read_howto100m_csv(request.howto100m_csv, request.categories or None, request.limit)
    elif request.local_dir:
        scan = read_local_dir(request.local_dir, request.limit)
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
