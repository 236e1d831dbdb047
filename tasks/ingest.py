"""Prefect tasks of the ingest stages: one task run per (video, stage), named after the video."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.common import as_dict, retry_if_transient
from videobert.ingest import run_download, run_features, run_punctuate, run_transcript
from videobert.params import Params
from videobert.runtime import get_runtime
from videobert.stages import StageOptions

_COMMON = {"cache_policy": NO_CACHE, "persist_result": False, "retry_condition_fn": retry_if_transient}


def _opts(force: bool, retry_permanent: bool) -> StageOptions:
    return StageOptions(force=force, retry_permanent=retry_permanent, raise_retryable=True)


@task(name="download", task_run_name="download-{video_id}", retries=3, retry_delay_seconds=[10, 20, 40], **_COMMON)
def download_task(video_id: str, params: Params, force: bool = False, retry_permanent: bool = False) -> dict[str, Any]:
    """Fetch or copy in one video."""
    return as_dict(run_download(get_runtime(), video_id, params, _opts(force, retry_permanent)))


@task(name="transcript", task_run_name="transcript-{video_id}", retries=3, retry_delay_seconds=[10, 20, 40], **_COMMON)
def transcript_task(video_id: str, params: Params, force: bool = False, retry_permanent: bool = False) -> dict[str, Any]:
    """Find one video's transcript."""
    return as_dict(run_transcript(get_runtime(), video_id, params, _opts(force, retry_permanent)))


@task(name="punctuate", task_run_name="punctuate-{video_id}", retries=1, retry_delay_seconds=5, **_COMMON)
def punctuate_task(video_id: str, params: Params, force: bool = False, retry_permanent: bool = False) -> dict[str, Any]:
    """Punctuate one video's transcript into timed sentences."""
    return as_dict(run_punctuate(get_runtime(), video_id, params, _opts(force, retry_permanent)))


@task(name="features", task_run_name="features-{video_id}", retries=1, retry_delay_seconds=10, **_COMMON)
def features_task(video_id: str, params: Params, force: bool = False, retry_permanent: bool = False) -> dict[str, Any]:
    """Clip features and middle frames of one video."""
    return as_dict(run_features(get_runtime(), video_id, params, _opts(force, retry_permanent)))


def configured(params: Params) -> dict[str, Any]:
    """The ingest tasks with the retry counts and delays of `params`, by stage name."""

    def delays(first: float, n: int) -> list[float]:
        return [first * 2**i for i in range(max(n, 1))]

    d, t = params.download, params.transcript
    return {
        "download": download_task.with_options(retries=d.task_retries, retry_delay_seconds=delays(d.retry_backoff_s, d.task_retries)),
        "transcript": transcript_task.with_options(retries=t.task_retries, retry_delay_seconds=delays(t.retry_backoff_s, t.task_retries)),
        "punctuate": punctuate_task,
        "features": features_task,
    }
