"""The `ingest` flow: register videos from a source, then download, transcript, punctuate and featurize each.

Stages that are up to date are skipped before any task is submitted (the plan reads the database only).
A failed video never fails the flow: its error is on its stage row, and the flow returns counts by status
and the most frequent error types.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field, model_validator

from flows.futures import run_per_video
from flows.summaries import MAX_LISTED, IngestSummary
from tasks.ingest import configured
from videobert.core.params import Params, load_params
from videobert.core.runtime import Runtime, get_runtime
from videobert.core.stages import StageOptions
from videobert.db import repository as repo
from videobert.ingest.plan import STAGE_NAMES, UPSTREAM, plan_ingest
from videobert.ingest.sources import (
    DEFAULT_HOWTO100M_CATEGORIES,
    SourceScan,
    read_howto100m_csv,
    read_id_file,
    read_local_dir,
)

# Threads of the flow's task runner: at most `concurrency` videos are in flight, each with at most two stages
# running at once (download and transcript), so this only has to stay above twice any sensible concurrency.
INGEST_TASK_THREADS = 64


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


def _select(request: IngestRequest, db: Any) -> tuple[list[str], SourceScan | None, int]:
    """Register the source's videos; return the ids to work on, the scan, and how many were new."""
    scan: SourceScan | None = None
    if request.ids_file:
        scan = read_id_file(request.ids_file, request.limit)
    elif request.howto100m_csv:
        scan = read_howto100m_csv(request.howto100m_csv, request.categories or None, request.limit)
    elif request.local_dir:
        scan = read_local_dir(request.local_dir, request.limit)
    if scan is not None:
        added, _known = repo.register_videos(db, scan.videos)
        return [v.id for v in scan.videos], scan, added
    if request.video_ids:
        ids = list(request.video_ids)
    elif request.retry_error_type:
        ids = repo.videos_failed_with(db, request.retry_error_type)
    else:
        ids = repo.all_video_ids(db)
    return (ids[: request.limit] if request.limit else ids), None, 0


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=INGEST_TASK_THREADS), log_prints=False)
def ingest(request: IngestRequest = IngestRequest(), params_file: str = "params.yaml") -> IngestSummary:
    """Register videos and run their ingest stages; returns counts by stage and status, and top errors."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    params = _params(request, params_file)
    rt = get_runtime()
    _recover(rt, logger)

    ids, scan, added = _select(request, rt.db)
    if scan is not None:
        logger.info("source: %d videos (%d new), %d entries rejected", len(scan.videos), added, len(scan.rejected))
        for entry, why in scan.rejected[:MAX_LISTED]:
            logger.warning("rejected %s: %s", entry, why)

    opts = StageOptions(force=request.force, retry_permanent=bool(request.retry_error_type))
    plan = plan_ingest(rt, ids, params, request.stages, opts)
    for vid in plan.unknown:
        logger.warning("unknown video id %s: not registered, skipped", vid)
    summary = IngestSummary(
        flow_run_id=str(flow_run.id) if flow_run.id else None, videos=len(ids), new_videos=added,
        rejected=(scan.rejected if scan else [])[:MAX_LISTED], rejected_count=len(scan.rejected) if scan else 0,
        unknown_ids=plan.unknown[:MAX_LISTED], submitted={s: plan.count(s) for s in request.stages},
        skipped_before_submit=plan.skipped,
    )
    logger.info("plan: %s to run; skipped before submitting: %s", summary.submitted, plan.skipped)

    if plan.count("features"):
        # Load the extractor now: a model that cannot be had stops the run here, once, with a clear message,
        # instead of failing every video.
        extractor = rt.extractor(params.features)
        logger.info("features: %s (%s-d) on %s", extractor.identity(), extractor.dim, extractor.device())

    tasks = configured(params)
    kwargs = {"params": params, "force": opts.force, "retry_permanent": opts.retry_permanent}
    outcomes = run_per_video(plan.todo, lambda vid, stage: tasks[stage].submit(vid, **kwargs), UPSTREAM,
                             request.concurrency or params.ingest.concurrency, "ingest")
    summary.add_outcomes(outcomes)
    logger.info("ingest finished: %s", summary.results or "nothing to do")
    if summary.top_errors:
        logger.info("most frequent errors: %s", [e.model_dump() for e in summary.top_errors])
    return summary


def _params(request: IngestRequest, params_file: str) -> Params:
    """The parameters of the run: the file's, with the request's override of the caption file."""
    params = load_params(params_file)
    if request.howto100m_captions:
        params = params.model_copy(update={"transcript": params.transcript.model_copy(
            update={"howto100m_captions": request.howto100m_captions})})
    return params


def _recover(rt: Runtime, logger: Any) -> None:
    """Release the stages and scratch folders that workers of this host left when they stopped."""
    released = repo.release_dead_claims(rt.db)
    if released:
        logger.info("released %d stages left running by workers that stopped", released)
    cleaned = rt.clean_scratch()
    if cleaned:
        logger.info("removed %d scratch folders of workers that stopped", cleaned)


def run_ingest(request: IngestRequest, params_file: str = "params.yaml") -> IngestSummary:
    """Run the flow in this process (the CLI's entry); wrong requests raise SettingsError."""
    load_params(params_file)  # fail early, before Prefect starts, on a wrong params file
    return ingest(request=request, params_file=params_file)
