"""The manifest: every video whose `features` stage is done with the current parameters, with the key and sha256
of its features and frames (sorted by id: the same videos give the same bytes); videos with stale features are
listed apart. Beside it, the sentences index: the sentences artifact (key, sha256, method, language) of every
manifest video whose punctuate stage is done with the current parameters, and the identity of the tokenizer
(VIDEOBERT_BERT_MODEL) that the corpus will read them with.

They are two files so that the codebook (which reads the manifest) is not refitted when only sentences change:
`dvc repro` then re-runs the corpus alone."""

from __future__ import annotations

from typing import Any

from videobert.core.params import Params
from videobert.core.runtime import Runtime
from videobert.dataset.corpus import tokenizer_identity
from videobert.db import repository as repo
from videobert.db.models import StageStatus
from videobert.features.stage import FEATURES, FEATURES_ARTIFACT, FRAMES_ARTIFACT, features_fingerprint
from videobert.ingest.stages import (
    DOWNLOAD,
    PUNCTUATE,
    SENTENCES_ARTIFACT,
    TRANSCRIPT,
    TRANSCRIPT_ARTIFACT,
    VIDEO_ARTIFACT,
    punctuate_fingerprint,
)


def build_manifest(rt: Runtime, params: Params) -> dict[str, Any]:
    """The videos whose features are done and current, with their artifacts; stale ones are listed apart."""
    views = repo.stage_views(rt.db, [FEATURES.name])
    done = {vid: v for (vid, _), v in views.items() if v.status == StageStatus.DONE}
    downloads = repo.stage_views(rt.db, [DOWNLOAD.name], sorted(done))
    videos, stale = [], []
    for vid in sorted(done):
        view = done[vid]
        dview = downloads.get((vid, DOWNLOAD.name))
        if dview is None or dview.status != StageStatus.DONE:
            stale.append(vid)
            continue
        if view.fingerprint != features_fingerprint(rt, params, dview.artifact(VIDEO_ARTIFACT).sha256):
            stale.append(vid)  # made with other features parameters or another extractor: re-run ingest
            continue
        videos.append({
            "id": vid,
            "clips": int(view.outcome.get("clips", 0)),
            "features": view.artifacts[FEATURES_ARTIFACT],
            "frames": view.artifacts[FRAMES_ARTIFACT],
        })
    extractor = rt.extractor(params.features)
    return {
        "extractor": extractor.identity(),
        "dim": extractor.dim,
        "features_params": params.features.fingerprinted(),
        "videos": videos,
        "clips": sum(v["clips"] for v in videos),
        "stale": stale,
    }


def build_sentences_index(rt: Runtime, manifest: dict[str, Any], params: Params) -> dict[str, Any]:
    """The sentences of the manifest's videos whose punctuate stage is done and current (others listed apart)."""
    ids = [v["id"] for v in manifest["videos"]]
    views = repo.stage_views(rt.db, [TRANSCRIPT.name, PUNCTUATE.name], ids)
    videos: dict[str, Any] = {}
    stale: list[str] = []
    for vid in ids:
        pview, tview = views.get((vid, PUNCTUATE.name)), views.get((vid, TRANSCRIPT.name))
        if pview is None or pview.status != StageStatus.DONE or tview is None or tview.status != StageStatus.DONE:
            continue  # no sentences (yet): the video gives video-only examples
        if pview.fingerprint != punctuate_fingerprint(rt, params, tview.artifact(TRANSCRIPT_ARTIFACT).sha256):
            stale.append(vid)
            continue
        videos[vid] = {**pview.artifacts[SENTENCES_ARTIFACT], "method": pview.outcome.get("method"),
                       "language": pview.outcome.get("language"), "english": pview.outcome.get("english"),
                       "sentences": int(pview.outcome.get("sentences", 0))}
    # the tokenizer that will read them: a new VIDEOBERT_BERT_MODEL changes this file, so DVC rebuilds the corpus
    return {"videos": videos, "stale": stale, "tokenizer": tokenizer_identity(rt.settings.bert_model)}
