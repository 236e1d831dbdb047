"""The manifest: every video whose `features` stage is done with the current parameters, with the key and sha256
of its features and frames (sorted by id: the same videos give the same bytes), its sentences when the punctuate
stage is done, and its tokens after the tokens stage. Videos with stale features are listed apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from videobert.core.params import Params
from videobert.core.runtime import Runtime
from videobert.dataset.files import DatasetError
from videobert.db import repository as repo
from videobert.db.models import StageStatus
from videobert.features.stage import FEATURES, FEATURES_ARTIFACT, FRAMES_ARTIFACT, features_fingerprint
from videobert.ingest.stages import DOWNLOAD, VIDEO_ARTIFACT


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


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest written by build_manifest; DatasetError when it is missing or malformed."""
    try:
        manifest = json.loads(Path(path).read_text())
        _ = manifest["videos"], manifest["dim"]
        return manifest
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"manifest {path} cannot be read: {exc}") from None


