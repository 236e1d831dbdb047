"""The clip-features-only control of the evaluation: segment means and the nearest class centroid."""

from __future__ import annotations

import numpy as np

from videobert.evaluation.feature_probe import nearest_centroid_accuracy, segment_features


def test_segment_features_average_the_clips_whose_midpoint_is_inside() -> None:
    feats = np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 8.0], [9.0, 9.0]], np.float16)
    start, end = np.array([0.0, 1.5, 3.0, 4.5]), np.array([1.5, 3.0, 4.5, 6.0])
    out = segment_features(feats, start, end, [(0.0, 3.0), (3.0, 4.6), (7.0, 9.0)])
    np.testing.assert_allclose(out[0], [1.0, 1.0])
    np.testing.assert_allclose(out[1], [4.0, 8.0])  # the 4th clip's midpoint, 5.25, is outside
    assert out[2] is None


def test_nearest_centroid_accuracy() -> None:
    rng = np.random.default_rng(0)
    train_x = np.concatenate([rng.normal(0, 0.1, (5, 3)), rng.normal(5, 0.1, (5, 3))])
    train_y = ["cut"] * 5 + ["stir"] * 5
    test_x = np.array([[0.1, 0.0, 0.0], [5.0, 5.1, 4.9], [4.8, 5.0, 5.0]])
    assert nearest_centroid_accuracy(train_x, train_y, test_x, ["cut", "stir", "stir"]) == 1.0
    assert nearest_centroid_accuracy(train_x, train_y, test_x, ["stir", "stir", "cut"]) == 1 / 3
    assert nearest_centroid_accuracy(train_x, train_y, test_x, ["pour"] * 3) == 0.0  # a class never trained
