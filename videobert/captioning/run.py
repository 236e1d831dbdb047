"""Captioning runs: a captioner trained on one split's segments and decoded on another's, then scored (no
Prefect: the captioning flow calls these).

A run has **rows**: `videobert+clip` (each clip's frozen-VideoBERT features, from the paper's fill-in-the-blank
template, beside its clip feature) and, with `caption.ablation`, `clip` (the clip features alone: the paper's
"S3D alone"). Both rows read the same segments, train with the same settings and seed, and are scored together,
so the gain of the VideoBERT features is measured in one run.

A row is named by its **run key**, sha256 of (VideoBERT weights, annotations, tokens index, the fingerprinted
`caption` params, the row, the pretrained BERT's identity, this code's version): the same row again replaces its
record. Each row writes `<out>/<row>/` (the captioner with its tokenizer, `predictions.jsonl`: one (reference,
prediction) per scored segment, `training.json`: the loss per epoch), puts the captioner in the store under
`captioners/<content hash>/` and the predictions under `captioners/<run key>/`, and records both in the
`captioning_runs` table; `score_rows` adds the metrics and writes `<out>/metrics.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videobert.captioning.data import CaptionSegment, load_segments
from videobert.core.errors import SettingsError
from videobert.core.params import CaptionParams
from videobert.core.runtime import Runtime
from videobert.core.storage import keys, sha256_file
from videobert.dataset.corpus import read_index
from videobert.dataset.files import DatasetError, staged_dir, write_json
from videobert.dataset.tokens import index_codebook

log = logging.getLogger(__name__)

CODE_VERSION = "1"  # bump when a change here changes what a run produces
CAPTIONERS = "captioners"  # store kind: captioners/<hash>/<file>
FULL, CLIP_ONLY = "videobert+clip", "clip"
ROW_DIRS = {FULL: "videobert_clip", CLIP_ONLY: "clip"}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

Progress = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, figures)


@dataclass
class CaptionRequest:
    """What to caption: a trained VideoBERT folder, annotations (YouCook II format), the tokens index, where."""

    checkpoint: str
    annotations: str
    tokens: str
    out: str
    bert_model: str | None = None  # the decoder's pretrained BERT; default VIDEOBERT_BERT_MODEL
    flow_run_id: str | None = None


@dataclass
class RowResult:
    """One trained and decoded row."""

    inputs: str
    run_key: str
    folder: str  # <out>/<row>/
    train_segments: int
    eval_segments: int
    steps: int
    training: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    model_prefix: str | None = None
    predictions_key: str | None = None


def rows_of(params: CaptionParams) -> list[str]:
    """The rows a run trains: with VideoBERT features, and the clip-only ablation when asked."""
    return [FULL, CLIP_ONLY] if params.ablation else [FULL]


def run_key(videobert_sha: str, annotations_sha: str, tokens_sha: str, params: CaptionParams, inputs: str,
            bert: str) -> str:
    doc = {"videobert": videobert_sha, "annotations": annotations_sha, "tokens": tokens_sha,
           "caption": params.fingerprinted(), "inputs": inputs, "bert": bert, "code": CODE_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def train_row(rt: Runtime, params: CaptionParams, request: CaptionRequest, inputs: str,
              progress: Progress | None = None) -> RowResult:
    """Train the captioner of one row on the training split, decode the scored split; see the module docstring."""
    import torch

    from videobert.core.model_folder import check_model_folder
    from videobert.db import repository as repo
    from videobert.db.models import StageStatus
    from videobert.evaluation.youcook2 import load_annotations
    from videobert.training.run import bert_identity
    from videobert_model.inference import VideoBertInference

    if inputs not in ROW_DIRS:
        raise ValueError(f"row {inputs!r} is not one of {', '.join(ROW_DIRS)}")
    checkpoint = Path(request.checkpoint)
    check_model_folder(checkpoint, hint="train VideoBERT first")
    bert_dir = request.bert_model or rt.settings.bert_model
    if not bert_dir or not (Path(bert_dir) / "config.json").exists():
        raise SettingsError(f"VIDEOBERT_BERT_MODEL={bert_dir!r} is not a pretrained BERT folder (config.json): the "
                            "captioner's decoder starts from it")
    inference = VideoBertInference.from_pretrained(checkpoint, device="cpu" if not torch.cuda.is_available() else None)
    inference.batch_size = params.videobert_batch_size
    codebook = inference.config.codebook_hash
    index = read_index(Path(request.tokens), "tokens index", "videos")
    annotations = load_annotations(request.annotations)
    segments, skipped = load_segments(rt, annotations, index, (params.train_subset, params.eval_subset),
                                      index_codebook(index, request.tokens, codebook))
    train_set = [s for s in segments if s.subset == params.train_subset]
    eval_set = [s for s in segments if s.subset == params.eval_subset]
    if params.train_videos is not None:
        kept = list(dict.fromkeys(s.video_id for s in train_set))[: params.train_videos]
        train_set = [s for s in train_set if s.video_id in set(kept)]
    if not train_set or not eval_set:
        raise DatasetError(f"captioning needs segments with tokens and features in both the {params.train_subset!r} "
                           f"({len(train_set)}) and the {params.eval_subset!r} ({len(eval_set)}) splits of "
                           f"{request.annotations}; left out: {skipped}")
    model_sha = sha256_file(checkpoint / "model.safetensors")[0]
    annotations_sha = sha256_file(Path(request.annotations))[0]
    key = run_key(model_sha, annotations_sha, sha256_file(Path(request.tokens))[0], params, inputs,
                  bert_identity(bert_dir))
    repo.start_captioning_run(rt.db, key, inputs=inputs, videobert_sha256=model_sha,
                              annotations_sha256=annotations_sha, codebook_hash=codebook,
                              params=params.model_dump(mode="json"), flow_run_id=request.flow_run_id)
    threads = torch.get_num_threads()
    try:
        if params.threads:
            torch.set_num_threads(params.threads)
        result = _train_and_decode(rt, params, request, inputs, inference, train_set, eval_set, key, bert_dir,
                                   model_sha, progress)
        result.skipped = skipped
        repo.finish_captioning_run(rt.db, key, StageStatus.DONE, training=result.training,
                                   model_prefix=result.model_prefix, predictions_key=result.predictions_key)
        return result
    except BaseException as exc:
        repo.finish_captioning_run(rt.db, key, StageStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        torch.set_num_threads(threads)


def segment_inputs(inference: Any, segments: list[CaptionSegment], inputs: str, params: CaptionParams) -> list[Any]:
    """The encoder input of each segment, (clips, input_dim): the row's ablation switch (`caption_inputs`)."""
    from videobert_model.modeling_captioner import caption_inputs

    if inputs == CLIP_ONLY:
        return [caption_inputs(s.clip_features[: params.max_clips], None) for s in segments]
    states = inference.caption_features([s.tokens[: params.max_clips] for s in segments], params.template)
    return [caption_inputs(s.clip_features[: len(v)], v) for s, v in zip(segments, states, strict=True)]


def _train_and_decode(rt: Runtime, params: CaptionParams, request: CaptionRequest, inputs: str, inference: Any,
                      train_set: list[CaptionSegment], eval_set: list[CaptionSegment], key: str, bert_dir: str,
                      model_sha: str, progress: Progress | None) -> RowResult:
    import torch
    from transformers import BertConfig, get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    from videobert.training.store import put_folder
    from videobert_model.modeling_captioner import VideoCaptioner, caption_vocabulary, collate, to_rows

    tokenizer = inference.tokenizer
    train_x = segment_inputs(inference, train_set, inputs, params)
    eval_x = segment_inputs(inference, eval_set, inputs, params)
    clip_dim = int(train_set[0].clip_features.shape[1])
    videobert_dim = int(train_x[0].shape[1]) - clip_dim
    wordpieces = [tokenizer(s.sentence, add_special_tokens=False)["input_ids"][: params.max_caption_tokens]
                  for s in train_set]
    specials = {"pad_token_id": tokenizer.pad_token_id, "decoder_start_token_id": tokenizer.cls_token_id,
                "bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}
    vocab_ids = caption_vocabulary(wordpieces, [tokenizer.pad_token_id, tokenizer.unk_token_id,
                                                tokenizer.cls_token_id, tokenizer.sep_token_id]) \
        if params.vocabulary == "training" else None
    if BertConfig.from_pretrained(bert_dir).vocab_size != tokenizer.vocab_size:
        raise SettingsError(f"the decoder's BERT ({bert_dir}) and the VideoBERT checkpoint's tokenizer have different "
                            "vocabularies: use the BERT it was trained from")
    torch.manual_seed(params.seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the pretrained BERT has no cross-attention: its load report is expected
    try:
        model, report = VideoCaptioner.from_bert_pretrained(
            bert_dir, vocab_ids=vocab_ids, input_dim=videobert_dim + clip_dim, videobert_dim=videobert_dim,
            clip_dim=clip_dim, inputs=inputs, num_hidden_layers=params.decoder_layers,
            encoder_layers=params.encoder_layers, hidden_dropout_prob=params.dropout,
            attention_probs_dropout_prob=params.dropout, label_smoothing=params.label_smoothing,
            videobert_hash=model_sha, codebook_hash=inference.config.codebook_hash, **specials)
    finally:
        hf_logging.set_verbosity(verbosity)
    if params.max_clips > model.config.max_position_embeddings:
        raise SettingsError(f"caption.max_clips {params.max_clips} exceeds the encoder's "
                            f"{model.config.max_position_embeddings} positions")
    log.info("captioner (%s): %d parameters, %d copied from %s, %d WordPieces; %d training and %d scored segments",
             inputs, model.num_parameters(), len(report["copied"]), bert_dir, model.config.vocab_size,
             len(train_set), len(eval_set))
    unk = to_rows([tokenizer.unk_token_id], vocab_ids, -1)[0]
    captions = [to_rows(c, vocab_ids, unk) for c in wordpieces]
    eval_captions = [to_rows(tokenizer(s.sentence, add_special_tokens=False)["input_ids"], vocab_ids, unk)
                     for s in eval_set]
    eos = model.config.eos_token_id

    def batch(xs: list[Any], cs: list[list[int]]) -> Any:
        return collate(xs, cs, eos_token_id=eos, max_clips=params.max_clips,
                       max_caption_tokens=params.max_caption_tokens)

    per_epoch = math.ceil(len(train_set) / params.batch_size)
    total = per_epoch * params.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(params.warmup_share * total), total)
    generator = torch.Generator().manual_seed(params.seed)
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(1, params.epochs + 1):
        model.train()
        order = torch.randperm(len(train_set), generator=generator).tolist()
        losses = []
        for start in range(0, len(order), params.batch_size):
            idx = order[start: start + params.batch_size]
            b = batch([train_x[i] for i in idx], [captions[i] for i in idx])
            loss = model(b.input_features, b.attention_mask, labels=b.labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            step += 1
        figures = {"epoch": float(epoch), "train_loss": sum(losses) / len(losses),
                   "eval_loss": _eval_loss(model, eval_x, eval_captions, batch, params.eval_batch_size)}
        history.append(figures)
        if progress is not None:
            progress(epoch, params.epochs, figures)
    predictions = decode(model, tokenizer, eval_x, params)
    folder = Path(request.out) / ROW_DIRS[inputs]
    training = {"train_segments": len(train_set), "eval_segments": len(eval_set), "steps": step,
                "parameters": model.num_parameters(), "history": history,
                "final_train_loss": history[-1]["train_loss"], "final_eval_loss": history[-1]["eval_loss"]}
    with staged_dir(folder) as staging:
        model.save_pretrained(str(staging / "model"))
        for name in TOKENIZER_FILES:
            if (Path(request.checkpoint) / name).exists():
                shutil.copy2(Path(request.checkpoint) / name, staging / "model" / name)
        with open(staging / "predictions.jsonl", "w") as f:
            for s, p in zip(eval_set, predictions, strict=True):
                f.write(json.dumps({"video_id": s.video_id, "segment_id": s.segment_id, "start": s.start,
                                    "end": s.end, "reference": s.sentence, "prediction": p}) + "\n")
        write_json(staging / "training.json", {"run_key": key, "inputs": inputs, **training})
    model_prefix, _ = put_folder(rt, CAPTIONERS, folder / "model")
    stored = rt.store.put_file(keys.dataset_artifact(CAPTIONERS, key, "predictions.jsonl"), folder / "predictions.jsonl")
    return RowResult(inputs, key, str(folder), len(train_set), len(eval_set), step, training,
                     model_prefix=model_prefix, predictions_key=stored.key)


def _eval_loss(model: Any, xs: list[Any], cs: list[list[int]], batch: Callable[..., Any], size: int) -> float:
    """Mean caption loss over the scored split (per WordPiece, batches weighted by their WordPieces)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(xs), size):
            b = batch(xs[start: start + size], cs[start: start + size])
            n = int((b.labels != -100).sum())
            total += float(model(b.input_features, b.attention_mask, labels=b.labels).loss) * n
            count += n
    return total / max(count, 1)


def decode(model: Any, tokenizer: Any, xs: list[Any], params: CaptionParams, beam_size: int | None = None) -> list[str]:
    """Captions of segment inputs by beam search (`beam_size`, default caption.beam_size; 1 is greedy)."""
    import torch

    from videobert_model.modeling_captioner import collate, to_wordpieces

    model.eval()
    out: list[str] = []
    with torch.no_grad():
        for start in range(0, len(xs), params.eval_batch_size):
            b = collate(xs[start: start + params.eval_batch_size], max_clips=params.max_clips)
            ids = model.generate(input_features=b.input_features, attention_mask=b.attention_mask,
                                 num_beams=beam_size or params.beam_size, do_sample=False,
                                 max_new_tokens=params.max_new_tokens, length_penalty=params.length_penalty,
                                 early_stopping=True, pad_token_id=model.config.pad_token_id)
            out += tokenizer.batch_decode([to_wordpieces(row, model.config.vocab_ids) for row in ids.tolist()],
                                          skip_special_tokens=True)
    return [p.strip() for p in out]


def read_predictions(folder: Path) -> list[dict[str, Any]]:
    """A row's per-segment (reference, prediction) records."""
    with open(Path(folder) / "predictions.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def score_rows(rt: Runtime, params: CaptionParams, out: Path, rows: list[RowResult]) -> dict[str, Any]:
    """Score every row's predictions (one METEOR process), record them, write `<out>/metrics.json`: {row: {metric:
    value, ...}, "examples": [...]} with the paper's scales; returns that document."""
    from videobert.captioning.metrics import score_captions
    from videobert.db import repository as repo

    runs = {}
    records = {}
    for row in rows:
        recs = read_predictions(Path(row.folder))
        records[row.inputs] = recs
        refs = {f"{r['video_id']}/{r['segment_id']}": [r["reference"]] for r in recs}
        preds = {f"{r['video_id']}/{r['segment_id']}": r["prediction"] for r in recs}
        runs[row.inputs] = (refs, preds)
    scores = score_captions(runs)
    doc: dict[str, Any] = {}
    for row in rows:
        doc[row.inputs] = {**scores[row.inputs], "segments": row.eval_segments, "train_segments": row.train_segments,
                           "final_eval_loss": row.training.get("final_eval_loss")}
        repo.set_captioning_metrics(rt.db, row.run_key, scores[row.inputs])
    first = rows[0].inputs
    doc["examples"] = [{"video_id": r["video_id"], "segment_id": r["segment_id"], "reference": r["reference"],
                        **{row.inputs: records[row.inputs][i]["prediction"] for row in rows}}
                       for i, r in enumerate(records[first][: params.examples])]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", doc)
    return doc
