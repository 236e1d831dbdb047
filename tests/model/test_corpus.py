"""The corpus algorithm: alignment, example kinds and shapes, labels, split, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from videobert_model.corpus import (
    CorpusConfig,
    CorpusStats,
    NegativePool,
    Sentence,
    VideoInput,
    align,
    pool_members,
    split_of,
    video_examples,
)

CLIP_S = 1.5


def _video(vid: str, n_clips: int, sentences: list[tuple[float, float, int]] = (), first_token: int = 0) -> VideoInput:
    """`n_clips` clips of 1.5 s with tokens first_token, first_token + 1 ...; sentences as (start, end, words),
    word ids 1000 + sentence index * 10 + word."""
    start = np.arange(n_clips) * CLIP_S
    sents = [Sentence([1000 + i * 10 + w for w in range(words)], a, b) for i, (a, b, words) in enumerate(sentences)]
    return VideoInput(vid, np.arange(first_token, first_token + n_clips), start, start + CLIP_S, sents)


def test_a_clip_belongs_to_the_sentence_holding_its_midpoint() -> None:
    start = np.arange(6) * CLIP_S  # midpoints 0.75, 2.25, 3.75, 5.25, 6.75, 8.25
    sents = [Sentence([1], 0.0, 2.0), Sentence([2], 3.0, 3.0), Sentence([3], 2.0, 6.0), Sentence([4], 100.0, 110.0)]
    owner = align(sents, start, start + CLIP_S)
    # clip 1 starts in the first sentence but its midpoint is in the third; a zero-length span holds nothing;
    # a sentence outside the video gets no clip; clips after the last end: none
    assert owner.tolist() == [0, 2, 2, 2, -1, -1]


def test_overlapping_sentences_never_share_a_clip() -> None:
    start = np.arange(4) * CLIP_S  # midpoints 0.75, 2.25, 3.75, 5.25
    sents = [Sentence([1], 2.0, 6.0), Sentence([2], 0.0, 4.0)]  # the second starts first: it takes the overlap
    assert align(sents, start, start + CLIP_S).tolist() == [1, 1, 1, 0]


def test_every_kind_appears_with_its_shape() -> None:
    cfg = CorpusConfig(max_concat=1, subsample_min=1, subsample_max=1, negative_ratio=0.0, video_segment=3)
    # 10 clips; two sentences hold clips 0-1 and 4-5; clips 2-3 and 6-9 are free
    video = _video("v", 10, [(0.0, 3.0, 4), (6.0, 9.0, 2)])
    ex = list(video_examples(video, cfg))
    pairs = [e for e in ex if e.kind == "text_video"]
    assert [(e.text_ids, e.video_tokens, e.aligned, e.video_source) for e in pairs] == [
        ([1000, 1001, 1002, 1003], [0, 1], 1, "v"), ([1010, 1011], [4, 5], 1, "v")]
    assert [(e.text_ids, e.video_tokens, e.aligned) for e in ex if e.kind == "text"] == [
        ([1000, 1001, 1002, 1003], [], -1), ([1010, 1011], [], -1)]
    # free stretches [2, 3] and [6, 7, 8, 9], cut into segments of 3
    assert [e.video_tokens for e in ex if e.kind == "video"] == [[2, 3], [6, 7, 8], [9]]
    assert pairs[0].length == 3 + 4 + 2 and ex[-1].length == 2 + 1


def test_a_video_without_sentences_gives_video_segments_only() -> None:
    ex = list(video_examples(_video("v", 40), CorpusConfig()))
    assert {e.kind for e in ex} == {"video"}
    assert [len(e.video_tokens) for e in ex] == [16, 16, 8]
    assert sum((e.video_tokens for e in ex), []) == list(range(40))


def test_a_video_with_sentences_and_no_clips_gives_text_only() -> None:
    ex = list(video_examples(_video("v", 0, [(0.0, 2.0, 3), (2.0, 4.0, 2)]), CorpusConfig()))
    assert [e.kind for e in ex] == ["text", "text"]


def test_concatenation_subsampling_and_length_limits() -> None:
    cfg = CorpusConfig(max_len=40, max_concat=3, subsample_min=1, subsample_max=5, negative_ratio=0.0)
    sentences = [(i * 6.0, (i + 1) * 6.0, 5) for i in range(30)]  # each holds 4 clips
    video = _video("v", 120, sentences)
    pairs = [e for e in video_examples(video, cfg) if e.kind == "text_video"]
    assert {e.sentences for e in pairs} == {1, 2, 3}  # random concatenation of 1 to max_concat neighbours
    assert sum(e.sentences for e in pairs) == 30  # every sentence in exactly one pair
    assert {e.subsample for e in pairs} <= set(range(1, 6)) and len({e.subsample for e in pairs}) > 2
    for e in pairs:
        assert e.length <= cfg.max_len
        # the video tokens are every r-th token of the group's clips, in order
        step = np.diff(e.video_tokens)
        assert (step == e.subsample).all()
        first_clip = int(e.start // CLIP_S)
        assert first_clip <= e.video_tokens[0] < first_clip + e.subsample


def test_an_overlong_sentence_is_cut_to_fit() -> None:
    cfg = CorpusConfig(max_len=20, subsample_min=1, subsample_max=1, negative_ratio=0.0)
    ex = next(video_examples(_video("v", 30, [(0.0, 45.0, 50)]), cfg))
    assert ex.length == 20 and len(ex.video_tokens) >= (20 - 3) // 2 and ex.text_ids[0] == 1000


def test_negatives_take_video_tokens_of_another_video_at_the_ratio() -> None:
    cfg = CorpusConfig(max_concat=1, subsample_min=1, subsample_max=1, negative_ratio=0.5)
    pool = NegativePool([("v", np.arange(0, 50)), ("other", np.arange(5000, 5050))])
    video = _video("v", 200, [(i * 3.0, (i + 1) * 3.0, 3) for i in range(100)])
    pairs = [e for e in video_examples(video, cfg, pool) if e.kind == "text_video"]
    negatives = [e for e in pairs if e.aligned == 0]
    assert 35 <= len(negatives) <= 65  # about half of 100
    assert all(e.video_source == "other" and all(t >= 5000 for t in e.video_tokens) for e in negatives)
    assert all(len(e.video_tokens) == 2 for e in negatives)  # as many tokens as the positive would have had
    assert all(e.video_source == "v" and max(e.video_tokens) < 200 for e in pairs if e.aligned == 1)


def test_the_negative_ratio_is_a_share_of_the_pairs() -> None:
    cfg = CorpusConfig(max_concat=1, negative_ratio=0.2)
    pool = NegativePool([("other", np.arange(5000, 5050))])
    video = _video("v", 400, [(i * 3.0, (i + 1) * 3.0, 3) for i in range(200)])
    aligned = [e.aligned for e in video_examples(video, cfg, pool) if e.kind == "text_video"]
    assert 25 <= aligned.count(0) <= 55 and len(aligned) == 200  # about a fifth of 200


def test_without_another_video_there_are_no_negatives() -> None:
    pool = NegativePool([("v", np.arange(10))])
    ex = list(video_examples(_video("v", 10, [(0.0, 15.0, 3)]), CorpusConfig(negative_ratio=1.0), pool))
    assert [e.aligned for e in ex if e.kind == "text_video"] == [1]


def test_examples_are_deterministic_and_do_not_depend_on_other_videos() -> None:
    video = _video("v", 60, [(i * 9.0, (i + 1) * 9.0, 4) for i in range(10)])
    a = list(video_examples(video, CorpusConfig(negative_ratio=0.0)))
    b = list(video_examples(video, CorpusConfig(negative_ratio=0.0)))
    assert a == b
    c = list(video_examples(video, CorpusConfig(negative_ratio=0.0, seed=1)))
    assert [e.sentences for e in a] != [e.sentences for e in c] or [e.subsample for e in a] != [e.subsample for e in c]


def test_the_split_depends_on_the_id_alone() -> None:
    ids = [f"vid{i}" for i in range(2000)]
    sides = {v: split_of(v, 0.1) for v in ids}
    share = sum(s == "validation" for s in sides.values()) / len(ids)
    assert 0.07 < share < 0.13
    more = {v: split_of(v, 0.1) for v in ids + [f"new{i}" for i in range(500)]}
    assert all(more[v] == sides[v] for v in ids)  # adding videos moves none


def test_pool_members_are_a_stable_bounded_sample() -> None:
    ids = [f"vid{i}" for i in range(100)]
    pool = pool_members(ids, 10, seed=0)
    assert len(pool) == 10 and set(pool) <= set(ids)
    assert pool_members(list(reversed(ids)), 10, seed=0) == pool


def test_stats_count_kinds_and_free_clips() -> None:
    cfg = CorpusConfig(max_concat=1, negative_ratio=0.0, validation_share=0.0)
    stats = CorpusStats()
    for video in (_video("a", 10, [(0.0, 3.0, 4)]), _video("b", 4)):
        stats.add_video(video, cfg)
        for e in video_examples(video, cfg):
            stats.add(e)
    s = stats.summary()
    assert s["examples"]["train"] == {"text_video": 1, "text": 1, "video": 2}
    assert s["clips"] == 14 and s["clips_without_sentence_share"] == pytest.approx(12 / 14, abs=1e-6)
    assert s["videos_without_sentences"] == 1 and sum(s["length_histogram"].values()) == 4


@pytest.mark.parametrize("bad", [dict(subsample_min=0), dict(subsample_min=3, subsample_max=2), dict(max_len=4),
                                 dict(negative_ratio=1.5), dict(video_segment=0)])
def test_wrong_config_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        CorpusConfig(**bad)
