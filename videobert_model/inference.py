"""What a trained VideoBERT does (no I/O beyond loading a checkpoint folder): zero-shot verb and object
classification, text-to-video, video forecasting and pooled embeddings.

* **Zero-shot classification** (the paper's section 4.2): `[CLS] now let me show you how to [MASK] the [MASK] .
  [>] video [SEP]`; the masked-LM scores at the first mask rank the verbs, at the second the objects, restricted
  to the given vocabularies. A word of several WordPieces is scored by its first WordPiece (the evaluation keeps
  single-WordPiece words, so this rule only matters for other vocabularies).
* **Text-to-video**: `[CLS] text [>] [MASK] x n [SEP]`; the masked visual positions are filled step by step, each
  step fixing the position the model is most sure of (greedy), then predicting the rest again.
* **Video forecasting**: `[CLS] [>] video [MASK] x n [SEP]`, the masks filled left to right, one per step.
* **Captioning features** (the paper's section 4.4): `[CLS] template [>] video [SEP]` with the fill-in-the-blank
  template; per clip, its video token's last hidden state beside the mean of the states at the template's masks.
* **Embeddings**: the mean of the last hidden states over a segment's text and video positions (or the pooled
  `[CLS]`), for retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .modeling_videobert import TEXT_SEGMENT, VIDEO_SEGMENT, VideoBertForPreTraining

ZERO_SHOT_TEMPLATE = "now let me show you how to [MASK] the [MASK] ."
# the paper's fill-in-the-blank text for captioning features (section 4.4)
CAPTION_TEMPLATE = "now let's [MASK] the [MASK] to the [MASK], and then [MASK] the [MASK]."


@dataclass
class Ranked:
    """Words ranked by the model, best first, with their scores (log-probabilities over the whole text
    vocabulary at that position)."""

    words: list[str]
    scores: list[float]


class VideoBertInference:
    """A trained VideoBERT with its tokenizer, on one device."""

    def __init__(self, model: VideoBertForPreTraining, tokenizer: Any, device: str | torch.device | None = None,
                 batch_size: int = 64) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config = model.config
        self.batch_size = batch_size
        if tokenizer.convert_tokens_to_ids("[MASK]") != self.config.mask_token_id:
            raise ValueError("the tokenizer's [MASK] is not the model's mask token: wrong tokenizer for this model")

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | None = None) -> VideoBertInference:
        """A checkpoint folder written by the training flow (model + tokenizer)."""
        from transformers import BertTokenizerFast

        return cls(VideoBertForPreTraining.from_pretrained(str(folder)), BertTokenizerFast.from_pretrained(str(folder)),
                   device)

    # --- inputs ---------------------------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _layout(self, text_ids: Sequence[int], video_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """(ids, segments) of `[CLS] text [>] video [SEP]` with video ids already in the embedding table."""
        c = self.config
        room = self.config.max_position_embeddings - 3 - len(text_ids)
        video_ids = list(video_ids)[:max(room, 0)]
        ids = [c.cls_token_id, *text_ids, c.video_separator_id, *video_ids, c.sep_token_id]
        segments = [TEXT_SEGMENT] * (1 + len(text_ids)) + [VIDEO_SEGMENT] * (len(video_ids) + 2)
        return ids, segments

    def _run(self, rows: Sequence[tuple[list[int], list[int]]]) -> torch.Tensor:
        """Last hidden states (batch, width, hidden) of laid-out rows, right-padded."""
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), self.config.pad_token_id, dtype=torch.long)
        seg = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (r_ids, r_seg) in enumerate(rows):
            ids[i, : len(r_ids)] = torch.tensor(r_ids)
            seg[i, : len(r_seg)] = torch.tensor(r_seg)
            mask[i, : len(r_ids)] = 1
        with torch.no_grad():
            out = self.model.bert(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                  token_type_ids=seg.to(self.device))
        return out.last_hidden_state

    # --- zero-shot classification ---------------------------------------------------------------------------

    def word_ids(self, words: Sequence[str]) -> list[int]:
        """The WordPiece id each word is scored by (its first WordPiece)."""
        out = []
        for w in words:
            pieces = self._encode(w)
            if not pieces:
                raise ValueError(f"{w!r} has no WordPiece")
            out.append(pieces[0])
        return out

    def zero_shot(self, segments: Sequence[Sequence[int]], verbs: Sequence[str], objects: Sequence[str],
                  template: str = ZERO_SHOT_TEMPLATE) -> list[tuple[Ranked, Ranked]]:
        """For each segment's codebook ids, the verbs and the objects ranked at the template's two masks."""
        text = self._encode(template)
        masks = [i + 1 for i, t in enumerate(text) if t == self.config.mask_token_id]  # +1: [CLS]
        if len(masks) != 2:
            raise ValueError(f"the template must hold two [MASK]s (verb, object): {template!r}")
        verb_ids = torch.tensor(self.word_ids(verbs), device=self.device)
        object_ids = torch.tensor(self.word_ids(objects), device=self.device)
        results: list[tuple[Ranked, Ranked]] = []
        for start in range(0, len(segments), self.batch_size):
            chunk = segments[start: start + self.batch_size]
            hidden = self._run([self._layout(text, self.config.visual_ids(list(map(int, s)))) for s in chunk])
            with torch.no_grad():
                logits = torch.log_softmax(self.model.text_logits(hidden[:, masks]).float(), dim=-1)  # (b, 2, V)
            for row in logits:
                results.append((_rank(row[0], verb_ids, verbs), _rank(row[1], object_ids, objects)))
        return results

    # --- generation -----------------------------------------------------------------------------------------

    def text_to_video(self, text: str, n_tokens: int = 8) -> list[int]:
        """The codebook ids the model fills in after `text`, most confident position first."""
        text_ids = self._encode(text)
        first = len(text_ids) + 2  # after [CLS] text [>]
        video = [self.config.mask_token_id] * n_tokens
        open_positions = set(range(n_tokens))
        while open_positions:
            hidden = self._run([self._layout(text_ids, video)])[0]
            with torch.no_grad():
                probs = torch.softmax(self.model.visual_logits(hidden[first: first + n_tokens]).float(), dim=-1)
            best_p, best_t = probs.max(dim=-1)
            pos = max(open_positions, key=lambda p: (float(best_p[p]), -p))
            video[pos] = self.config.visual_offset + int(best_t[pos])
            open_positions.remove(pos)
        return [v - self.config.visual_offset for v in video]

    def forecast(self, video_tokens: Sequence[int], n_next: int = 4) -> list[int]:
        """The next `n_next` codebook ids after a segment's tokens, predicted left to right."""
        video = self.config.visual_ids(list(map(int, video_tokens)))
        out: list[int] = []
        for _ in range(n_next):
            masked = [*video, *(self.config.visual_offset + t for t in out), self.config.mask_token_id]
            hidden = self._run([self._layout([], masked)])[0]
            with torch.no_grad():
                out.append(int(self.model.visual_logits(hidden[len(masked) + 1]).argmax()))  # +1: [CLS] [>] - 1
        return out

    # --- captioning features ---------------------------------------------------------------------------------

    def caption_features(self, segments: Sequence[Sequence[int]], template: str = CAPTION_TEMPLATE) -> list[np.ndarray]:
        """For each segment's codebook ids, (clips, 2 x hidden) float32: each video token's last hidden state
        beside the mean of the states at the template's [MASK]s (the same for every clip of the segment). A segment
        longer than the positions left after the template keeps its first clips (fewer rows than ids)."""
        text = self._encode(template)
        masks = [i + 1 for i, t in enumerate(text) if t == self.config.mask_token_id]  # +1: [CLS]
        if not masks:
            raise ValueError(f"the captioning template holds no [MASK]: {template!r}")
        first = len(text) + 2  # after [CLS] text [>]
        out: list[np.ndarray] = []
        for start in range(0, len(segments), self.batch_size):
            chunk = segments[start: start + self.batch_size]
            rows = [self._layout(text, self.config.visual_ids(list(map(int, s)))) for s in chunk]
            hidden = self._run(rows).float()
            for i, (ids, _) in enumerate(rows):
                n = len(ids) - first - 1  # video positions kept (before [SEP])
                video = hidden[i, first: first + n]
                blanks = hidden[i, masks].mean(dim=0, keepdim=True).expand(n, -1)
                out.append(torch.cat([video, blanks], dim=1).cpu().numpy())
        return out

    # --- embeddings -----------------------------------------------------------------------------------------

    def embed(self, segments: Sequence[Sequence[int]], texts: Sequence[str] | None = None,
              pooling: str = "mean") -> torch.Tensor:
        """(n, hidden) embeddings of segments (codebook ids), each with its text when given; `mean` over the
        text and video positions, or `cls` (the pooler's output)."""
        if pooling not in ("mean", "cls"):
            raise ValueError("pooling is mean or cls")
        out = []
        for start in range(0, len(segments), self.batch_size):
            chunk = segments[start: start + self.batch_size]
            text_chunk = texts[start: start + self.batch_size] if texts is not None else [""] * len(chunk)
            rows = [self._layout(self._encode(t) if t else [], self.config.visual_ids(list(map(int, s))))
                    for s, t in zip(chunk, text_chunk, strict=True)]
            hidden = self._run(rows)
            if pooling == "cls":
                with torch.no_grad():
                    out.append(self.model.bert.pooler(hidden).cpu())
                continue
            for i, (ids, _) in enumerate(rows):
                keep = [j for j, t in enumerate(ids) if t not in (self.config.cls_token_id, self.config.sep_token_id,
                                                                  self.config.video_separator_id)]
                out.append(hidden[i, keep].mean(dim=0, keepdim=True).cpu())
        return torch.cat(out) if out else torch.zeros((0, self.config.hidden_size))


def _rank(log_probs: torch.Tensor, ids: torch.Tensor, words: Sequence[str]) -> Ranked:
    scores = log_probs[ids]
    order = torch.argsort(-scores, stable=True).tolist()
    return Ranked([words[i] for i in order], [float(scores[i]) for i in order])
