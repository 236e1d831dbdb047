"""A video captioner over a segment's clips (the paper's section 4.4): a transformer encoder over one input vector
per clip and a BERT decoder with cross-attention, initialised from the pretrained BERT where shapes allow; beam
search through transformers' `generate` (no I/O beyond transformers' own loading; imports nothing of ours outside
this package).

* Encoder input (B, T, input_dim), T clips: a LayerNorm on each block (the VideoBERT features and the clip
  features come at different scales), a linear projection to the hidden width, position embeddings, `encoder_layers` BERT layers.
* Decoder: `BertLMHeadModel` (causal self-attention, cross-attention to the encoder, output weights tied to the
  word embeddings), `[CLS]` as the start token, `[SEP]` as the end.
* Loss: token cross-entropy over the caption's WordPieces and its `[SEP]`, labels -100 ignored.
* `caption_inputs` builds the encoder input of a segment, and is the ablation switch: with VideoBERT features it
  concatenates them to the clip features, without it passes the clip features alone; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import BertLMHeadModel, BertModel, GenerationMixin
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.models.bert.modeling_bert import BertPreTrainedModel

from .configuration_captioner import VideoCaptionerConfig

IGNORE_INDEX = -100


class CaptionEncoder(nn.Module):
    """Per-clip input vectors (B, T, input_dim) -> encoder states (B, T, hidden)."""

    main_input_name = "input_features"

    def __init__(self, config: VideoCaptionerConfig) -> None:
        super().__init__()
        self.videobert_dim = config.videobert_dim
        self.videobert_norm = nn.LayerNorm(config.videobert_dim, eps=config.layer_norm_eps) if config.videobert_dim \
            else None
        self.clip_norm = nn.LayerNorm(config.clip_dim, eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.input_dim, config.hidden_size)
        self.bert = BertModel(config.encoder_config(), add_pooling_layer=False)

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool = True) -> BaseModelOutput:
        d = self.videobert_dim
        clips = self.clip_norm(input_features[..., d:])
        normed = torch.cat([self.videobert_norm(input_features[..., :d]), clips], dim=-1) \
            if self.videobert_norm is not None else clips
        embeds = self.projection(normed)  # (B, T, hidden)
        out = self.bert(inputs_embeds=embeds, attention_mask=attention_mask, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states, return_dict=True)
        return BaseModelOutput(last_hidden_state=out.last_hidden_state, hidden_states=out.hidden_states,
                               attentions=out.attentions)


class VideoCaptioner(BertPreTrainedModel, GenerationMixin):
    """Encoder over a segment's clips, BERT decoder writing its caption; `generate(input_features=...,
    attention_mask=...)` decodes (greedy or beam search)."""

    config_class = VideoCaptionerConfig
    config: VideoCaptionerConfig
    base_model_prefix = "captioner"
    main_input_name = "input_features"
    _tied_weights_keys = {"decoder.cls.predictions.decoder.weight": "decoder.bert.embeddings.word_embeddings.weight"}

    def __init__(self, config: VideoCaptionerConfig) -> None:
        super().__init__(config)
        self.encoder = CaptionEncoder(config)
        self.decoder = BertLMHeadModel(config.decoder_config())
        self.post_init()

    def get_encoder(self, *args: Any, **kwargs: Any) -> CaptionEncoder:
        return self.encoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.decoder.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.decoder.set_output_embeddings(new_embeddings)

    def forward(self, input_features: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None, decoder_attention_mask: torch.Tensor | None = None,
                encoder_outputs: BaseModelOutput | tuple[torch.Tensor, ...] | None = None,
                past_key_values: Any = None, labels: torch.Tensor | None = None, use_cache: bool | None = None,
                **kwargs: Any) -> Seq2SeqLMOutput:
        """`input_features` (B, T, input_dim) and `attention_mask` (B, T) 1 for clips, 0 for padding;
        `labels` (B, L): the caption's WordPieces then `[SEP]`, -100 at padding (the decoder input is `[CLS]` and
        the labels shifted right when `decoder_input_ids` is not given)."""
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError("input_features or encoder_outputs is needed")
            encoder_outputs = self.encoder(input_features, attention_mask)
        elif isinstance(encoder_outputs, tuple):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = shift_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
            if decoder_attention_mask is None:
                decoder_attention_mask = torch.cat([torch.ones_like(labels[:, :1]), (labels[:, :-1] != IGNORE_INDEX)
                                                    .long()], dim=1)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("output_attentions", "output_hidden_states",
                                                              "return_dict")}
        out = self.decoder(input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
                           encoder_hidden_states=encoder_outputs.last_hidden_state,
                           encoder_attention_mask=attention_mask, past_key_values=past_key_values,
                           use_cache=use_cache, return_dict=True, **kwargs)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(out.logits.float().reshape(-1, out.logits.shape[-1]), labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX, label_smoothing=self.config.label_smoothing)
        return Seq2SeqLMOutput(loss=loss, logits=out.logits, past_key_values=out.past_key_values,
                               encoder_last_hidden_state=encoder_outputs.last_hidden_state)

    # --- initialisation from a pretrained BERT ----------------------------------------------------------------

    @classmethod
    def from_bert_pretrained(cls, bert_dir: str | Path, vocab_ids: list[int] | None = None, **config_fields: Any) -> tuple[VideoCaptioner, dict[str, list[str]]]:
        """A captioner whose decoder (embeddings, self-attention and feed-forward of its first
        `num_hidden_layers` layers, masked-LM transform when the checkpoint has one) and encoder (position and
        segment embeddings, its first `encoder_layers` layers) come from the pretrained BERT in `bert_dir`; the
        cross-attention and the input projection are new. `vocab_ids` (from `caption_vocabulary`): the WordPieces
        the decoder writes, their embedding rows copied, and the special tokens' ids become row numbers; None keeps
        BERT's vocabulary. `config_fields`: VideoCaptionerConfig's fields.

        Returns the model and a report {"copied": [...], "new": [...]} of parameter names."""
        bert = BertModel.from_pretrained(str(bert_dir), add_pooling_layer=False)
        base = {k: v for k, v in bert.config.to_dict().items()
                if k in ("hidden_size", "num_attention_heads", "intermediate_size", "hidden_act", "max_position_embeddings",
                         "type_vocab_size", "layer_norm_eps", "pad_token_id", "initializer_range")}
        rows = {"vocab_size": bert.config.vocab_size}
        if vocab_ids is not None:
            rows = {"vocab_size": len(vocab_ids), "vocab_ids": list(vocab_ids)}
            where = {t: i for i, t in enumerate(vocab_ids)}
            for name in ("pad_token_id", "decoder_start_token_id", "bos_token_id", "eos_token_id"):
                bert_id = config_fields.get(name, base.get(name, getattr(VideoCaptionerConfig, name, None)))
                if bert_id not in where:
                    raise ValueError(f"{name} {bert_id} is not among vocab_ids")
                rows[name] = where[bert_id]
        config = VideoCaptionerConfig(**{**base, **config_fields, **rows})
        from .modeling_videobert import _check_same_shapes, _get, _raw_state_dict

        _check_same_shapes(config, bert.config)
        for what, n in (("num_hidden_layers (decoder layers)", config.num_hidden_layers),
                        ("encoder_layers", config.encoder_layers)):
            if n > bert.config.num_hidden_layers:
                raise ValueError(f"{what} {n} exceeds the pretrained model's {bert.config.num_hidden_layers}")
        model = cls(config)
        source = bert.state_dict()
        raw = _raw_state_dict(Path(bert_dir))
        target = model.state_dict()
        copied: list[str] = []
        with torch.no_grad():
            for key, tensor in target.items():
                if key.startswith("decoder.bert."):
                    name = key[len("decoder.bert."):]
                elif key.startswith("encoder.bert."):
                    name = key[len("encoder.bert."):]
                    if name == "embeddings.word_embeddings.weight":
                        continue  # the encoder reads projected clip vectors, not words
                elif key.startswith("decoder.cls.predictions.") and key != "decoder.cls.predictions.decoder.weight":
                    value = _get(raw, "cls.predictions." + key[len("decoder.cls.predictions."):])
                    if value is not None and vocab_ids is not None and key.endswith("bias") and \
                            "transform" not in key:
                        value = value[torch.tensor(vocab_ids)]
                    if value is not None and value.shape == tensor.shape:
                        tensor.copy_(value)
                        copied.append(key)
                    continue
                else:
                    continue
                if name == "embeddings.word_embeddings.weight" and vocab_ids is not None:
                    tensor.copy_(source[name][torch.tensor(vocab_ids)])
                    copied.append(key)
                elif name in source and source[name].shape == tensor.shape:
                    tensor.copy_(source[name])
                    copied.append(key)
        model.load_state_dict(target)
        model.tie_weights()
        new = sorted(set(target) - set(copied) - {"decoder.cls.predictions.decoder.weight"})
        return model, {"copied": copied, "new": new}


def caption_vocabulary(captions: list[list[int]], special_ids: list[int]) -> list[int]:
    """The decoder's vocabulary for these captions (WordPiece ids): the special tokens first, in the given order,
    then every WordPiece the captions use, ascending."""
    seen = sorted({t for c in captions for t in c} - set(special_ids))
    return list(dict.fromkeys(special_ids)) + seen


def to_rows(ids: list[int], vocab_ids: list[int] | None, unk_row: int) -> list[int]:
    """WordPiece ids as the decoder's rows (`unk_row` for one outside its vocabulary)."""
    if vocab_ids is None:
        return list(ids)
    where = {t: i for i, t in enumerate(vocab_ids)}
    return [where.get(t, unk_row) for t in ids]


def to_wordpieces(rows: list[int], vocab_ids: list[int] | None) -> list[int]:
    """The decoder's rows as WordPiece ids."""
    return list(rows) if vocab_ids is None else [vocab_ids[r] for r in rows]


def shift_right(labels: torch.Tensor, pad_token_id: int | None, start_token_id: int | None) -> torch.Tensor:
    """Decoder inputs of labels (B, L): the start token, then the labels but the last, -100 turned to padding."""
    if start_token_id is None or pad_token_id is None:
        raise ValueError("the config needs decoder_start_token_id and pad_token_id")
    out = labels.new_full(labels.shape, pad_token_id)
    out[:, 1:] = labels[:, :-1]
    out[:, 0] = start_token_id
    return out.masked_fill(out == IGNORE_INDEX, pad_token_id)


# --- inputs -------------------------------------------------------------------------------------------------------


def caption_inputs(clip_features: np.ndarray, videobert_features: np.ndarray | None) -> np.ndarray:
    """The encoder input of one segment, (T, input_dim) float32: each clip's VideoBERT features (T, dv) beside its
    clip feature (T, dc) when given, the clip features alone when None (the ablation: nothing else differs)."""
    clips = np.asarray(clip_features, dtype=np.float32)
    if clips.ndim != 2:
        raise ValueError(f"clip features must be (clips, dim), got shape {clips.shape}")
    if videobert_features is None:
        return clips
    vb = np.asarray(videobert_features, dtype=np.float32)
    if vb.ndim != 2 or vb.shape[0] != clips.shape[0]:
        raise ValueError(f"VideoBERT features of shape {vb.shape} for {clips.shape[0]} clips")
    return np.concatenate([vb, clips], axis=1)


@dataclass
class CaptionBatch:
    """Padded encoder inputs and, for training, labels."""

    input_features: torch.Tensor  # (B, T, input_dim)
    attention_mask: torch.Tensor  # (B, T) 1 at clips
    labels: torch.Tensor | None = None  # (B, L) WordPieces then [SEP], -100 at padding


def collate(inputs: list[np.ndarray], captions: list[list[int]] | None = None, eos_token_id: int | None = None,
            max_clips: int | None = None, max_caption_tokens: int | None = None) -> CaptionBatch:
    """Right-pad a batch of segment inputs (each (T_i, input_dim), the first `max_clips` kept) and of captions
    (WordPiece ids without special tokens; the first `max_caption_tokens` kept, then `eos_token_id`)."""
    if not inputs:
        raise ValueError("an empty batch")
    inputs = [x[:max_clips] if max_clips else x for x in inputs]
    width = max(len(x) for x in inputs)
    feats = torch.zeros((len(inputs), width, inputs[0].shape[1]), dtype=torch.float32)
    mask = torch.zeros((len(inputs), width), dtype=torch.long)
    for i, x in enumerate(inputs):
        feats[i, : len(x)] = torch.from_numpy(np.asarray(x, dtype=np.float32))
        mask[i, : len(x)] = 1
    labels = None
    if captions is not None:
        if eos_token_id is None:
            raise ValueError("captions need the end token id")
        rows = [list(c[:max_caption_tokens] if max_caption_tokens else c) + [eos_token_id] for c in captions]
        labels = torch.full((len(rows), max(map(len, rows))), IGNORE_INDEX, dtype=torch.long)
        for i, r in enumerate(rows):
            labels[i, : len(r)] = torch.tensor(r)
    return CaptionBatch(feats, mask, labels)


def register_auto_classes() -> None:
    """Make `AutoConfig` / `AutoModelForSeq2SeqLM` know the captioner in this process."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    try:
        AutoConfig.register(VideoCaptionerConfig.model_type, VideoCaptionerConfig)
    except ValueError:
        return
    AutoModelForSeq2SeqLM.register(VideoCaptionerConfig, VideoCaptioner)
