"""Text-to-video, measured: generated tokens read as their training clips' classes and compared with the sentence."""

from __future__ import annotations

import pytest

from videobert.evaluation.text_to_video import clip_class, text_to_video_scores, token_classes


def test_a_token_takes_the_class_of_the_segment_its_clip_lies_in() -> None:
    segments = {"v": [(0.0, 3.0, ("slide", "cup")), (3.0, 6.0, ("spin", "cat")), (6.0, 9.0, None)]}
    times = {"v": ([0.0, 1.5, 3.0, 4.5, 6.0, 9.0], [1.5, 3.0, 4.5, 6.0, 7.5, 10.5])}
    pictures = {"0": {"video": "v", "clip": 1}, "1": {"video": "v", "clip": 3}, "2": {"video": "v", "clip": 4},
                "3": {"video": "v", "clip": 5}, "4": {"video": "other", "clip": 0}, "5": {"video": "v", "clip": 99}}
    assert token_classes(pictures, times, segments) == {0: ("slide", "cup"), 1: ("spin", "cat")}
    assert clip_class(segments["v"], 2.9, 3.2) == ("spin", "cat")  # the midpoint decides


def test_shares_against_chance_and_the_shuffled_control() -> None:
    classes = {0: ("slide", "cup"), 1: ("spin", "cat"), 2: ("slide", "cat")}
    truths = [("slide", "cup"), ("spin", "cat"), ("slide", "cat")]
    right = [[0, 0], [1, 1], [2, 9]]  # token 9 has no class: not counted
    m = text_to_video_scores(right, truths, classes, verbs=2, objects=2)
    assert (m["sentences"], m["tokens"], m["mapped_tokens"]) == (3, 6, 5)
    assert (m["verb"], m["object"], m["both"]) == (1.0, 1.0, 1.0)
    assert (m["chance_verb"], m["chance_object"], m["chance_both"]) == (0.5, 0.5, 0.25)
    # the control gives every sentence another sentence's tokens: never all right here
    assert m["shuffled_both"] < 1.0
    # a model that writes the same tokens whatever it reads scores the same on the control
    same = text_to_video_scores([[0, 1]] * 3, truths, classes, verbs=2, objects=2)
    assert (same["verb"], same["object"]) == (same["shuffled_verb"], same["shuffled_object"])
    with pytest.raises(ValueError, match="2 token lists for 3 sentences"):
        text_to_video_scores(right[:2], truths, classes, 2, 2)


def test_the_control_never_gives_a_sentence_its_own_tokens() -> None:
    n = 7
    classes = {i: (f"v{i}", f"o{i}") for i in range(n)}
    truths = [(f"v{i}", f"o{i}") for i in range(n)]
    for seed in range(5):
        m = text_to_video_scores([[i] for i in range(n)], truths, classes, n, n, seed=seed)
        assert m["both"] == 1.0 and m["shuffled_both"] == 0.0
