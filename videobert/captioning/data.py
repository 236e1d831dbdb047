"""The captioned segments: every annotated segment (YouCook II format) of the wanted splits whose video has tokens
in the tokens index and done features, with its clips' features and tokens (the clips whose midpoint lies in the
segment, the corpus's alignment rule) and its reference sentence.

A video without tokens or features, or whose tokens no longer match its features, and a segment without a clip
are left out and counted, not errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from videobert.core.runtime import Runtime


@dataclass
class CaptionSegment:
    """One annotated segment with its clips."""

    video_id: str
    segment_id: int
    subset: str
    start: float
    end: float
    sentence: str
    clip_features: np.ndarray  # (clips, dim) float32
    tokens: list[int]  # the clips' codebook ids

    @property
    def key(self) -> str:
        return f"{self.video_id}/{self.segment_id}"


def load_segments(rt: Runtime, annotations: dict[str, Any], index: dict[str, Any], subsets: tuple[str, ...],
                  codebook: str | None = None) -> tuple[list[CaptionSegment], dict[str, int]]:
    """The segments of `subsets` with their clips (videos in the file's order; tokens of `codebook` when given),
    and counts of those left out."""
    from videobert.dataset.tokens import indexed_tokens
    from videobert.db import repository as repo
    from videobert.features.clips import load_features
    from videobert.features.stage import FEATURES, FEATURES_ARTIFACT

    counts = {"no_tokens": 0, "no_features": 0, "tokens_do_not_match_features": 0, "no_clips": 0}
    wanted = [v for v in annotations.values() if v.subset in subsets]
    views = repo.stage_views(rt.db, [FEATURES.name], [v.video_id for v in wanted]) if wanted else {}
    out: list[CaptionSegment] = []
    for video in wanted:
        ref = index["videos"].get(video.video_id)
        if ref is None:
            counts["no_tokens"] += len(video.segments)
            continue
        view = views.get((video.video_id, FEATURES.name))
        if view is None or view.status != "done":
            counts["no_features"] += len(video.segments)
            continue
        feats = load_features(rt.store, view.artifact(FEATURES_ARTIFACT).key, verify=True)
        doc = indexed_tokens(rt, video.video_id, ref, codebook)
        tokens, start, end = (np.asarray(doc[k]) for k in ("tokens", "start", "end"))
        if len(tokens) != len(feats) or not np.allclose(start, feats.start, atol=1e-3):
            counts["tokens_do_not_match_features"] += len(video.segments)
            continue
        mid = (start.astype(np.float64) + end.astype(np.float64)) / 2
        for seg in video.segments:
            keep = np.flatnonzero((mid >= seg.start) & (mid < seg.end))
            if not len(keep):
                counts["no_clips"] += 1
                continue
            out.append(CaptionSegment(video.video_id, seg.id, video.subset, seg.start, seg.end, seg.sentence,
                                      feats.features[keep].astype(np.float32), [int(t) for t in tokens[keep]]))
    return out, counts
