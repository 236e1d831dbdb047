"""VideoBertCollator: layout, dynamic padding, truncation, and BERT's masking statistics per modality."""

from __future__ import annotations

import pytest
import torch

from tests.model.test_modeling import TEXT_VOCAB, VISUAL_VOCAB, tiny_config
from videobert_model.collator import VideoBertCollator
from videobert_model.modeling_videobert import IGNORE_INDEX


def test_layout_of_each_kind_with_segments_and_dynamic_padding() -> None:
    c = tiny_config()
    col = VideoBertCollator(c, text_mask_probability=0.0, visual_mask_probability=0.0)
    out = col([{"text_ids": [10, 11], "video_tokens": [0, 5], "aligned": 1},
               {"text_ids": [12], "video_tokens": [], "aligned": -1},
               {"text_ids": [], "video_tokens": [7, 7, 7], "aligned": -1}])
    sep, vis = c.video_separator_id, c.visual_offset
    assert out["input_ids"].tolist() == [[1, 10, 11, sep, vis, vis + 5, 2],
                                         [1, 12, 2, 0, 0, 0, 0],
                                         [1, sep, vis + 7, vis + 7, vis + 7, 2, 0]]
    assert out["token_type_ids"].tolist() == [[0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 1, 0]]
    assert out["attention_mask"].tolist() == [[1] * 7, [1, 1, 1, 0, 0, 0, 0], [1] * 6 + [0]]
    assert out["alignment_labels"].tolist() == [1, IGNORE_INDEX, IGNORE_INDEX]
    assert (out["text_labels"] == IGNORE_INDEX).all() and (out["visual_labels"] == IGNORE_INDEX).all()
    padded = VideoBertCollator(c, text_mask_probability=0.0, visual_mask_probability=0.0, pad_to_multiple_of=8)(
        [{"text_ids": [10], "video_tokens": [], "aligned": -1}])
    assert padded["input_ids"].shape == (1, 8)


def test_truncation_cuts_video_from_its_end_first_then_text() -> None:
    c = tiny_config()
    col = VideoBertCollator(c, text_mask_probability=0.0, visual_mask_probability=0.0, max_length=8)
    out = col([{"text_ids": [10, 11, 12], "video_tokens": [0, 1, 2, 3, 4], "aligned": 0}])
    vis = c.visual_offset
    assert out["input_ids"].tolist() == [[1, 10, 11, 12, c.video_separator_id, vis, vis + 1, 2]]
    out = col([{"text_ids": list(range(10, 20)), "video_tokens": [4, 5], "aligned": 0}])
    assert out["input_ids"].shape[1] == 8
    assert out["input_ids"][0].tolist()[-3:] == [c.video_separator_id, vis + 4, 2]  # one video token kept


def test_masking_statistics_over_many_draws() -> None:
    c = tiny_config()
    g = torch.Generator().manual_seed(0)
    col = VideoBertCollator(c, generator=g)
    text = list(range(4, TEXT_VOCAB))
    video = [i % VISUAL_VOCAB for i in range(40)]
    examples = [{"text_ids": text, "video_tokens": video, "aligned": 1}] * 400
    out = col(examples)
    ids, tl, vl = out["input_ids"], out["text_labels"], out["visual_labels"]
    n_text = len(text) * len(examples)
    n_video = len(video) * len(examples)
    text_chosen, video_chosen = tl != IGNORE_INDEX, vl != IGNORE_INDEX
    assert text_chosen.sum() / n_text == pytest.approx(0.15, abs=0.01)
    assert video_chosen.sum() / n_video == pytest.approx(0.15, abs=0.01)
    # labels are the original ids: WordPieces for text, codebook ids for video
    original = col([examples[0]])["input_ids"]  # layout is the same for every example; undo the masks
    unmasked = VideoBertCollator(c, text_mask_probability=0.0, visual_mask_probability=0.0)([examples[0]])
    expected = unmasked["input_ids"][0].expand_as(ids)
    assert torch.equal(tl[text_chosen], expected[text_chosen])
    assert torch.equal(vl[video_chosen] + c.visual_offset, expected[video_chosen])
    assert original.shape == unmasked["input_ids"].shape
    # 80 / 10 / 10 within each modality
    for chosen in (text_chosen, video_chosen):
        masked = (ids[chosen] == c.mask_token_id).float().mean()
        kept = (ids[chosen] == expected[chosen]).float().mean()
        assert masked == pytest.approx(0.8, abs=0.03)
        assert kept == pytest.approx(0.1 + 0.1 / (TEXT_VOCAB if chosen is text_chosen else VISUAL_VOCAB), abs=0.03)
    # a randomly replaced visual token is a visual token, never a WordPiece (and text stays text)
    replaced_video = video_chosen & (ids != c.mask_token_id)
    assert (ids[replaced_video] >= c.visual_offset).all()
    replaced_text = text_chosen & (ids != c.mask_token_id)
    assert (ids[replaced_text] < TEXT_VOCAB).all()
    assert not torch.isin(ids[replaced_text], torch.tensor([c.cls_token_id, c.sep_token_id, c.pad_token_id])).any()
    # special tokens, [>] and padding are never chosen
    assert (tl[:, 0] == IGNORE_INDEX).all() and (vl[:, len(text) + 1] == IGNORE_INDEX).all()
    assert (tl[:, -1] == IGNORE_INDEX).all() and (vl[:, -1] == IGNORE_INDEX).all()


def test_the_same_generator_seed_masks_the_same_way() -> None:
    c = tiny_config()
    ex = [{"text_ids": list(range(4, 30)), "video_tokens": list(range(16)), "aligned": 1}] * 8
    a = VideoBertCollator(c, generator=torch.Generator().manual_seed(5))(ex)
    b = VideoBertCollator(c, generator=torch.Generator().manual_seed(5))(ex)
    d = VideoBertCollator(c, generator=torch.Generator().manual_seed(6))(ex)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["input_ids"], d["input_ids"])


def test_bad_settings_are_refused() -> None:
    c = tiny_config()
    with pytest.raises(ValueError):
        VideoBertCollator(c, mask_share=0.9, random_share=0.2)
    with pytest.raises(ValueError):
        VideoBertCollator(c, text_mask_probability=1.5)
    with pytest.raises(ValueError, match="empty"):
        VideoBertCollator(c)([])


def test_deferred_masking_masks_at_the_step_as_the_collator_would() -> None:
    c = tiny_config()
    ex = [{"text_ids": list(range(4, 30)), "video_tokens": list(range(16)), "aligned": 1}] * 8
    now = VideoBertCollator(c, generator=torch.Generator().manual_seed(5))(ex)
    later = VideoBertCollator(c, generator=torch.Generator().manual_seed(5), defer_masking=True)
    laid = later(ex)
    assert "text_labels" not in laid and laid["text_maskable"].any() and laid["visual_maskable"].any()
    masked = later.mask_batch(laid)
    assert masked.keys() == now.keys()
    assert all(torch.equal(masked[k], now[k]) for k in now)
