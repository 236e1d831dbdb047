"""Where a flow run's per-video stage tasks run, chosen per run: the flow's threads, or a local Dask cluster.

`threads` (the default) submits to the flow's own task runner (threads of the flow run's process: downloads wait
on the network, decoding and TensorFlow release the GIL). `dask` starts a local Dask cluster of one process per
video in flight for the flow run (prefect-dask's `DaskTaskRunner`), for stages that hold the GIL; each process
opens its own database connection, store client and models from the same settings (the environment and `.env`
of the flow run's working directory), and the task runs still report to the flow run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from prefect.futures import PrefectFuture

# Threads of each Dask worker process: a video has at most two stages running at once (download and transcript).
STAGES_AT_ONCE_PER_VIDEO = 2

Submit = Callable[..., PrefectFuture[Any]]


class StageRunner(StrEnum):
    """Where the per-video stages of a flow run run."""

    threads = "threads"
    dask = "dask"


@contextmanager
def stage_submitter(runner: StageRunner, videos_in_flight: int) -> Iterator[Submit]:
    """`submit(task, *args, **kwargs)` for the flow's per-video stage tasks, on `runner`; a Dask cluster is
    started here and stopped when the block ends (after its task runs are done)."""
    if StageRunner(runner) is StageRunner.threads:
        yield lambda task, *args, **kwargs: task.submit(*args, **kwargs)
        return
    from prefect.utilities.callables import get_call_parameters
    from prefect_dask import DaskTaskRunner

    cluster = {"n_workers": videos_in_flight, "threads_per_worker": STAGES_AT_ONCE_PER_VIDEO, "processes": True,
               "dashboard_address": None}
    with DaskTaskRunner(cluster_kwargs=cluster) as dask:
        yield lambda task, *args, **kwargs: dask.submit(task, get_call_parameters(task.fn, args, kwargs))
