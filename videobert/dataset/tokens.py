"""The `tokens` stage of one video: its clip features labelled with a codebook (one token per clip, with the
clip times), fingerprinted with the codebook hash; and the index of every manifest video's tokens."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from videobert.core.fingerprint import stage_fingerprint
from videobert.core.runtime import Runtime
from videobert.core.stages import (
    DEFAULT_OPTIONS,
    StageOptions,
    StageOutput,
    StageResult,
    StageSpec,
    decide,
    run_derived_stage,
)
from videobert.core.storage import ObjectInfo, keys
from videobert.dataset.files import DatasetError
from videobert.db import repository as repo
from videobert.db.models import StageStatus
from videobert.features.clips import load_features
from videobert.features.stage import FEATURES, FEATURES_ARTIFACT
from videobert_model.visual_tokenizer import VisualCodebook

TOKENS_ARTIFACT = "tokens"
TOKENS = StageSpec("tokens", "1", reads=(FEATURES.name, FEATURES_ARTIFACT))


def tokens_fingerprint(features_sha256: str, codebook_hash: str) -> str:
    """Depends on the video's features and the codebook."""
    return stage_fingerprint(TOKENS.name, TOKENS.version, {"codebook": codebook_hash}, {"features": features_sha256})


def run_tokens(rt: Runtime, video_id: str, book: VisualCodebook, opts: StageOptions = DEFAULT_OPTIONS) -> StageResult:
    """Label one video's clips: `videos/<id>/tokens/tokens.json` ({codebook, tokens, start, end})."""
    codebook_hash = book.content_hash()

    def body(info: ObjectInfo) -> StageOutput:
        feats = load_features(rt.store, info.key, verify=True)
        if len(feats) and feats.features.shape[1] != book.dim:
            raise DatasetError(f"features of dimension {feats.features.shape[1]} but the codebook expects {book.dim}")
        tokens = book.label(feats.features.astype(np.float32)) if len(feats) else np.zeros(0, np.int64)
        doc = {"codebook": codebook_hash, "tokens": tokens.tolist(),
               "start": [round(float(x), 4) for x in feats.start], "end": [round(float(x), 4) for x in feats.end]}
        stored = rt.store.put_json(keys.video_artifact(video_id, TOKENS.name, "tokens.json"), doc)
        return StageOutput({TOKENS_ARTIFACT: stored}, {"clips": len(tokens), "codebook": codebook_hash,
                                                        "distinct_tokens": int(len(set(tokens.tolist())))})

    return run_derived_stage(rt, video_id, TOKENS, lambda src: tokens_fingerprint(src.sha256, codebook_hash), body,
                             opts)


def tokens_todo(rt: Runtime, manifest: dict[str, Any], codebook_hash: str,
                opts: StageOptions = DEFAULT_OPTIONS) -> tuple[list[str], dict[str, int]]:
    """The manifest videos whose tokens are not done with these features and this codebook, and the skip
    reasons of the others (decided from the database alone, before any task is submitted)."""
    ids = [v["id"] for v in manifest["videos"]]
    views = repo.stage_views(rt.db, [TOKENS.name], ids)
    todo: list[str] = []
    skipped: dict[str, int] = {}
    for v in manifest["videos"]:
        why = decide(views.get((v["id"], TOKENS.name)), tokens_fingerprint(v["features"]["sha256"], codebook_hash), opts)
        if why is None:
            todo.append(v["id"])
        else:
            skipped[why] = skipped.get(why, 0) + 1
    return todo, skipped


def tokens_index(rt: Runtime, manifest: dict[str, Any], codebook_hash: str) -> dict[str, Any]:
    """Where every manifest video's tokens are (for the DVC `tokens` stage's output), checked against the codebook."""
    ids = [v["id"] for v in manifest["videos"]]
    views = repo.stage_views(rt.db, [TOKENS.name], ids)
    out: dict[str, Any] = {"codebook": codebook_hash, "videos": {}, "missing": []}
    for vid in ids:
        view = views.get((vid, TOKENS.name))
        if view is None or view.status != StageStatus.DONE or view.outcome.get("codebook") != codebook_hash:
            out["missing"].append(vid)
            continue
        out["videos"][vid] = {**view.artifacts[TOKENS_ARTIFACT], "clips": view.outcome.get("clips")}
    return out


def index_codebook(index: dict[str, Any], where: object, codebook: str | None) -> str | None:
    """The codebook whose ids a tokens index must hold for a model that reads `codebook` (None: any one, the
    index's own); DatasetError when the index names another."""
    if codebook and index.get("codebook") != codebook:
        raise DatasetError(f"the tokens index {where} is for codebook {str(index.get('codebook'))[:16]}, the model "
                           f"reads codebook {codebook[:16]}: label the videos with the model's codebook "
                           f"(videobert dataset tokens --codebook {codebook[:16]})")
    return codebook or index.get("codebook")


def indexed_tokens(rt: Runtime, video_id: str, ref: dict[str, Any], codebook: str | None) -> dict[str, Any]:
    """A video's tokens document as a tokens index lists it, checked: made with `codebook` (when given) and the
    bytes the index recorded. A video labelled again since the index was written (one tokens stage per video:
    another codebook's labels replace the last ones) gets DatasetError naming both codebooks, not other scores."""
    data = rt.store.get_bytes(ref["key"], verify=True)
    doc = json.loads(data)
    made_with = str(doc.get("codebook"))
    if codebook and made_with != codebook:
        raise DatasetError(f"video {video_id}: its tokens in the store were made with codebook {made_with[:16]}, not "
                           f"{codebook[:16]} (labelled again since the index was written?): run videobert dataset "
                           f"tokens --codebook {codebook[:16]}")
    if ref.get("sha256") and hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise DatasetError(f"video {video_id}: its tokens changed since the tokens index was written: run videobert "
                           "dataset tokens again")
    return doc
