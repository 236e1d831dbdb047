"""transformers' `Trainer` for VideoBERT: per-objective losses in the training log, validation loss and accuracy
per objective, a fixed validation masking, and the callbacks that put checkpoints and metrics where the
pipeline keeps them (no Prefect here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import EvalPrediction

from videobert_model.collator import VideoBertCollator
from videobert_model.modeling_videobert import IGNORE_INDEX

log = logging.getLogger(__name__)

OBJECTIVES = ("text", "visual", "alignment")
# per-example validation statistics, in this column order: for each objective, loss sum, scored count, correct
STAT_COLUMNS = tuple(f"{o}_{s}" for o in OBJECTIVES for s in ("loss_sum", "count", "correct"))
EVAL_MASK_SEED = 1234  # validation masks the same positions at every evaluation, without touching training's RNG


def example_stats(outputs: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(batch, len(STAT_COLUMNS)) float64: each example's summed loss, scored positions and correct predictions
    per objective (summed over a validation set, they give exact per-objective means and accuracies)."""
    batch = inputs["input_ids"].shape[0]
    device = inputs["input_ids"].device
    stats = torch.zeros((batch, len(STAT_COLUMNS)), dtype=torch.float64, device=device)
    for i, (name, logits) in enumerate((("text", outputs.text_logits), ("visual", outputs.visual_logits))):
        labels = inputs.get(f"{name}_labels")
        if logits is None or labels is None:
            continue
        scored = labels != IGNORE_INDEX
        rows = scored.nonzero()[:, 0]
        target = labels[scored]
        losses = F.cross_entropy(logits.float(), target, reduction="none").double()
        correct = (logits.argmax(-1) == target).double()
        stats[:, 3 * i].index_add_(0, rows, losses)
        stats[:, 3 * i + 1].index_add_(0, rows, torch.ones_like(losses))
        stats[:, 3 * i + 2].index_add_(0, rows, correct)
    labels = inputs.get("alignment_labels")
    if outputs.alignment_logits is not None and labels is not None:
        paired = labels != IGNORE_INDEX
        if paired.any():
            logits = outputs.alignment_logits.float()
            losses = F.cross_entropy(logits, labels.clamp(min=0), reduction="none").double()
            stats[:, 6] = torch.where(paired, losses, torch.zeros_like(losses))
            stats[:, 7] = paired.double()
            stats[:, 8] = ((logits.argmax(-1) == labels) & paired).double()
    return stats


def metrics_from_stats(stats: np.ndarray) -> dict[str, float]:
    """Validation figures from summed per-example statistics: `<objective>_loss` and `<objective>_accuracy` for
    every objective with scored positions in the set."""
    total = np.asarray(stats, dtype=np.float64).reshape(-1, len(STAT_COLUMNS)).sum(axis=0)
    out: dict[str, float] = {}
    for i, name in enumerate(OBJECTIVES):
        loss_sum, count, correct = total[3 * i: 3 * i + 3]
        if count > 0:
            out[f"{name}_loss"] = float(loss_sum / count)
            out[f"{name}_accuracy"] = float(correct / count)
            out[f"{name}_scored"] = float(count)
    return out


def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
    return metrics_from_stats(prediction.predictions)


class VideoBertTrainer(Trainer):
    """`Trainer` with VideoBERT's per-objective losses logged, and validation statistics per objective."""

    def __init__(self, *args: Any, eval_collator_factory: Callable[[], VideoBertCollator] | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("compute_metrics", compute_metrics)
        super().__init__(*args, **kwargs)
        self.empty_batches = 0
        self._masker = self.data_collator  # a VideoBertCollator with defer_masking: it masks at the step
        self._eval_collator_factory = eval_collator_factory
        self._objective_sums: dict[str, torch.Tensor] = {}
        self._objective_counts: dict[str, int] = {}

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if "text_maskable" in inputs:  # masked here, after transformers restored a resumed run's RNG
            inputs = self._masker.mask_batch(inputs)
        outputs = model(**inputs)
        if outputs.loss is None:  # nothing masked and no pair (tiny batches of short examples): a step of no gradient
            self.empty_batches += 1
            log.warning("a training batch with no scored position (%d so far): raise the masking probabilities or "
                        "the batch size if this is frequent", self.empty_batches)
            loss = outputs.last_hidden_state.sum() * 0.0
            return (loss, outputs) if return_outputs else loss
        for name in OBJECTIVES:
            value = getattr(outputs, f"{name}_loss")
            if value is not None:
                self._objective_sums[name] = self._objective_sums.get(name, 0.0) + value.detach()
                self._objective_counts[name] = self._objective_counts.get(name, 0) + 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._objective_counts:  # a training log: add the mean loss of each objective
            for name, count in self._objective_counts.items():
                value = self._objective_sums[name]
                logs[f"{name}_loss"] = round(float(value) / count, 4)
            self._objective_sums.clear()
            self._objective_counts.clear()
        super().log(logs, start_time)

    def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
        if self._eval_collator_factory is None:
            return super().get_eval_dataloader(eval_dataset)
        training_collator = self.data_collator
        self.data_collator = self._eval_collator_factory()
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = training_collator

    def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None) -> tuple[Any, Any, Any]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            outputs = model(**inputs)
        loss = outputs.loss.detach() if outputs.loss is not None else None
        if prediction_loss_only:
            return loss, None, None
        stats = example_stats(outputs, inputs)
        return loss, stats, torch.zeros((stats.shape[0], 1), device=stats.device)


def seeded_eval_collator(collator: VideoBertCollator) -> Callable[[], VideoBertCollator]:
    """A factory of copies of `collator` whose masks come from a generator seeded the same way every time."""
    from dataclasses import replace

    return lambda: replace(collator, generator=torch.Generator().manual_seed(EVAL_MASK_SEED), defer_masking=False)


class StopAfterStep(TrainerCallback):
    """Stops training after `step` (a run cut short on purpose, e.g. to be resumed later; tests use it)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> TrainerControl:
        if state.global_step >= self.step:
            control.should_training_stop = True
            control.should_save = True  # a full checkpoint (weights, optimizer, scheduler, RNG): resumable
        return control


def is_loss(name: str) -> bool:
    """A logged figure that is a loss (`loss`, `eval_loss`, `text_loss` ...)."""
    return name == "loss" or name.endswith("_loss")


class StopOnNonFiniteLoss(TrainerCallback):
    """Stops the run with TrainingDivergedError, naming the step and the figure, when a logged loss is NaN or
    infinite (first in the callback list, so nothing records the non-finite value). Other figures (a gradient norm
    that overflows) are left to the recorders, which skip them."""

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        from videobert.core.errors import TrainingDivergedError

        bad = {k: v for k, v in (logs or {}).items()
               if is_loss(k) and isinstance(v, (int, float)) and not np.isfinite(v)}
        if bad:
            raise TrainingDivergedError(
                f"training diverged at step {state.global_step}: " + ", ".join(f"{k}={v}" for k, v in bad.items())
                + f" (learning rate {args.learning_rate:g}: lower train.learning_rate, or raise warmup_steps)")


class DVCLiveAtTrainerStep(TrainerCallback):
    """Gives DVCLive the trainer's global step before transformers' DVCLiveCallback logs (which counts its own log
    calls otherwise: a curve's x would be the number of logs so far, and a resumed run would shift it)."""

    def __init__(self, live: Any) -> None:
        self.live = live

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        self.live.step = state.global_step


def truncate_dvclive(folder: Any, step: int) -> int:
    """Drop the rows after `step` from a DVCLive folder's metric files (`plots/metrics/**/*.tsv`), as a run resumed
    from that step will log them again; returns how many rows were dropped."""
    from pathlib import Path

    dropped = 0
    for tsv in sorted(Path(folder).glob("plots/metrics/**/*.tsv")):
        lines = tsv.read_text().splitlines()
        if not lines:
            continue
        header, rows = lines[0], lines[1:]
        column = header.split("\t").index("step") if "step" in header.split("\t") else None
        if column is None:
            continue
        kept = [r for r in rows if int(float(r.split("\t")[column])) <= step]
        dropped += len(rows) - len(kept)
        tsv.write_text("\n".join([header, *kept]) + "\n")
    return dropped


class RecordCallback(TrainerCallback):
    """Puts every checkpoint in the store and the run's database row, every logged figure in the database, and
    reports progress (the main process only)."""

    def __init__(self, rt: Any, run_id: int | None, progress: Any = None) -> None:
        self.rt, self.run_id, self.progress = rt, run_id, progress

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        from pathlib import Path

        from videobert.db import repository as repo
        from videobert.training.store import CHECKPOINTS, put_folder

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.run_id is None or not folder.exists():
            return
        prefix, digest = put_folder(self.rt, CHECKPOINTS, folder)
        repo.record_checkpoint(self.rt.db, self.run_id, step=state.global_step, prefix=prefix, sha256=digest)
        log.info("checkpoint at step %d: %s", state.global_step, prefix)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        from videobert.db import repository as repo

        if not logs or self.run_id is None:
            return
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        skipped = sorted(k for k, v in values.items() if not np.isfinite(v))  # e.g. an overflowing gradient norm
        if skipped:
            log.warning("step %d: %s not finite, not recorded", state.global_step, ", ".join(skipped))
            values = {k: v for k, v in values.items() if k not in skipped}
        split = "validation" if any(k.startswith("eval_") for k in values) else "train"
        repo.log_training_metrics(self.rt.db, self.run_id, state.global_step, split, values)
        if self.progress is not None:
            self.progress(state.global_step, state.max_steps, values)
