"""The `ingest` flow: register videos from a source, then download, transcript, punctuate and featurize each.

Stages that are up to date are skipped before any task is submitted (the plan reads the database only).
A failed video never fails the flow: its error is on its stage row, and the flow returns counts by status
and the most frequent error types.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import publish_stage_summary
from flows.futures import run_per_video
from flows.ingest_plan import IngestRequest, plan_request
from flows.inputs import effective_params, with_notes
from flows.summaries import IngestSummary
from flows.task_runners import StageRunner, stage_submitter
from tasks.ingest import configured, configured_video_task
from videobert.core.params import ParamsOverride
from videobert.core.runtime import get_runtime

__all__ = ["INGEST_TASK_THREADS", "IngestRequest", "ingest", "run_ingest"]

# Threads of the flow's task runner: at most `concurrency` videos are in flight, each with at most two stages
# running at once (download and transcript), so this only has to stay above twice any sensible concurrency.
INGEST_TASK_THREADS = 64
VIDEO_TASK = "video"  # the one planned step of a video whose stages run in one task run (ingest.task_runs: video)


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=INGEST_TASK_THREADS), log_prints=False,
      persist_result=True, result_serializer="json")
@with_notes
def ingest(request: IngestRequest = IngestRequest(), params_file: str = "params.yaml",
           overrides: ParamsOverride = ParamsOverride(),  # type: ignore[valid-type]
           task_runner: StageRunner = StageRunner.threads) -> IngestSummary:
    """Register videos and run their ingest stages; returns counts by stage and status, and top errors.

    Args:
        request: which videos (at most one source: new YouTube ids or URLs, an id file, a HowTo100M csv, a folder
            of video files, registered ids, or the videos that failed with one error type; none: every registered
            video) and which stages.
        params_file: PARAMS_FILE_NOTE
        overrides: OVERRIDES_NOTE
        task_runner: where the per-video stages run: the flow's threads, or a local Dask cluster of one process
            per video in flight.
    """
    from prefect.runtime import flow_run

    logger = get_run_logger()
    rt = get_runtime()
    planned = plan_request(rt, request, params_file, logger, overrides=overrides)
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

    kwargs = {"params": params, "force": opts.force, "retry_permanent": opts.retry_permanent}
    concurrency = request.concurrency or params.ingest.concurrency
    with stage_submitter(task_runner, concurrency) as submit:
        if params.ingest.task_runs == "video":  # one task run per video, its stages in order inside it
            video = configured_video_task(params)
            outcomes = run_per_video({vid: [VIDEO_TASK] for vid in plan.todo},
                                     lambda vid, _: submit(video, vid, stages=plan.todo[vid],
                                                           upstream=plan.upstream(vid), **kwargs),
                                     {}, concurrency, "ingest")
        else:
            tasks = configured(params)
            outcomes = run_per_video(plan.todo, lambda vid, stage: submit(tasks[stage], vid, **kwargs),
                                     plan.upstream, concurrency, "ingest")
    summary.add_outcomes(outcomes)
    logger.info("ingest finished: %s", summary.results or "nothing to do")
    if summary.top_errors:
        logger.info("most frequent errors: %s", [e.model_dump() for e in summary.top_errors])
    publish_stage_summary(summary, "ingest")
    return summary


def run_ingest(request: IngestRequest, params_file: str = "params.yaml",
               overrides: ParamsOverride | None = None) -> IngestSummary:  # type: ignore[valid-type]
    """Run the flow in this process (the CLI's entry); wrong requests raise SettingsError."""
    effective_params(params_file, overrides)  # fail early, before Prefect starts, on a wrong params file or override
    return ingest(request=request, params_file=params_file, overrides=overrides or ParamsOverride())
