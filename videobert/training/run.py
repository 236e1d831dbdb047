"""A training run of VideoBERT on a corpus version: its data, model, `Trainer`, checkpoints in the store and the
database, resumption, and the final model folder (no Prefect: the training flow and `torchrun` both call
`train`).

A run is named by its **run key**, sha256 of (corpus hash, the `model` and `train` params that change the
result, the pretrained BERT's identity): starting the same run again resumes it from its last checkpoint (the
local one, else the latest recorded in the database, fetched from the store); a finished run is not trained
again unless forced. Every checkpoint goes to the store under `checkpoints/<content hash>/` and into the
run's row; the final model goes under `models/<content hash>/` and into `out_dir` with its tokenizer, so the
folder is what plain transformers loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videobert.core.errors import SettingsError
from videobert.core.ids import is_hex
from videobert.core.params import Params, write_params
from videobert.core.runtime import Runtime
from videobert.core.storage import install_folder, keys, sha256_file
from videobert.dataset.files import DatasetError, staged_dir, write_json
from videobert.training.store import MODELS, Progress, fetch_folder, put_folder

log = logging.getLogger(__name__)

TRAINING_DIR = "training"  # <data>/training/<run key[:16]>/: checkpoints and DVCLive logs of a run
KEY_CHARS = 16
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TRAIN_COLUMNS = ("text_ids", "video_tokens", "aligned", "kind")
TIMING_SUFFIXES = ("_runtime", "_per_second")  # eval figures that say how fast, not how well
CODE_VERSION = "2"  # bump when a change to the training code changes what a run produces



@dataclass
class TrainRequest:
    """What to train: a corpus version (hash or prefix; the latest registered when neither is given) or a local
    corpus folder (`dataset/corpus`, as `dvc repro` gives it)."""

    corpus: str | None = None
    corpus_dir: str | None = None
    out_dir: str | None = None  # the final model folder; default <data>/training/<run key>/final
    bert_model: str | None = None  # default VIDEOBERT_BERT_MODEL
    force: bool = False  # train a finished run again from the start; take over a run another process holds
    stop_after_step: int | None = None  # stop early (the run stays resumable)
    flow_run_id: str | None = None


@dataclass
class TrainResult:
    run_key: str
    status: str  # done | stopped | skipped (already done)
    corpus_hash: str
    codebook_hash: str | None
    out_dir: str
    steps: int
    resumed_from: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    model_prefix: str | None = None
    loss_curve: str | None = None


@dataclass
class Corpus:
    """A corpus version on local disk."""

    folder: Path
    doc: dict[str, Any]

    @property
    def content_hash(self) -> str:
        return str(self.doc["content_hash"])

    @property
    def codebook_hash(self) -> str | None:
        return self.doc.get("codebook")

    def files(self, split: str) -> list[Path]:
        return [self.folder / name for name in sorted(self.doc.get("shards", {})) if name.startswith(f"{split}-")]


def resolve_corpus(rt: Runtime, request: TrainRequest) -> Corpus:
    """The corpus folder of a request: a local folder as it is, or a registered version fetched from the store
    into the cache (every shard checked against corpus.json's sha256)."""
    if request.corpus_dir:
        folder = Path(request.corpus_dir)
        doc = _read_corpus_json(folder)
        _check_shards(folder, doc)
        return Corpus(folder, doc)
    from videobert.dataset.corpus import CORPORA
    from videobert.db import repository as repo

    version = repo.find_corpus(rt.db, request.corpus)
    content_hash = version["content_hash"]
    folder = rt.cache_dir() / CORPORA / content_hash

    def fill(tmp: Path) -> None:
        rt.store.get_file(keys.dataset_artifact(CORPORA, content_hash, "corpus.json"), tmp / "corpus.json", verify=True)
        for name in json.loads((tmp / "corpus.json").read_text()).get("shards", {}):
            rt.store.get_file(keys.dataset_artifact(CORPORA, content_hash, name), tmp / name, verify=True)

    install_folder(folder, fill, complete=lambda f: (f / "corpus.json").exists())
    doc = _read_corpus_json(folder)
    _check_shards(folder, doc)
    return Corpus(folder, doc)


def _read_corpus_json(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / "corpus.json").read_text())
        _ = doc["content_hash"], doc["shards"]
        return doc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"corpus {folder} cannot be read: {exc} (build it with `videobert dataset corpus`)") from None


def _check_shards(folder: Path, doc: dict[str, Any]) -> None:
    for name, info in doc["shards"].items():
        path = folder / name
        if not path.exists():
            raise DatasetError(f"corpus {folder}: shard {name} is missing")
        if sha256_file(path)[0] != info["sha256"]:
            raise DatasetError(f"corpus {folder}: shard {name} does not match its sha256 in corpus.json")


def bert_identity(model_dir: str) -> str:
    """The pretrained BERT's identity: its config and vocabulary by content, its weights by name and size."""
    from videobert.ingest.punctuation import model_identity

    return model_identity(model_dir) or "none"


def run_key(corpus_hash: str, params: Params, bert: str) -> str:
    """sha256 of what a run's result depends on (not logging, local checkpoint count or process count)."""
    doc = {"corpus": corpus_hash, "model": params.model.fingerprinted(), "train": params.train.fingerprinted(),
           "bert": bert, "code": CODE_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def visual_vocab_size(rt: Runtime, codebook_hash: str | None) -> tuple[int, Any]:
    """The codebook's vocabulary size and the codebook itself (for centroid initialisation)."""
    if not codebook_hash:
        raise DatasetError("the corpus does not name its codebook")
    from videobert.dataset.codebook import load_codebook

    book = load_codebook(rt, codebook_hash)
    return book.vocab_size, book


def world_size() -> int:
    """Processes in this training (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def accumulation_steps(batch_size: int, per_device: int, processes: int) -> tuple[int, int]:
    """(per-device batch, accumulation steps) that make `batch_size` examples per optimizer step."""
    per_device = min(per_device, max(1, batch_size // processes))
    if batch_size % (per_device * processes):
        raise SettingsError(f"train.batch_size {batch_size} is not a multiple of per_device_batch_size "
                            f"{per_device} x {processes} processes")
    return per_device, batch_size // (per_device * processes)


def precision_flags(precision: str) -> dict[str, bool]:
    """TrainingArguments' bf16 / fp16 / use_cpu for a `train.precision` value on this machine."""
    import torch

    cuda = torch.cuda.is_available()
    if precision in ("bf16", "fp16") and not cuda:
        raise SettingsError(f"train.precision {precision} needs a GPU; this machine has none (use auto or fp32)")
    bf16 = precision == "bf16" or (precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    return {"bf16": bf16, "fp16": precision == "fp16", "use_cpu": not cuda}


def train(rt: Runtime, params: Params, request: TrainRequest, *, progress: Progress | None = None) -> TrainResult:
    """Train (or resume, or skip) the run that `request` and `params` name; see the module docstring."""
    import torch
    from transformers import TrainingArguments, set_seed
    from transformers.integrations import DVCLiveCallback

    from videobert.db import repository as repo
    from videobert.db.models import StageStatus
    from videobert_model.collator import VideoBertCollator
    from videobert_model.modeling_videobert import VideoBertForPreTraining

    if progress is not None:  # the caller shows progress: no loading and saving bars of transformers' own
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    bert_dir = request.bert_model or rt.settings.bert_model
    if not bert_dir or not (Path(bert_dir) / "config.json").exists():
        raise SettingsError(f"VIDEOBERT_BERT_MODEL={bert_dir!r} is not a pretrained BERT folder (config.json): the "
                            "model starts from it (BERT-large for a real run)")
    corpus = resolve_corpus(rt, request)
    key = run_key(corpus.content_hash, params, bert_identity(bert_dir))
    work = rt.settings.resolved_data_dir / TRAINING_DIR / key[:KEY_CHARS]
    out_dir = Path(request.out_dir) if request.out_dir else work / "final"
    main = is_main_process()
    tp, mp = params.train, params.model

    previous = repo.training_runs(rt.db, key)
    if previous and previous[0]["status"] == StageStatus.DONE and not request.force:
        done = previous[0]
        if not (out_dir / "config.json").exists():
            _fetch_final(rt, done, out_dir)
        # the codebook the run was trained on, as recorded, not the one the corpus folder names today
        return TrainResult(key, "skipped", corpus.content_hash, done.get("codebook_hash") or corpus.codebook_hash, str(out_dir),
                           tp.max_steps, None, done["metrics"] or {}, done["checkpoints"])
    restart = bool(request.force and previous and previous[0]["status"] == StageStatus.DONE)
    if restart and work.exists() and main:
        shutil.rmtree(work)  # a finished run trained again from the start
    claim = (repo.claim_training_run(rt.db, key, corpus_hash=corpus.content_hash, codebook_hash=corpus.codebook_hash,
                                     params={"model": mp.model_dump(mode="json"), "train": tp.model_dump(mode="json")},
                                     flow_run_id=request.flow_run_id, force=request.force, restart=restart)
             if main else None)
    try:
        vocab, book = visual_vocab_size(rt, corpus.codebook_hash)
        train_set, eval_set = _datasets(rt, corpus)
        set_seed(tp.seed)
        overrides: dict[str, Any] = {k: getattr(mp, k) for k in ("visual_init", "visual_init_seed", "text_loss_weight",
                                                                 "visual_loss_weight", "alignment_loss_weight")}
        if mp.layers:
            overrides["num_hidden_layers"] = mp.layers
        model, report = VideoBertForPreTraining.from_bert_pretrained(
            bert_dir, vocab, centroids=book.leaf_centroids() if mp.visual_init == "centroids" else None,
            corpus_hash=corpus.content_hash, codebook_hash=corpus.codebook_hash, **overrides)
        log.info("model: %d parameters; from %s: %d tensors copied, new: %s", model.num_parameters(), bert_dir,
                 len(report["copied"]), ", ".join(report["new"]))
        collator = VideoBertCollator(model.config, text_mask_probability=mp.text_mask_probability,
                                     visual_mask_probability=mp.visual_mask_probability, mask_share=mp.mask_share,
                                     random_share=mp.random_share, max_length=mp.max_length, defer_masking=True)
        per_device, accumulation = accumulation_steps(tp.batch_size, tp.per_device_batch_size, world_size())
        resume = _resume_point(rt, work, claim.checkpoints if claim else [])
        evaluate = eval_set is not None and len(eval_set) > 0
        args = TrainingArguments(
            output_dir=str(work), max_steps=tp.max_steps,
            per_device_train_batch_size=per_device, per_device_eval_batch_size=tp.eval_batch_size,
            gradient_accumulation_steps=accumulation, learning_rate=tp.learning_rate, weight_decay=tp.weight_decay,
            warmup_steps=tp.warmup_steps, lr_scheduler_type="linear", optim="adamw_torch",
            # a resumed run does not evaluate again at its checkpoint's step: that figure is in the logs already
            eval_strategy="steps" if evaluate else "no", eval_steps=tp.eval_steps,
            eval_on_start=evaluate and resume is None, save_strategy="steps",
            save_steps=tp.save_steps, save_total_limit=tp.save_total_limit, logging_steps=tp.logging_steps,
            seed=tp.seed, data_seed=tp.seed, dataloader_num_workers=tp.dataloader_workers,
            remove_unused_columns=False, label_names=["alignment_labels"],
            report_to=[], disable_tqdm=progress is not None,
            ddp_backend="gloo" if world_size() > 1 and not torch.cuda.is_available() else None,
            ddp_find_unused_parameters=world_size() > 1,
            **precision_flags(tp.precision))
        from dvclive import Live

        from videobert.training.trainer import (
            DVCLiveAtTrainerStep,
            RecordCallback,
            StopAfterStep,
            StopOnNonFiniteLoss,
            VideoBertTrainer,
            seeded_eval_collator,
            truncate_dvclive,
        )

        callbacks: list[Any] = [StopOnNonFiniteLoss()]  # first: a NaN loss stops the run before anything records it
        if main:
            if resume is not None:  # what was logged after the checkpoint is logged again: replaced, not repeated
                resumed = _step_of(resume)
                dropped = truncate_dvclive(work / "dvclive", resumed)
                if claim is not None:
                    dropped += repo.drop_training_metrics_after(rt.db, claim.run_id, resumed)
                if dropped:
                    log.info("resuming from step %d: %d figures logged after it dropped", resumed, dropped)
            live = Live(dir=str(work / "dvclive"), resume=resume is not None, save_dvc_exp=False, dvcyaml=None,
                        report=None)
            callbacks += [DVCLiveAtTrainerStep(live), DVCLiveCallback(live=live),
                          RecordCallback(rt, claim.run_id if claim else None, progress)]
        if request.stop_after_step:
            callbacks.append(StopAfterStep(request.stop_after_step))
        trainer = VideoBertTrainer(model=model, args=args, train_dataset=train_set,
                                   eval_dataset=eval_set if evaluate else None, data_collator=collator,
                                   eval_collator_factory=seeded_eval_collator(collator), callbacks=callbacks)
        if progress is not None:  # the caller shows progress: no log dicts of transformers' own
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        step = trainer.state.global_step
        stopped = step < tp.max_steps
        metrics = _final_metrics(trainer, evaluate)
        result = TrainResult(key, "stopped" if stopped else "done", corpus.content_hash, corpus.codebook_hash,
                             str(out_dir), step, _step_of(resume) if resume else None, metrics)
        if not main:
            return result
        assert claim is not None
        if stopped:  # its last checkpoint was saved by StopAfterStep: resumable
            repo.finish_training_run(rt.db, claim.run_id, StageStatus.FAILED,
                                     error=f"stopped after step {step} of {tp.max_steps} (resumable)")
        else:
            result.loss_curve, result.model_prefix = _write_final(rt, trainer, work, out_dir, bert_dir, key, corpus,
                                                                  metrics, params)
            repo.finish_training_run(rt.db, claim.run_id, StageStatus.DONE, metrics=metrics)
        result.checkpoints = repo.training_runs(rt.db, key)[0]["checkpoints"]
        return result
    except BaseException as exc:
        if claim is not None:
            repo.finish_training_run(rt.db, claim.run_id, StageStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise


def _datasets(rt: Runtime, corpus: Corpus) -> tuple[Any, Any]:
    """The train and validation splits as memory-mapped `datasets.Dataset`s (cached in the data folder)."""
    from datasets import Dataset

    cache = str(rt.cache_dir() / "hf-datasets")
    splits = []
    for split in ("train", "validation"):
        files = corpus.files(split)
        rows = sum(corpus.doc["shards"][f.name]["rows"] for f in files)
        splits.append(Dataset.from_parquet([str(f) for f in files], cache_dir=cache,
                                           columns=list(TRAIN_COLUMNS)) if rows else None)
    if splits[0] is None:
        raise DatasetError(f"corpus {corpus.content_hash[:16]} has no training examples")
    return splits[0], splits[1]


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1])


def _resume_point(rt: Runtime, work: Path, recorded: list[dict[str, Any]]) -> Path | None:
    """The checkpoint to resume from: the newest that verifies. A local one whose step is recorded must match its
    recorded sha256 (else the store's copy is fetched in its place); a recorded one is fetched from the store (a run
    that continues on another machine), every file checked; one that does not verify is skipped, with a warning
    naming it, for the next older one (a damaged newest checkpoint no longer blocks resuming for good)."""
    from videobert.core.errors import IntegrityError, StoreError
    from videobert.training.store import folder_digest

    by_step = {int(c["step"]): c for c in recorded}
    local = {_step_of(p): p for p in work.glob("checkpoint-*") if (p / "trainer_state.json").exists()}
    for step in sorted(set(local) | set(by_step), reverse=True):
        record = by_step.get(step)
        if step in local:
            if record is None or not record.get("sha256") or folder_digest(local[step]) == record["sha256"]:
                return local[step]  # verified, or written here and not recorded yet (nothing to check it against)
            log.warning("local checkpoint %s does not match its recorded sha256: skipped, the store's copy is "
                        "fetched instead", local[step])
            shutil.rmtree(local[step], ignore_errors=True)  # a fetched copy's marker would otherwise keep it
        if record is None:
            continue
        dest = work / f"checkpoint-{step}"
        try:
            fetch_folder(rt, record["prefix"], dest)
        except (IntegrityError, StoreError) as exc:
            log.warning("checkpoint at step %d in the store does not verify (%s): skipped", step, str(exc)[:200])
            shutil.rmtree(dest, ignore_errors=True)
            continue
        return dest
    return None


def _final_metrics(trainer: Any, evaluate: bool) -> dict[str, float]:
    """The last validation figures (evaluated again when the last step was not an evaluation step)."""
    logs = [entry for entry in trainer.state.log_history if any(k.startswith("eval_") for k in entry)]
    if evaluate and (not logs or logs[-1].get("step") != trainer.state.global_step):
        trainer.evaluate()
        logs = [entry for entry in trainer.state.log_history if any(k.startswith("eval_") for k in entry)]
    out = {k: float(v) for k, v in (logs[-1] if logs else {}).items()
           if k.startswith("eval_") and not k.endswith(TIMING_SUFFIXES)}
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    if train_logs:
        out["train_loss"] = float(train_logs[-1]["loss"])
    out["step"] = float(trainer.state.global_step)
    return out


def _write_final(rt: Runtime, trainer: Any, work: Path, out_dir: Path, bert_dir: str, key: str, corpus: Corpus,
                 metrics: dict[str, float], params: Params) -> tuple[str, str]:
    """The final model folder (model, tokenizer, metrics.json, loss curve, DVCLive logs, run.json), written
    atomically, and its copy in the store; returns (loss curve path, store prefix)."""
    from videobert.training.plots import loss_curve_png

    with staged_dir(out_dir) as folder:
        trainer.save_model(str(folder))
        for name in TOKENIZER_FILES:
            if (Path(bert_dir) / name).exists():
                shutil.copy2(Path(bert_dir) / name, folder / name)
        write_json(folder / "metrics.json", metrics)
        loss_curve_png(folder / "loss.png", trainer.state.log_history)
        if (work / "dvclive").exists():
            shutil.copytree(work / "dvclive", folder / "dvclive")
        write_json(folder / "run.json", {"run_key": key, "corpus": corpus.content_hash,
                                         "codebook": corpus.codebook_hash, "bert_model": str(bert_dir),
                                         "params": {"model": params.model.model_dump(mode="json"),
                                                    "train": params.train.model_dump(mode="json")}})
        for f in folder.glob("training_args.bin"):
            f.unlink()  # pickled arguments: not needed to load the model
    prefix, _ = put_folder(rt, MODELS, out_dir)
    return str(out_dir / "loss.png"), prefix


def _fetch_final(rt: Runtime, run: dict[str, Any], out_dir: Path) -> None:
    """A finished run's final model, fetched from the store into `out_dir` (a skipped run on a new machine)."""
    prefixes = [k for k in rt.store.list(f"{MODELS}/")]
    want = run["run_key"]
    for key in prefixes:
        if key.endswith("/run.json") and rt.store.get_json(key).get("run_key") == want:  # type: ignore[union-attr]
            fetch_folder(rt, key.rsplit("/", 1)[0] + "/", out_dir)
            return
    raise SettingsError(f"training run {want[:16]} is done but its final model is not in {rt.store.describe()}: "
                        "train again with --force")


def resolve_model(rt: Runtime, ref: str | None) -> tuple[Path, str]:
    """The trained model named by `ref`, as a local folder, and where it came from: a folder with a config.json
    (a relative path resolves against this process's working folder), as it is; else the key (or a unique prefix)
    of a finished training run, or empty for the latest finished one, its final model fetched from the store into
    the data folder's cache (so any worker can evaluate a model another trained)."""
    from videobert.db import repository as repo
    from videobert.db.models import StageStatus

    given = (ref or "").strip()
    if given:
        path = Path(given).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        if (path / "config.json").is_file():
            return path, str(path)
        if path.exists() or not is_hex(given):
            raise SettingsError(f"{path} is not a trained model folder (no config.json; relative paths resolve "
                                f"against {Path.cwd()}) and {given!r} is not a training run key")
    runs = [{**r, "content_hash": r["run_key"]} for r in repo.training_runs(rt.db)
            if r["status"] == StageStatus.DONE and r["run_key"]]
    run = repo.pick_version(runs, given or None, "finished training run",
                            "train one first (`videobert train` or the train flow)")
    dest = rt.cache_dir() / MODELS / run["run_key"]
    _fetch_final(rt, run, dest)
    return dest, f"training run {run['run_key']}"


def train_distributed(params: str | Path | Params | None, request: TrainRequest, nproc_per_node: int,
                      timeout_s: float | None = None) -> TrainResult:
    """`train` in `nproc_per_node` processes under torchrun (DDP; gloo on CPU, NCCL on GPUs) on this machine;
    the result of the main process. `params`: a params file, or the values themselves (a run's overridden ones,
    handed to the processes as a file). Several machines: run torchrun yourself (see the README)."""
    import subprocess
    import sys
    import tempfile
    from dataclasses import asdict

    with tempfile.TemporaryDirectory(prefix="videobert-train-") as tmp:
        req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req.write_text(json.dumps(asdict(request)))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
               "-m", "videobert.training.worker", "--request", str(req), "--result", str(res)]
        params_file = write_params(params, Path(tmp) / "params.yaml") if isinstance(params, Params) else params
        if params_file:
            cmd += ["--params", str(params_file)]
        log.info("launching %s", " ".join(cmd))
        done = subprocess.run(cmd, timeout=timeout_s, check=False)
        if done.returncode != 0 or not res.exists():
            raise RuntimeError(f"torchrun with {nproc_per_node} processes exited with code {done.returncode}")
        return TrainResult(**json.loads(res.read_text()))
