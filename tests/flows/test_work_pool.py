"""Scale-out on a Prefect work pool: `videobert deploy` and two process workers draining the pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest

from flows.deployments import deploy_to_pool
from tests.conftest import Project
from tests.flows.prefect_api import stop_session
from videobert.core.errors import VideobertError

RUNS = 4  # flow runs started through the API; each worker runs one at a time, so both must take some
WORKERS = ("worker-a", "worker-b")


def _worker(pool: str, name: str, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """`prefect worker start` of the venv (what users run on each machine), its output in `log`."""
    prefect = Path(sys.executable).parent / "prefect"
    with log.open("w") as out:
        return subprocess.Popen([str(prefect), "worker", "start", "--pool", pool, "--type", "process", "--name", name,
                                 "--limit", "1"], env=env, text=True, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _cleanup(pool: str) -> None:
    """Remove the pool and its deployments from the session's Prefect server (other tests list deployments)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    with get_client(sync_client=True) as client:
        pool_filter = WorkPoolFilter(name=WorkPoolFilterName(any_=[pool]))
        for deployment in client.read_deployments(work_pool_filter=pool_filter):
            client.delete_deployment(deployment.id)
        client.delete_work_pool(pool)


def test_deploy_to_a_missing_pool_or_one_of_another_type_says_what_to_do(project: Project, prefect_api: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with pytest.raises(VideobertError, match="no work pool 'nowhere'.*--create-pool"):
        deploy_to_pool("nowhere", project.root)
    pool = f"videobert-test-{uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="kubernetes"))
    try:
        with pytest.raises(VideobertError, match="of type 'kubernetes'.*'process' pool"):
            deploy_to_pool(pool, project.root, create_pool=True)
    finally:
        _cleanup(pool)


def test_two_workers_drain_one_pool(project: Project, prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from prefect.client.orchestration import get_client

    project.write_params("features:\n  extractor: baseline\n")
    project.runtime()  # the SQLite database exists before two workers' flow runs open it
    pool = f"videobert-test-{uuid4().hex[:8]}"
    env = {**os.environ, "VIDEOBERT_PREFECT_API_URL": prefect_api, "PREFECT_API_URL": prefect_api,
           "VIDEOBERT_DATA_DIR": str(project.data), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    deploy = subprocess.run([sys.executable, "-m", "videobert_cli.cli", "deploy", "--pool", pool, "--create-pool"],
                            cwd=project.root, env=env, text=True, capture_output=True, timeout=120)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    logs = tmp_path_factory.mktemp("workers")
    workers = {name: _worker(pool, name, env, logs / f"{name}.log") for name in WORKERS}
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(f"manifest/{pool}")
            assert deployment.work_pool_name == pool
            assert deployment.entrypoint == "flows.dataset.manifest_flow"  # imported from the installed project
            assert deployment.job_variables == {"working_dir": str(project.root)}  # where `deploy` ran
            runs = [client.create_flow_run_from_deployment(
                deployment.id, parameters={"out": f"dataset/manifest-{i}.json", "sentences_out": f"dataset/s-{i}.json"})
                for i in range(RUNS)]
            deadline = time.monotonic() + 180
            while True:
                states = [client.read_flow_run(r.id).state for r in runs]
                if all(s is not None and s.is_final() for s in states):
                    break
                for name, proc in workers.items():
                    assert proc.poll() is None, (name, (logs / f"{name}.log").read_text()[-3000:])
                assert time.monotonic() < deadline, [s and s.name for s in states]
                time.sleep(0.5)
            ran_by = [client.read_flow_run(r.id).labels.get("prefect.worker.name") for r in runs]
        assert all(s.is_completed() for s in states), [(s.name, s.message) for s in states]
    finally:
        for proc in workers.values():
            stop_session(proc)
        _cleanup(pool)
    assert set(ran_by) == set(WORKERS), ran_by  # both workers took flow runs, and only they did
    for i in range(RUNS):  # each run wrote its manifest in the deployment's working directory
        assert json.loads((project.root / "dataset" / f"manifest-{i}.json").read_text())["videos"] == []
