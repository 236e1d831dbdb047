"""Deployments: every flow of the pipeline, startable from the Prefect UI with a form of its parameters.

Two ways to run them, both against the Prefect server of VIDEOBERT_PREFECT_API_URL:

* `videobert serve` (`serve_all`) registers them and runs, in that one process, the flow runs that users start.
* `videobert deploy --pool NAME` (`deploy_to_pool`) registers them to a Prefect process work pool; any number of
  `prefect worker start --pool NAME` processes, on any machines with the project installed, run their flow runs.
  The deployments name the flows by module (`flows.ingest.ingest`), imported from the installed project where the
  worker runs, and start each flow run in one working directory (a job variable: params.yaml and the flows'
  relative paths resolve there), which must exist on every worker's machine.

Several serving processes or workers (on several machines sharing the database and the store) run more flows at
once: each stage still claims its (video, stage) row, so no work is done twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.captioning import caption_flow
from flows.dataset import codebook_flow, corpus_flow, dataset_flow, manifest_flow, tokens_flow
from flows.evaluation import evaluate_flow
from flows.ingest import ingest
from flows.training import train_flow
from videobert.core.errors import VideobertError

TAGS = ["videobert"]
POOL_TYPE = "process"  # the worker type whose `working_dir` job variable the deployments set


def deployed_flows() -> list[tuple[Any, str]]:
    """Every flow that has a deployment, with the deployment's description."""
    return [
        (ingest, "Register videos and run download, transcript, punctuation and clip features."),
        (manifest_flow, "Write the manifest of videos whose features are done."),
        (codebook_flow, "Fit the hierarchical k-means codebook of a manifest."),
        (tokens_flow, "Label every manifest video with a codebook."),
        (corpus_flow, "Build the training corpus from the manifest, sentences and tokens."),
        (dataset_flow, "Manifest, codebook, tokens and corpus, one after the other."),
        (train_flow, "Pre-train VideoBERT on a corpus version (the latest by default); resumes a stopped run."),
        (evaluate_flow, "Zero-shot verb and object classification of a checkpoint on YouCook II-format annotations."),
        (caption_flow, "Captioners over a checkpoint's VideoBERT features and over clip features alone, scored with "
                       "BLEU, METEOR, ROUGE-L and CIDEr on YouCook II-format annotations."),
    ]


def build_deployments(limit: int | None = None, pool: str | None = None, working_dir: Path | None = None) -> list[Any]:
    """The deployments of every flow (not yet registered).

    Without `pool`: for `serve`, each named after its flow. With `pool`: bound to that work pool, each named after
    the pool (so that they do not replace the served ones: `ingest/<pool>`), the flow found by module path and run
    in `working_dir` (absolute).
    """
    flows = deployed_flows()
    if pool is None:
        return [f.to_deployment(name=f.name, description=text, tags=TAGS, concurrency_limit=limit) for f, text in flows]
    from prefect.deployments.runner import EntrypointType

    if working_dir is None or not working_dir.is_absolute():
        raise VideobertError(f"the work pool's deployments need an absolute working directory, not {working_dir}")
    return [f.to_deployment(name=pool, description=text, tags=TAGS, concurrency_limit=limit, work_pool_name=pool,
                            job_variables={"working_dir": str(working_dir)}, entrypoint_type=EntrypointType.MODULE_PATH)
            for f, text in flows]


def serve_all(limit: int | None = None) -> None:
    """Register the deployments and run their flow runs until interrupted."""
    from prefect import serve

    serve(*build_deployments(limit))


def ensure_pool(pool: str, create: bool) -> bool:
    """Check that the work pool exists and is a process pool; create it when missing and `create`. Whether it
    was created now."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    created = False
    with get_client(sync_client=True) as client:
        try:
            work_pool = client.read_work_pool(pool)
        except ObjectNotFound:
            if not create:
                raise VideobertError(f"no work pool {pool!r} on the Prefect server: add --create-pool, or create it "
                                     f"with `prefect work-pool create {pool} --type {POOL_TYPE}`") from None
            try:
                client.create_work_pool(WorkPoolCreate(
                    name=pool, type=POOL_TYPE, base_job_template=ProcessWorker.get_default_base_job_template()))
                created = True
            except ObjectAlreadyExists:  # another `deploy` created it at the same moment
                pass
            work_pool = client.read_work_pool(pool)
    if work_pool.type != POOL_TYPE:
        raise VideobertError(f"work pool {pool!r} is of type {work_pool.type!r}: the deployments need a "
                             f"{POOL_TYPE!r} pool (its workers run the installed project in a working directory)")
    return created


def deploy_to_pool(pool: str, working_dir: Path, limit: int | None = None, create_pool: bool = False) -> list[str]:
    """Register every deployment to the process work pool `pool` (created when missing and `create_pool`), their
    flow runs starting in `working_dir`; their full names (`flow/deployment`)."""
    ensure_pool(pool, create_pool)
    deployments = build_deployments(limit, pool=pool, working_dir=working_dir)
    for deployment in deployments:
        deployment.apply()
    return [f"{d.flow_name}/{d.name}" for d in deployments]
