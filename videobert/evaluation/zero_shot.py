"""Zero-shot action classification of a trained VideoBERT on annotations in the YouCook II format.

For every annotated segment of the scored split (`evaluate.subset`) whose video has tokens made with the model's
codebook: the segment's video tokens (the clips whose midpoint lies in [start, end)), the model's verbs and
objects ranked at the template's two masks (`videobert_model.inference`), and the segment sentence's ground truth
(`youcook2.py`). Vocabularies come from the ground truth of the vocabulary split (`evaluate.vocabulary_subset`),
restricted to single-WordPiece words; a segment whose true verb or object is not in them is not scored (counted).
Scores: top-1 and top-k accuracy for verbs and objects beside chance (k / vocabulary size) and the frequency
prior; the control: the same with the video tokens shuffled across the scored segments (a model that reads the
video falls to about chance; one that ignores it does not move).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videobert.core.model_folder import check_model_folder
from videobert.core.params import EvaluateParams
from videobert.core.runtime import Runtime
from videobert.core.storage import keys, sha256_file
from videobert.dataset.corpus import read_index
from videobert.dataset.files import DatasetError, staged_dir, write_json
from videobert.dataset.tokens import index_codebook, indexed_tokens
from videobert.evaluation.text_to_video import text_to_video_scores, token_classes

log = logging.getLogger(__name__)

CODE_VERSION = "1"


@dataclass
class ScoredSegment:
    video_id: str
    segment_id: int
    start: float
    end: float
    sentence: str
    verb: str
    object: str
    tokens: list[int]


def clips_in_segment(start: Sequence[float], end: Sequence[float], seg_start: float, seg_end: float) -> np.ndarray:
    """(clips,) bool: the clips whose midpoint lies in [seg_start, seg_end) (the corpus's alignment rule)."""
    mid = (np.asarray(start, dtype=np.float64) + np.asarray(end, dtype=np.float64)) / 2
    return (mid >= seg_start) & (mid < seg_end)


def segment_tokens(tokens: Sequence[int], start: Sequence[float], end: Sequence[float], seg_start: float,
                   seg_end: float) -> list[int]:
    """The tokens of the clips whose midpoint lies in [seg_start, seg_end) (the corpus's alignment rule)."""
    return [int(t) for t in np.asarray(tokens)[clips_in_segment(start, end, seg_start, seg_end)]]


def scores(rankings: Sequence[Sequence[str]], truths: Sequence[str], vocab: Sequence[str], k: int) -> dict[str, float]:
    """top-1 / top-k accuracy of rankings, chance (a uniformly random ranking) and the frequency prior (the
    vocabulary split's most frequent words first, whatever the video: `vocab` is in that order)."""
    from videobert.evaluation.metrics import chance_topk, frequency_prior_topk, topk_accuracy

    return {"top1": topk_accuracy(rankings, truths, 1), f"top{k}": topk_accuracy(rankings, truths, k),
            "chance_top1": chance_topk(len(vocab), 1), f"chance_top{k}": chance_topk(len(vocab), k),
            "prior_top1": frequency_prior_topk(vocab, truths, 1), f"prior_top{k}": frequency_prior_topk(vocab, truths, k)}


def evaluation_key(model_dir: Path, annotations: Path, tokens_index: Path, params: EvaluateParams) -> str:
    """sha256 of the model weights, the annotations, the tokens index, the params and this code's version."""
    parts = [sha256_file(model_dir / "model.safetensors")[0], sha256_file(annotations)[0],
             sha256_file(tokens_index)[0], json.dumps(params.fingerprinted(), sort_keys=True), CODE_VERSION]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def evaluate(rt: Runtime, model_dir: Path, annotations_path: Path, tokens_index_path: Path, params: EvaluateParams,
             out_dir: Path) -> dict[str, Any]:
    """Score a checkpoint folder on annotations; writes `out_dir` (metrics.json, segments.jsonl, confusion and
    text-to-video pictures) and records the run and every segment's result in the database; returns metrics."""
    from videobert.db import repository as repo
    from videobert.evaluation.ground_truth import segment_truths, truths_by_segment
    from videobert.evaluation.metrics import confusion_matrix, confusion_png
    from videobert.evaluation.pictures import strips_png
    from videobert.evaluation.vocabulary import derive_vocabularies
    from videobert.evaluation.youcook2 import load_annotations
    from videobert_model.inference import VideoBertInference

    check_model_folder(model_dir)
    inference = VideoBertInference.from_pretrained(model_dir)
    codebook = inference.config.codebook_hash
    index = read_index(tokens_index_path, "tokens index", "videos")
    tokens_codebook = index_codebook(index, tokens_index_path, codebook)  # before anything else is read
    annotations = load_annotations(annotations_path)
    all_truths = segment_truths(annotations)
    truths = {key: (t.truth.verb, t.truth.object) for key, t in truths_by_segment(all_truths).items()}
    verb_vocab, object_vocab = derive_vocabularies(all_truths, subset=params.vocabulary_subset,
                                                   max_verbs=params.max_verbs, max_objects=params.max_objects,
                                                   min_count=params.min_count, vocab=set(inference.tokenizer.get_vocab()))
    verbs, objects = list(verb_vocab.words), list(object_vocab.words)
    if not verbs or not objects:
        raise DatasetError(f"no verb or object vocabulary from the {params.vocabulary_subset!r} split of "
                           f"{annotations_path}")
    segments, counts = _scored_segments(rt, annotations, truths, index, params, set(verbs), set(objects),
                                        tokens_codebook)
    if not segments:
        raise DatasetError(f"no scorable segment in the {params.subset!r} split: {counts} (are the videos' tokens "
                           f"in {tokens_index_path}?)")
    log.info("zero-shot on %d segments of %d videos (%d verbs, %d objects)", len(segments),
             len({s.video_id for s in segments}), len(verbs), len(objects))
    k = params.top_k
    ranked = inference.zero_shot([s.tokens for s in segments], verbs, objects, params.template)
    metrics: dict[str, Any] = {
        "segments": len(segments), "videos": len({s.video_id for s in segments}), "verbs": len(verbs),
        "objects": len(objects), "skipped": counts,
        "ground_truth": all_truths[0].truth.method if all_truths else "none",
        "vocabulary": {"verbs_excluded_multi_wordpiece": len(verb_vocab.excluded),
                       "objects_excluded_multi_wordpiece": len(object_vocab.excluded)},
        "verb": scores([r[0].words for r in ranked], [s.verb for s in segments], verbs, k),
        "object": scores([r[1].words for r in ranked], [s.object for s in segments], objects, k),
    }
    if params.shuffle_control and len(segments) > 1:
        order = np.random.default_rng(params.seed).permutation(len(segments))
        shuffled = inference.zero_shot([segments[i].tokens for i in order], verbs, objects, params.template)
        metrics["shuffled_verb"] = scores([r[0].words for r in shuffled], [s.verb for s in segments], verbs, k)
        metrics["shuffled_object"] = scores([r[1].words for r in shuffled], [s.object for s in segments], objects, k)
    if params.feature_probe:
        from videobert.evaluation.feature_probe import feature_probe

        probe = feature_probe(rt, annotations, truths, params.vocabulary_subset,
                              [(s.video_id, s.segment_id, s.verb, s.object) for s in segments])
        if probe is not None:
            metrics["feature_probe"] = probe
    if params.text_to_video_sentences and codebook:
        measured = segments[: params.text_to_video_sentences]
        generated = [inference.text_to_video(s.sentence, params.text_to_video_tokens) for s in measured]
        classes = _token_classes(rt, codebook, index, annotations, truths)
        metrics["text_to_video"] = text_to_video_scores(generated, [(s.verb, s.object) for s in measured], classes,
                                                        len(verbs), len(objects), params.seed)
    key = evaluation_key(model_dir, annotations_path, tokens_index_path, params)
    with staged_dir(out_dir) as folder:
        write_json(folder / "metrics.json", metrics)
        with open(folder / "segments.jsonl", "w") as f:
            for s, (v, o) in zip(segments, ranked, strict=True):
                f.write(json.dumps({"video_id": s.video_id, "segment_id": s.segment_id, "start": s.start,
                                    "end": s.end, "sentence": s.sentence, "verb": s.verb, "object": s.object,
                                    "verb_top": v.words[:k], "object_top": o.words[:k]}) + "\n")
        for name, labels, truth, pred in (
                ("verbs", verbs, [s.verb for s in segments], [r[0].words[0] for r in ranked]),
                ("objects", objects, [s.object for s in segments], [r[1].words[0] for r in ranked])):
            shown = [w for w in labels if w in set(truth) | set(pred)]
            confusion_png(folder / f"confusion_{name}.png", confusion_matrix(truth, pred, shown), shown,
                          f"zero-shot {name}: rows truth, columns top-1 prediction")
        if params.strips and codebook:
            rows = []
            for s in _strip_segments(segments, params.strips):
                rows.append((f"{s.sentence}  (model)", inference.text_to_video(s.sentence, params.strip_tokens)))
                rows.append((f"{s.video_id} {s.start:.1f}-{s.end:.1f} s  (the video)", s.tokens[: params.strip_tokens]))
            strips_png(folder / "text_to_video.png", rows, _pictures_zip(rt, codebook))
    repo.record_evaluation(
        rt.db, key, model_sha256=sha256_file(model_dir / "model.safetensors")[0],
        annotations_sha256=sha256_file(annotations_path)[0], corpus_hash=inference.config.corpus_hash,
        codebook_hash=codebook, params=params.model_dump(mode="json"), metrics=metrics,
        results=[{"video_id": s.video_id, "segment_id": s.segment_id, "verb": s.verb, "object": s.object,
                  "verb_top": v.words[:k], "object_top": o.words[:k]} for s, (v, o) in zip(segments, ranked, strict=True)])
    return metrics


def _scored_segments(rt: Runtime, annotations: dict[str, Any], truths: dict[tuple[str, int], tuple[Any, Any]],
                     index: dict[str, Any], params: EvaluateParams, verbs: set[str], objects: set[str],
                     codebook: str | None) -> tuple[list[ScoredSegment], dict[str, int]]:
    """The scored split's segments with tokens (of `codebook`) and an in-vocabulary truth, and counts of those left
    out."""
    counts = {"no_tokens": 0, "no_clips": 0, "verb_not_in_vocabulary": 0, "object_not_in_vocabulary": 0}
    out: list[ScoredSegment] = []
    for vid in sorted(annotations):
        video = annotations[vid]
        if video.subset != params.subset:
            continue
        ref = index["videos"].get(vid)
        if ref is None:
            counts["no_tokens"] += len(video.segments)
            continue
        doc = indexed_tokens(rt, vid, ref, codebook)
        for seg in video.segments:
            verb, obj = truths.get((vid, seg.id), (None, None))
            if verb not in verbs:
                counts["verb_not_in_vocabulary"] += 1
                continue
            if obj not in objects:
                counts["object_not_in_vocabulary"] += 1
                continue
            tokens = segment_tokens(doc["tokens"], doc["start"], doc["end"], seg.start, seg.end)  # type: ignore[index]
            if not tokens:
                counts["no_clips"] += 1
                continue
            out.append(ScoredSegment(vid, seg.id, seg.start, seg.end, seg.sentence, verb, obj, tokens))
    return out, counts


def _strip_segments(segments: Sequence[ScoredSegment], n: int) -> list[ScoredSegment]:
    """Up to `n` segments with different (verb, object) classes, in order."""
    seen: set[tuple[str, str]] = set()
    out = []
    for s in segments:
        if (s.verb, s.object) not in seen:
            seen.add((s.verb, s.object))
            out.append(s)
        if len(out) == n:
            break
    return out


def _codebook_file(rt: Runtime, codebook: str, name: str) -> Path:
    """A file of the codebook's folder (`pictures.zip`, `pictures.json`), fetched from the store into the cache once."""
    from videobert.dataset.codebook import CODEBOOKS

    path = rt.cache_dir() / CODEBOOKS / codebook / name
    if not path.exists():
        rt.store.get_file(keys.dataset_artifact(CODEBOOKS, codebook, name), path, verify=True)
    return path


def _pictures_zip(rt: Runtime, codebook: str) -> Path:
    """The codebook's token pictures, fetched from the store into the cache once."""
    return _codebook_file(rt, codebook, "pictures.zip")


def _token_classes(rt: Runtime, codebook: str, index: dict[str, Any], annotations: dict[str, Any],
                   truths: dict[tuple[str, int], tuple[Any, Any]]) -> dict[int, tuple[str, str]]:
    """Each token's (verb, object): that of the annotated segment its picture's training clip lies in."""
    pictures = json.loads(_codebook_file(rt, codebook, "pictures.json").read_text())
    clip_times: dict[str, tuple[list[float], list[float]]] = {}
    segments: dict[str, list[tuple[float, float, tuple[str, str] | None]]] = {}
    for vid in sorted({p["video"] for p in pictures.values()}):
        ref = index["videos"].get(vid)
        if ref is None or vid not in annotations:
            continue
        doc = indexed_tokens(rt, vid, ref, codebook)
        clip_times[vid] = (doc["start"], doc["end"])
        segments[vid] = [(seg.start, seg.end, truths.get((vid, seg.id))) for seg in annotations[vid].segments]
    return token_classes(pictures, clip_times, segments)


def video_tokens(rt: Runtime, video_id: str, codebook: str | None, start: float | None = None,
                 end: float | None = None) -> list[int]:
    """A video's tokens (its done `tokens` stage), of the clips whose midpoint is in [start, end) when given;
    DatasetError when it has none, or none made with `codebook`."""
    from videobert.dataset.tokens import TOKENS, TOKENS_ARTIFACT
    from videobert.db import repository as repo

    repo.get_video(rt.db, video_id)  # UnknownVideoError names an unknown id
    view = repo.stage_views(rt.db, [TOKENS.name], [video_id]).get((video_id, TOKENS.name))
    if view is None or view.status != "done":
        raise DatasetError(f"video {video_id} has no tokens: run `videobert dataset tokens` (or the dataset flow)")
    doc = rt.store.get_json(view.artifact(TOKENS_ARTIFACT).key, verify=True)
    if codebook and doc["codebook"] != codebook:  # type: ignore[index]
        raise DatasetError(f"video {video_id}: tokens made with codebook {doc['codebook'][:16]}, the model reads "  # type: ignore[index]
                           f"{codebook[:16]}")
    lo = -np.inf if start is None else start
    hi = np.inf if end is None else end
    return segment_tokens(doc["tokens"], doc["start"], doc["end"], lo, hi)  # type: ignore[index]
