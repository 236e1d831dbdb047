"""VideoBERT (Sun et al., ICCV 2019): a BERT over text WordPieces and visual tokens, pre-trained with masked
text, masked video and text-video alignment (no I/O beyond transformers' own loading; imports nothing of ours
outside this package's configuration).

* One embedding table: the pretrained BERT's WordPieces, then `[>]`, then the visual tokens (see
  `VideoBertConfig`); segment (token type) 0 for text, 1 for `[>]` and video.
* Heads: a text masked-LM head whose output weights are the text rows of the embedding table, a visual
  masked-token head whose output weights are the visual rows, and an alignment head (pooler + 2-way linear,
  class 1 = aligned) on `[CLS]`.
* Losses: each computed when its labels are present (any label other than -100), so text-only, video-only and
  paired examples share a batch; the total is their weighted sum (`*_loss_weight`).
* The vocabulary projections run only at the scored positions (the masked ones), not at every position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import BertModel, PretrainedConfig
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertPredictionHeadTransform, BertPreTrainedModel

from .configuration_videobert import VideoBertConfig

IGNORE_INDEX = -100  # labels of unscored positions (torch's cross-entropy default)
TEXT_SEGMENT = 0
VIDEO_SEGMENT = 1
ALIGNED = 1  # alignment class of an aligned text-video pair; 0 is a pair from two videos


@dataclass
class VideoBertForPreTrainingOutput(ModelOutput):
    """What `VideoBertForPreTraining.forward` returns. Logits are given at the scored positions only, in
    row-major order of the positions whose label is not -100."""

    loss: torch.Tensor | None = None
    text_loss: torch.Tensor | None = None
    visual_loss: torch.Tensor | None = None
    alignment_loss: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None  # (scored text positions, text vocabulary)
    visual_logits: torch.Tensor | None = None  # (scored video positions, visual vocabulary)
    alignment_logits: torch.Tensor | None = None  # (batch, 2)
    last_hidden_state: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None


class VideoBertPredictionHead(nn.Module):
    """BERT's prediction transform (dense, activation, LayerNorm) and an output bias; the output weights are
    given at call time: a slice of the embedding table, so the head stays tied to it."""

    def __init__(self, config: VideoBertConfig, vocab: int) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), weight, self.bias)


class VideoBertPreTrainedModel(BertPreTrainedModel):
    """Weight initialisation and loading for VideoBERT models."""

    config_class = VideoBertConfig
    config: VideoBertConfig
    base_model_prefix = "bert"

    def __init__(self, config: VideoBertConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        config.auto_map = dict(AUTO_MAP)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, VideoBertPredictionHead):
            module.bias.zero_()


class VideoBertModel(VideoBertPreTrainedModel):
    """The encoder alone (embeddings, transformer, pooler): what `AutoModel` loads from a checkpoint."""

    def __init__(self, config: VideoBertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs)


class VideoBertForPreTraining(VideoBertPreTrainedModel):
    """VideoBERT with its three pre-training heads."""

    # Each loss is a mean over its own batch, so transformers' Trainer divides it by the accumulation steps
    # (forward's **kwargs would otherwise make it assume the model normalises by num_items_in_batch).
    accepts_loss_kwargs = False

    def __init__(self, config: VideoBertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.text_head = VideoBertPredictionHead(config, config.text_vocab_size)
        self.visual_head = VideoBertPredictionHead(config, config.visual_vocab_size)
        self.alignment_head = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    # --- the heads, usable on any hidden states (inference scores chosen positions with them) ---------------

    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the text vocabulary of hidden states (..., hidden)."""
        return self.text_head(hidden, self.get_input_embeddings().weight[: self.config.text_vocab_size])

    def visual_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the visual vocabulary (codebook ids) of hidden states (..., hidden)."""
        return self.visual_head(hidden, self.get_input_embeddings().weight[self.config.visual_offset:])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                text_labels: torch.Tensor | None = None, visual_labels: torch.Tensor | None = None,
                alignment_labels: torch.Tensor | None = None, **kwargs: Any) -> VideoBertForPreTrainingOutput:
        """`text_labels` (batch, length): WordPiece ids at scored positions, -100 elsewhere; `visual_labels`
        (batch, length): codebook ids at scored positions, -100 elsewhere; `alignment_labels` (batch,): 1 aligned,
        0 not aligned, -100 not a pair."""
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, **kwargs)
        hidden, pooled = out.last_hidden_state, out.pooler_output
        cfg = self.config
        losses: dict[str, torch.Tensor] = {}
        text_logits = visual_logits = alignment_logits = None
        if text_labels is not None and (scored := text_labels != IGNORE_INDEX).any():
            text_logits = self.text_logits(hidden[scored])
            losses["text"] = F.cross_entropy(text_logits.float(), text_labels[scored])
        if visual_labels is not None and (scored := visual_labels != IGNORE_INDEX).any():
            visual_logits = self.visual_logits(hidden[scored])
            losses["visual"] = F.cross_entropy(visual_logits.float(), visual_labels[scored])
        if pooled is not None:
            alignment_logits = self.alignment_head(pooled)
            if alignment_labels is not None and (alignment_labels != IGNORE_INDEX).any():
                losses["alignment"] = F.cross_entropy(alignment_logits.float(), alignment_labels,
                                                      ignore_index=IGNORE_INDEX)
        weights = {"text": cfg.text_loss_weight, "visual": cfg.visual_loss_weight,
                   "alignment": cfg.alignment_loss_weight}
        loss = sum((weights[name] * value for name, value in losses.items()), torch.zeros((), device=hidden.device)) \
            if losses else None
        return VideoBertForPreTrainingOutput(
            loss=loss, text_loss=losses.get("text"), visual_loss=losses.get("visual"),
            alignment_loss=losses.get("alignment"), text_logits=text_logits, visual_logits=visual_logits,
            alignment_logits=alignment_logits, last_hidden_state=hidden, pooled_output=pooled)

    # --- initialisation from a pretrained BERT ----------------------------------------------------------------

    @classmethod
    def from_bert_pretrained(cls, bert_dir: str | Path, visual_vocab_size: int, *,
                             centroids: np.ndarray | None = None, **config_overrides: Any
                             ) -> tuple[VideoBertForPreTraining, dict[str, list[str]]]:
        """A VideoBERT whose encoder, text embeddings, position and segment embeddings come from the pretrained
        BERT in `bert_dir` (its first `num_hidden_layers` layers when that is overridden lower), with its masked-LM
        transform and bias as the text head and its pooler and next-sentence head as the alignment head where the
        checkpoint has them. Visual embeddings and `[>]` are new: random at the text rows' spread, or with
        `visual_init="centroids"` the codebook's leaf `centroids` (visual_vocab_size, dim) through a fixed random
        projection (`visual_init_seed`), scaled to the text embeddings' spread.

        Returns the model and a report {"copied": [...], "new": [...]} of parameter names."""
        bert = BertModel.from_pretrained(str(bert_dir), add_pooling_layer=True)
        base = bert.config.to_dict()
        for key in ("architectures", "model_type", "transformers_version", "vocab_size", "_name_or_path",
                    "auto_map", "dtype", "torch_dtype"):
            base.pop(key, None)
        config = VideoBertConfig(**{**base, "text_vocab_size": bert.config.vocab_size,
                                    "visual_vocab_size": visual_vocab_size, **config_overrides})
        if config.num_hidden_layers > bert.config.num_hidden_layers:
            raise ValueError(f"num_hidden_layers {config.num_hidden_layers} exceeds the pretrained model's "
                             f"{bert.config.num_hidden_layers}")
        _check_same_shapes(config, bert.config)
        model = cls(config)
        source = bert.state_dict()
        raw = _raw_state_dict(Path(bert_dir))
        target = model.state_dict()
        copied: list[str] = []
        with torch.no_grad():
            for name, tensor in source.items():
                key = f"bert.{name}"
                if name.startswith("encoder.layer."):
                    if int(name.split(".")[2]) >= config.num_hidden_layers:
                        continue
                if key not in target or name == "embeddings.word_embeddings.weight":
                    continue
                if name.startswith("pooler.") and not _has(raw, name):
                    continue  # BertModel made it up: the checkpoint has no pooler
                target[key].copy_(tensor)
                copied.append(key)
            emb = target["bert.embeddings.word_embeddings.weight"]
            emb[: config.text_vocab_size].copy_(source["embeddings.word_embeddings.weight"])
            copied.append("bert.embeddings.word_embeddings.weight[text rows]")
            # the new rows ([>] and the visual tokens) at the spread of the pretrained text rows: at BERT's
            # initializer_range they would be a few times smaller than a word's, and after the embeddings'
            # LayerNorm every visual token would look alike next to the position and segment embeddings
            text_std = float(emb[: config.text_vocab_size].std())
            generator = torch.Generator().manual_seed(config.visual_init_seed)
            emb[config.text_vocab_size:].copy_(torch.randn(emb[config.text_vocab_size:].shape, generator=generator)
                                               * text_std)
            if config.visual_init == "centroids":
                if centroids is None or centroids.shape[0] != visual_vocab_size:
                    raise ValueError(f"visual_init='centroids' needs the codebook's {visual_vocab_size} leaf centroids")
                emb[config.visual_offset:].copy_(project_centroids(centroids, config.hidden_size, text_std,
                                                                   config.visual_init_seed))
            for ours, theirs in (("text_head.transform.dense.weight", "cls.predictions.transform.dense.weight"),
                                 ("text_head.transform.dense.bias", "cls.predictions.transform.dense.bias"),
                                 ("text_head.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.weight"),
                                 ("text_head.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.bias"),
                                 ("text_head.bias", "cls.predictions.bias")):
                if (value := _get(raw, theirs)) is not None:
                    target[ours].copy_(value)
                    copied.append(ours)
            nsp_w, nsp_b = _get(raw, "cls.seq_relationship.weight"), _get(raw, "cls.seq_relationship.bias")
            if nsp_w is not None and nsp_b is not None:
                # BERT's next-sentence class 0 is "B follows A": it becomes our class 1 (aligned)
                target["alignment_head.weight"].copy_(nsp_w.flip(0))
                target["alignment_head.bias"].copy_(nsp_b.flip(0))
                copied += ["alignment_head.weight", "alignment_head.bias"]
        model.load_state_dict(target)
        new = sorted(set(target) - {c.split("[")[0] for c in copied})
        return model, {"copied": copied, "new": new}


def project_centroids(centroids: np.ndarray, hidden_size: int, scale: float, seed: int) -> torch.Tensor:
    """Codebook centroids (n, dim) through a fixed Gaussian random projection to (n, hidden_size), centred and
    scaled to standard deviation `scale` (so they sit among the text embeddings)."""
    rng = np.random.default_rng(seed)
    c = np.asarray(centroids, dtype=np.float64)
    proj = rng.standard_normal((c.shape[1], hidden_size)) / np.sqrt(c.shape[1])
    out = (c - c.mean(axis=0)) @ proj
    std = out.std()
    return torch.from_numpy(out * (scale / std if std > 0 else 0.0)).float()


def _check_same_shapes(config: PretrainedConfig, pretrained: PretrainedConfig) -> None:
    """ValueError unless `config` has the pretrained model's layer shapes (its weights are copied into it)."""
    for key in ("hidden_size", "intermediate_size", "num_attention_heads"):
        if getattr(config, key) != getattr(pretrained, key):
            raise ValueError(f"{key} {getattr(config, key)} differs from the pretrained model's "
                             f"{getattr(pretrained, key)}")


def _raw_state_dict(bert_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor a pretrained checkpoint folder holds (safetensors or PyTorch's format), names as stored."""
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for f in sorted(bert_dir.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    if not tensors:
        for f in sorted(bert_dir.glob("pytorch_model*.bin")):
            tensors.update(torch.load(f, map_location="cpu", weights_only=True))
    return tensors


def _get(raw: dict[str, torch.Tensor], name: str) -> torch.Tensor | None:
    """A tensor by name with or without a `bert.` prefix."""
    return raw.get(name, raw.get(f"bert.{name}"))


def _has(raw: dict[str, torch.Tensor], name: str) -> bool:
    return _get(raw, name) is not None


def register_auto_classes() -> None:
    """Make `AutoConfig` / `AutoModel` / `AutoModelForPreTraining` know VideoBERT in this process (checkpoints
    saved by the training flow also carry the code, for `trust_remote_code=True` elsewhere)."""
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

    try:
        AutoConfig.register(VideoBertConfig.model_type, VideoBertConfig)
    except ValueError:
        return  # already registered in this process
    AutoModel.register(VideoBertConfig, VideoBertModel)
    AutoModelForPreTraining.register(VideoBertConfig, VideoBertForPreTraining)


# A saved checkpoint carries this package's two files and this map, so that plain transformers loads it with
# `trust_remote_code=True` (set on every config in VideoBertPreTrainedModel.__init__).
AUTO_MAP = {"AutoConfig": "configuration_videobert.VideoBertConfig",
            "AutoModel": "modeling_videobert.VideoBertModel",
            "AutoModelForPreTraining": "modeling_videobert.VideoBertForPreTraining"}
VideoBertConfig.register_for_auto_class()
VideoBertForPreTraining.register_for_auto_class("AutoModelForPreTraining")
