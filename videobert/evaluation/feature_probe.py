"""A control without pre-training: classify each scored segment from the clip features alone.

Each segment's feature is the mean of its clips' features (the clips whose midpoint lies in it, the rule of the
tokens); each verb's and object's centroid is the mean over the training segments (the vocabulary split) that carry
it; a scored segment gets the class of the nearest centroid. Printed beside the zero-shot scores, it shows what the
clip features already tell apart, and so what the codebook and the pre-trained model keep or add.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Truth = tuple[str | None, str | None]


def nearest_centroid_accuracy(train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray,
                              test_y: Sequence[str]) -> float:
    """Share of test rows whose nearest class mean (over the training rows) is their class; classes with no
    training row cannot be predicted."""
    labels = sorted(set(train_y))
    if not labels or not len(test_y):
        return 0.0
    ty = np.asarray(train_y)
    centroids = np.stack([train_x[ty == c].mean(axis=0) for c in labels])  # (classes, dim)
    d = ((test_x[:, None, :] - centroids[None]) ** 2).sum(axis=2)  # (test, classes)
    predicted = np.asarray(labels)[d.argmin(axis=1)]
    return float((predicted == np.asarray(test_y)).mean())


def segment_features(features: np.ndarray, start: np.ndarray, end: np.ndarray,
                     spans: Iterable[tuple[float, float]]) -> list[np.ndarray | None]:
    """The mean feature of the clips whose midpoint lies in each [start, end) span (None: no clip)."""
    from videobert.evaluation.zero_shot import clips_in_segment

    out: list[np.ndarray | None] = []
    for lo, hi in spans:
        keep = clips_in_segment(start, end, lo, hi)
        out.append(features[keep].astype(np.float32).mean(axis=0) if keep.any() else None)
    return out


def feature_probe(rt: Any, annotations: Mapping[str, Any], truths: Mapping[tuple[str, int], Truth], train_subset: str,
                  scored: Sequence[tuple[str, int, str, str]]) -> dict[str, Any] | None:
    """Verb and object accuracy of the nearest-centroid probe on `scored` (video, segment id, verb, object), with
    the training segments of `train_subset`; None when no video has done features."""
    from videobert.db import repository as repo
    from videobert.features.clips import load_features

    scored_keys = {(v, s) for v, s, _, _ in scored}
    wanted = sorted({v for v, _, _, _ in scored} | {v for v, a in annotations.items() if a.subset == train_subset})
    views = repo.stage_views(rt.db, ["features"], wanted)
    seg_feature: dict[tuple[str, int], np.ndarray] = {}
    for vid in wanted:
        view = views.get((vid, "features"))
        if view is None or view.status != "done":
            continue
        clips = load_features(rt.store, view.artifact("features").key)
        segs = [s for s in annotations[vid].segments
                if annotations[vid].subset == train_subset or (vid, s.id) in scored_keys]
        for seg, f in zip(segs, segment_features(clips.features, clips.start, clips.end,
                                                 [(s.start, s.end) for s in segs]), strict=True):
            if f is not None:
                seg_feature[(vid, seg.id)] = f
    train = [(k, truths[k]) for k in seg_feature if annotations[k[0]].subset == train_subset and k in truths]
    test = [((v, s), verb, obj) for v, s, verb, obj in scored if (v, s) in seg_feature]
    if not train or not test:
        return None
    out: dict[str, Any] = {"train_segments": len(train), "segments": len(test)}
    for i, what in enumerate(("verb", "object")):
        rows = [(k, t[i]) for k, t in train if t[i] is not None]
        tx = np.stack([seg_feature[k] for k, _ in rows])
        sx = np.stack([seg_feature[k] for k, _, _ in test])
        out[what] = nearest_centroid_accuracy(tx, [y for _, y in rows], sx, [t[1 + i] for t in test])
    return out
