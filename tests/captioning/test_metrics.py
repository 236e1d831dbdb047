"""The caption metrics (pycocoevalcap through its PTB tokenizer and METEOR's Java jar) on inputs whose scores
are worked out by hand."""

from __future__ import annotations

import math

import pytest

from videobert.captioning.metrics import METRICS, score_captions

REF_A, PRED_A = "Cut the onion into small pieces.", "cut the onion"  # PTB: lower-cased, the period dropped
REF_B = "slide the tomato on the board"


def test_scores_worked_out_by_hand() -> None:
    both = ({"a": [REF_A], "b": [REF_B]}, {"a": PRED_A, "b": REF_B})
    scores = score_captions({
        "both": both,
        "only_a": ({"a": [REF_A]}, {"a": PRED_A}),
        "exact": ({"a": [REF_A], "b": [REF_B]}, {"a": REF_A, "b": REF_B}),
        "swapped": ({"a": [REF_A], "b": [REF_B]}, {"a": REF_B, "b": REF_A}),
    })
    assert set(scores["both"]) == set(METRICS)
    s = scores["both"]
    # corpus BLEU: every n-gram of both predictions is in its reference (n = 4 only in b), so each precision is
    # 1 and the score is the brevity penalty of 9 predicted against 12 reference words
    for n in range(1, 5):
        assert s[f"bleu_{n}"] == pytest.approx(100 * math.exp(1 - 12 / 9), abs=1e-4)
    # ROUGE-L per segment, then the mean: a: LCS 3 of 3 predicted and 6 reference words, beta 1.2; b: 1
    p, r, beta = 1.0, 0.5, 1.2
    rouge_a = (1 + beta**2) * p * r / (r + beta**2 * p)
    assert s["rouge_l"] == pytest.approx(100 * (rouge_a + 1) / 2, abs=1e-4)
    # METEOR 1.5 (alpha 0.85, beta 0.2, gamma 0.6, delta 0.75) on a alone: all 3 predicted words match in one
    # chunk; recall weighs content words (cut, onion, small, pieces) by delta, function words (the, into) by
    # 1 - delta: (0.75 * 2 + 0.25) / (0.75 * 4 + 0.25 * 2) = 0.5
    recall = (0.75 * 2 + 0.25 * 1) / (0.75 * 4 + 0.25 * 2)
    fmean = 1.0 * recall / (0.85 * 1.0 + 0.15 * recall)
    penalty = 0.6 * (1 / 3) ** 0.2
    assert scores["only_a"]["meteor"] == pytest.approx(100 * fmean * (1 - penalty), abs=1e-3)
    # exact captions: 100 for BLEU, METEOR and ROUGE-L; CIDEr-D is 10 x the mean cosine of identical tf-idf
    # vectors (its idf is over the two references, so words in both, "the", weigh nothing)
    e = scores["exact"]
    assert (e["bleu_4"], e["meteor"], e["rouge_l"]) == pytest.approx((100, 100, 100), abs=1e-4)
    assert e["cider"] == pytest.approx(10.0, abs=1e-6)
    # each prediction the other segment's reference: only "the" is shared, and it weighs nothing
    assert scores["swapped"]["cider"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < s["cider"] < 10


def test_mismatched_segments_are_refused() -> None:
    with pytest.raises(ValueError, match="no prediction"):
        score_captions({"x": ({"a": ["cut it"], "b": ["stir it"]}, {"a": "cut it"})})
    with pytest.raises(ValueError, match="nothing to score"):
        score_captions({"x": ({}, {})})
