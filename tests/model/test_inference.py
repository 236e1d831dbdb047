"""Inference on a tiny VideoBERT trained here on a known pattern: each action has its own visual token and each
object its own, so zero-shot classification, text-to-video and forecasting have known answers."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.tiny_model import ACTION_TOKEN, OBJECT_TOKEN, OBJECTS, VERBS, train_tiny_model
from videobert_model.inference import VideoBertInference


@pytest.fixture(scope="module")
def trained() -> VideoBertInference:
    return train_tiny_model()


def test_zero_shot_ranks_the_verb_and_object_the_video_shows(trained: VideoBertInference) -> None:
    segments = [[ACTION_TOKEN[v], OBJECT_TOKEN[o]] * 3 for v in VERBS for o in OBJECTS]
    results = trained.zero_shot(segments, VERBS, OBJECTS)
    for (verbs, objects), (v, o) in zip(results, [(v, o) for v in VERBS for o in OBJECTS], strict=True):
        assert verbs.words[0] == v and objects.words[0] == o
        assert sorted(verbs.words) == sorted(VERBS) and verbs.scores == sorted(verbs.scores, reverse=True)
    # batching does not change the answer
    trained.batch_size = 2
    assert [r[0].words for r in trained.zero_shot(segments, VERBS, OBJECTS)] == [r[0].words for r in results]
    with pytest.raises(ValueError, match="two"):
        trained.zero_shot(segments, VERBS, OBJECTS, template="now [MASK] it .")


def test_text_to_video_and_forecasting_follow_the_pattern(trained: VideoBertInference) -> None:
    tokens = trained.text_to_video("now spin the lemon .", n_tokens=6)
    assert len(tokens) == 6 and set(tokens) <= {ACTION_TOKEN["spin"], OBJECT_TOKEN["lemon"]}
    assert tokens.count(ACTION_TOKEN["spin"]) >= 2 and tokens.count(OBJECT_TOKEN["lemon"]) >= 2
    history = [ACTION_TOKEN["lift"], OBJECT_TOKEN["egg"]] * 2
    assert trained.forecast(history, n_next=2)[0] in (ACTION_TOKEN["lift"], OBJECT_TOKEN["egg"])


def test_embeddings_separate_segments_of_different_actions(trained: VideoBertInference) -> None:
    segs = [[ACTION_TOKEN["slide"], OBJECT_TOKEN["egg"]] * 3, [ACTION_TOKEN["slide"], OBJECT_TOKEN["egg"]] * 2,
            [ACTION_TOKEN["spin"], OBJECT_TOKEN["lemon"]] * 3]
    e = trained.embed(segs)
    assert e.shape == (3, 48)
    cos = torch.nn.functional.cosine_similarity
    assert cos(e[0], e[1], dim=0) > cos(e[0], e[2], dim=0)
    assert trained.embed(segs, pooling="cls").shape == (3, 48)
