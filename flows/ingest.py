"""The `ingest` flow: register videos from a source, then download, transcript, punctuate and featurize each.

Stages that are up to date are skipped before any task is submitted (the plan reads the database only).
A failed video never fails the flow: its error is on its stage row, and the flow returns counts by status
and the most frequent error types.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field, model_validator

from flows.futures import next_finished
from flows.progress import reporter
from tasks.ingest import configured
from videobert.db import repository as repo
from videobert.ingest import STAGE_NAMES, plan_ingest
from videobert.params import load_params
from videobert.runtime import get_runtime
from videobert.sources import DEFAULT_HOWTO100M_CATEGORIES, SourceScan, read_howto100m_csv, read_id_file, read_local_dir
from videobert.stages import StageOptions

MAX_REJECTED_SHOWN = 20
UPSTREAM = {"punctuate": "transcript", "features": "download"}  # stage -> the stage whose output it reads


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


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=64), log_prints=False)
def ingest(request: IngestRequest = IngestRequest(), params_file: str = "params.yaml") -> dict[str, Any]:
    """Register videos and run their ingest stages; returns counts by stage and status, and top errors."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    params = load_params(params_file)
    if request.howto100m_captions:
        params = params.model_copy(update={"transcript": params.transcript.model_copy(
            update={"howto100m_captions": request.howto100m_captions})})
    rt = get_runtime()
    released = repo.release_dead_claims(rt.db)
    if released:
        logger.info("released %d stages left running by workers that stopped", released)
    cleaned = rt.clean_scratch()
    if cleaned:
        logger.info("removed %d scratch folders of workers that stopped", cleaned)

    ids, scan, added = _select(request, rt.db)
    if scan is not None:
        logger.info("source: %d videos (%d new), %d entries rejected", len(scan.videos), added, len(scan.rejected))
        for entry, why in scan.rejected[:MAX_REJECTED_SHOWN]:
            logger.warning("rejected %s: %s", entry, why)

    opts = StageOptions(force=request.force, retry_permanent=bool(request.retry_error_type))
    plan = plan_ingest(rt, ids, params, request.stages, opts)
    for vid in plan.unknown:
        logger.warning("unknown video id %s: not registered, skipped", vid)
    planned = {s: plan.count(s) for s in request.stages}
    logger.info("plan: %s to run; skipped before submitting: %s", planned, plan.skipped)

    if plan.count("features"):
        # Load the extractor now: a model that cannot be had stops the run here, once, with a clear message,
        # instead of failing every video.
        extractor = rt.extractor(params.features)
        logger.info("features: %s (%s-d) on %s", extractor.identity(), extractor.dim, extractor.device())

    tasks = configured(params)
    concurrency = request.concurrency or params.ingest.concurrency
    results: Counter[tuple[str, str]] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    progress = reporter()
    progress.start(total=sum(planned.values()), description="ingest")

    queue = deque(plan.todo.items())
    in_flight: dict[PrefectFuture[Any], tuple[str, str]] = {}
    remaining: Counter[str] = Counter()  # per video in flight: planned stages not finished yet
    waiting: dict[tuple[str, str], list[str]] = {}  # (video, stage) -> stages to submit once it succeeds
    kwargs = {"params": params, "force": opts.force, "retry_permanent": opts.retry_permanent}

    def submit_stage(vid: str, stage: str) -> None:
        in_flight[tasks[stage].submit(vid, **kwargs)] = (vid, stage)

    def submit_video(vid: str, stages: list[str]) -> None:
        remaining[vid] = len(stages)
        for stage in stages:
            upstream = UPSTREAM.get(stage)
            if upstream in stages:
                waiting.setdefault((vid, upstream), []).append(stage)  # runs only if its input is there
            else:
                submit_stage(vid, stage)

    def finish(vid: str, stage: str, status: str) -> None:
        results[(stage, status)] += 1
        progress.advance(f"{stage} {vid}: {status}")
        remaining[vid] -= 1
        if remaining[vid] == 0:
            del remaining[vid]
        for child in waiting.pop((vid, stage), []):
            if status in {"done", "skipped"}:
                submit_stage(vid, child)
            else:
                finish(vid, child, "not run")  # its input stage failed: no task run at all

    while queue or in_flight:
        while queue and len(remaining) < concurrency:
            submit_video(*queue.popleft())
        (vid, stage), status, error_type = next_finished(in_flight)
        if error_type:
            errors[(stage, error_type)] += 1
        finish(vid, stage, status)
    progress.stop()

    summary = {
        "flow_run_id": str(flow_run.id) if flow_run.id else None,
        "videos": len(ids),
        "new_videos": added,
        "rejected": [list(r) for r in (scan.rejected if scan else [])[:MAX_REJECTED_SHOWN]],
        "rejected_count": len(scan.rejected) if scan else 0,
        "unknown_ids": plan.unknown[:MAX_REJECTED_SHOWN],
        "submitted": planned,
        "skipped_before_submit": plan.skipped,
        "results": {f"{stage}:{status}": n for (stage, status), n in sorted(results.items())},
        "top_errors": [[stage, etype, n] for (stage, etype), n in errors.most_common(10)],
    }
    logger.info("ingest finished: %s", summary["results"] or "nothing to do")
    if errors:
        logger.info("most frequent errors: %s", summary["top_errors"])
    return summary


def run_ingest(request: IngestRequest, params_file: str = "params.yaml") -> dict[str, Any]:
    """Run the flow in this process (the CLI's entry); wrong requests raise SettingsError."""
    load_params(params_file)  # fail early, before Prefect starts, on a wrong params file
    return ingest(request=request, params_file=params_file)
