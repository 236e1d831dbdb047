"""Batches of VideoBERT examples with BERT's masking, text and video masked separately (no I/O).

An example (a corpus row) holds WordPiece ids `text_ids`, codebook ids `video_tokens` and `aligned` (1 aligned
pair, 0 pair from two videos, -1 not a pair). Laid out as

    text-video:  [CLS] text [>] video [SEP]     segments 0 ... 0 1 ... 1
    text only:   [CLS] text [SEP]               segments 0 ... 0
    video only:  [CLS] [>] video [SEP]          segments 0 1 ... 1

Masking (BERT's recipe, every number a field): each text position is chosen with probability
`text_mask_probability`, each video position with `visual_mask_probability`; of the chosen, `mask_share` become
`[MASK]`, `random_share` a random token *of the same modality* (a masked visual token never becomes a
WordPiece), the rest stay as they are; chosen positions carry their original id as label (a codebook id for
video), every other position -100. Padding is dynamic (to the longest example of the batch, optionally a
multiple of `pad_to_multiple_of`); an example longer than `max_length` loses video tokens from its end first,
then text.

Randomness comes from torch's generator (`generator`, else the global one, which transformers' Trainer seeds,
saves in checkpoints and restores on resume). With `defer_masking` the collator only lays out and pads, and
the training step masks (`mask_batch`): transformers' Trainer restores the RNG of a resumed run only after it
has collated the first batch, so masking at collation would make a resumed run differ from an uninterrupted
one; masking at the step (also on the GPU, and untouched by DataLoader workers) does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .configuration_videobert import VideoBertConfig
from .modeling_videobert import IGNORE_INDEX, TEXT_SEGMENT, VIDEO_SEGMENT

DEFAULT_MAX_LENGTH = 512  # BERT's position embeddings


@dataclass
class VideoBertCollator:
    """Turns a list of examples into model inputs with masked-LM, masked-video and alignment labels."""

    config: VideoBertConfig
    text_mask_probability: float = 0.15
    visual_mask_probability: float = 0.15
    mask_share: float = 0.8
    random_share: float = 0.1
    max_length: int = DEFAULT_MAX_LENGTH
    pad_to_multiple_of: int | None = None
    generator: torch.Generator | None = None
    special_text_ids: Sequence[int] = ()  # WordPieces never drawn as random replacements ([CLS], [SEP] ...)
    defer_masking: bool = False  # lay out only; `mask_batch` masks later (at the training step)

    def __post_init__(self) -> None:
        for name in ("text_mask_probability", "visual_mask_probability", "mask_share", "random_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.mask_share + self.random_share > 1.0:
            raise ValueError("mask_share + random_share must not exceed 1")
        if self.max_length < 4:
            raise ValueError("max_length must leave room for [CLS], [>], [SEP] and a token")
        c = self.config
        specials = {c.cls_token_id, c.sep_token_id, c.mask_token_id, c.pad_token_id, *self.special_text_ids}
        allowed = torch.ones(c.text_vocab_size, dtype=torch.bool)
        allowed[list(specials)] = False
        self._random_text_ids = allowed.nonzero().squeeze(1)

    def layout(self, example: Mapping[str, Any]) -> tuple[list[int], list[int], list[bool], list[bool]]:
        """(ids, segments, is_text, is_video) of one example before masking, truncated to `max_length`."""
        c = self.config
        text = [int(t) for t in (example.get("text_ids") or [])]
        video = [int(v) for v in (example.get("video_tokens") or [])]
        special = 3 if video else 2  # [CLS] ([>]) [SEP]
        over = special + len(text) + len(video) - self.max_length
        if over > 0:
            cut = min(over, max(len(video) - 1, 0))
            video = video[: len(video) - cut]
            over -= cut
            text = text[: len(text) - over] if over > 0 else text
        ids = [c.cls_token_id, *text]
        segments = [TEXT_SEGMENT] * len(ids)
        if video:
            ids += [c.video_separator_id, *c.visual_ids(video)]
            segments += [VIDEO_SEGMENT] * (1 + len(video))
        ids.append(c.sep_token_id)
        segments.append(segments[-1])
        n = len(ids)
        is_text = [1 <= i <= len(text) for i in range(n)]
        first_video = len(text) + 2
        is_video = [bool(video) and first_video <= i < first_video + len(video) for i in range(n)]
        return ids, segments, is_text, is_video

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("an empty batch")
        laid = [self.layout(e) for e in examples]
        width = max(len(ids) for ids, *_ in laid)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        b = len(examples)
        c = self.config
        input_ids = torch.full((b, width), c.pad_token_id, dtype=torch.long)
        segments = torch.zeros((b, width), dtype=torch.long)
        attention = torch.zeros((b, width), dtype=torch.long)
        is_text = torch.zeros((b, width), dtype=torch.bool)
        is_video = torch.zeros((b, width), dtype=torch.bool)
        for row, (ids, seg, txt, vid) in enumerate(laid):
            n = len(ids)
            input_ids[row, :n] = torch.tensor(ids)
            segments[row, :n] = torch.tensor(seg)
            attention[row, :n] = 1
            is_text[row, :n] = torch.tensor(txt)
            is_video[row, :n] = torch.tensor(vid)
        aligned = torch.tensor([int(e.get("aligned", -1)) for e in examples], dtype=torch.long)
        alignment = torch.where(aligned >= 0, aligned, torch.full_like(aligned, IGNORE_INDEX))
        batch = {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": segments,
                 "alignment_labels": alignment, "text_maskable": is_text, "visual_maskable": is_video}
        return batch if self.defer_masking else self.mask_batch(batch)

    def mask_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A laid-out batch (with `text_maskable` / `visual_maskable`) masked: `text_labels` and `visual_labels`
        added, the maskable flags dropped. Runs on the batch's device."""
        out = {k: v for k, v in batch.items() if k not in ("text_maskable", "visual_maskable")}
        out["text_labels"], ids = self._mask(batch["input_ids"], batch["text_maskable"], self.text_mask_probability,
                                             video=False)
        out["visual_labels"], out["input_ids"] = self._mask(ids, batch["visual_maskable"],
                                                            self.visual_mask_probability, video=True)
        return out

    def _mask(self, ids: torch.Tensor, eligible: torch.Tensor, probability: float, *, video: bool
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels, masked ids) for the eligible positions of one modality."""
        c = self.config
        g = self.generator
        device = ids.device
        chosen = eligible & (torch.rand(ids.shape, generator=g, device=device) < probability)
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[chosen] = ids[chosen] - c.visual_offset if video else ids[chosen]
        draw = torch.rand(ids.shape, generator=g, device=device)
        to_mask = chosen & (draw < self.mask_share)
        to_random = chosen & (draw >= self.mask_share) & (draw < self.mask_share + self.random_share)
        out = ids.clone()
        out[to_mask] = c.mask_token_id
        n = int(to_random.sum())
        if n:
            if video:
                out[to_random] = c.visual_offset + torch.randint(c.visual_vocab_size, (n,), generator=g, device=device)
            else:
                pick = torch.randint(len(self._random_text_ids), (n,), generator=g, device=device)
                out[to_random] = self._random_text_ids.to(device)[pick]
        return labels, out
