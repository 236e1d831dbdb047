"""The `ingest` flow: register videos from a source, then download, transcript, punctuate and featurize each.

Stages that are up to date are skipped before any task is submitted (the plan reads the database only).
A failed video never fails the flow: its error is on its stage row, and the flow returns counts by status
and the most frequent error types.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.futures import run_per_video
from flows.ingest_plan import IngestRequest, plan_request
from flows.summaries import IngestSummary
from flows.task_runners import StageRunner, stage_submitter
from tasks.ingest import configured
from videobert.core.params import load_params
from videobert.core.runtime import get_runtime

__all__ = ["INGEST_TASK_THREADS", "IngestRequest", "ingest", "run_ingest"]

# Threads of the flow's task runner: at most `concurrency` videos are in flight, each with at most two stages
# running at once (download and transcript), so this only has to stay above twice any sensible concurrency.
INGEST_TASK_THREADS = 64


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=INGEST_TASK_THREADS), log_prints=False)
def ingest(request: IngestRequest = IngestRequest(), params_file: str = "params.yaml",
           task_runner: StageRunner = StageRunner.threads) -> IngestSummary:
    """Register videos and run their ingest stages (on `task_runner`: the flow's threads, or a local Dask cluster of
    one process per video in flight); returns counts by stage and status, and top errors."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    rt = get_runtime()
    planned = plan_request(rt, request, params_file, logger)
    plan, params, opts, summary = planned.plan, planned.params, planned.opts, planned.summary
    summary.flow_run_id = str(flow_run.id) if flow_run.id else None
    for vid in plan.unknown:
        logger.warning("unknown video id %s: not registered, skipped", vid)
    logger.info("plan: %s to run; skipped before submitting: %s", summary.submitted, plan.skipped)

    if plan.count("features"):
        # Load the extractor now: a model that cannot be had stops the run here, once, with a clear message,
        # instead of failing every video.
        extractor = rt.extractor(params.features)
        logger.info("features: %s (%s-d) on %s", extractor.identity(), extractor.dim, extractor.device())

    tasks = configured(params)
    kwargs = {"params": params, "force": opts.force, "retry_permanent": opts.retry_permanent}
    concurrency = request.concurrency or params.ingest.concurrency
    with stage_submitter(task_runner, concurrency) as submit:
        outcomes = run_per_video(plan.todo, lambda vid, stage: submit(tasks[stage], vid, **kwargs), plan.upstream,
                                 concurrency, "ingest")
    summary.add_outcomes(outcomes)
    logger.info("ingest finished: %s", summary.results or "nothing to do")
    if summary.top_errors:
        logger.info("most frequent errors: %s", [e.model_dump() for e in summary.top_errors])
    return summary


def run_ingest(request: IngestRequest, params_file: str = "params.yaml") -> IngestSummary:
    """Run the flow in this process (the CLI's entry); wrong requests raise SettingsError."""
    load_params(params_file)  # fail early, before Prefect starts, on a wrong params file
    return ingest(request=request, params_file=params_file)
