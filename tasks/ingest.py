"""Prefect tasks of the ingest stages: one task run per (video, stage), named after the video."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.common import FEATURES_RETRIES, PUNCTUATE_RETRIES, TASK_OPTIONS, as_dict, backoff
from videobert.core.params import Params
from videobert.core.runtime import get_runtime
from videobert.core.stages import StageOptions
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download, run_punctuate, run_transcript
from videobert.ingest.video import run_video


def _opts(force: bool, retry_permanent: bool) -> StageOptions:
    return StageOptions(force=force, retry_permanent=retry_permanent, raise_retryable=True)


@task(name="download", task_run_name="download-{video_id}", **TASK_OPTIONS)
def download_task(video_id: str, params: Params, force: bool = False, retry_permanent: bool = False) -> dict[str, Any]:
    """Fetch or copy in one video."""
    return as_dict(run_download(get_runtime(), video_id, params, _opts(force, retry_permanent)))


@task(name="transcript", task_run_name="transcript-{video_id}", **TASK_OPTIONS)
def transcript_task(video_id: str, params: Params, force: bool = False, retry_permanent: bool = False) -> dict[str, Any]:
    """Find one video's transcript."""
    return as_dict(run_transcript(get_runtime(), video_id, params, _opts(force, retry_permanent)))


@task(name="punctuate", task_run_name="punctuate-{video_id}", **TASK_OPTIONS, **backoff(*PUNCTUATE_RETRIES))
def punctuate_task(video_id: str, params: Params, force: bool = False, retry_permanent: bool = False) -> dict[str, Any]:
    """Punctuate one video's transcript into timed sentences."""
    return as_dict(run_punctuate(get_runtime(), video_id, params, _opts(force, retry_permanent)))


@task(name="features", task_run_name="features-{video_id}", **TASK_OPTIONS, **backoff(*FEATURES_RETRIES))
def features_task(video_id: str, params: Params, force: bool = False, retry_permanent: bool = False) -> dict[str, Any]:
    """Clip features and middle frames of one video."""
    return as_dict(run_features(get_runtime(), video_id, params, _opts(force, retry_permanent)))


@task(name="video", task_run_name="ingest-{video_id}", **TASK_OPTIONS)
def video_task(video_id: str, stages: list[str], upstream: dict[str, str], params: Params, force: bool = False,
               retry_permanent: bool = False) -> list[dict[str, Any]]:
    """One video's planned stages in order, in this one task run (`ingest.task_runs: video`)."""
    return run_video(get_runtime(), video_id, stages, params, _opts(force, retry_permanent), upstream)


def configured_video_task(params: Params) -> Any:
    """The per-video task with the most retries of its stages, the download's first delay."""
    retries = max(params.download.task_retries, params.transcript.task_retries, PUNCTUATE_RETRIES[0],
                  FEATURES_RETRIES[0])
    return video_task.with_options(**backoff(retries, params.download.retry_backoff_s))


def configured(params: Params) -> dict[str, Any]:
    """The ingest tasks by stage name, the download and transcript ones with the retries of `params`."""
    d, t = params.download, params.transcript
    return {
        "download": download_task.with_options(**backoff(d.task_retries, d.retry_backoff_s)),
        "transcript": transcript_task.with_options(**backoff(t.task_retries, t.retry_backoff_s)),
        "punctuate": punctuate_task,
        "features": features_task,
    }
