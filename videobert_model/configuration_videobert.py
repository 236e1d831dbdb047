"""VideoBERT's configuration: a BERT configuration with a visual vocabulary beside the text one (no I/O).

One embedding table holds, in this order, the pretrained BERT's WordPieces (`text_vocab_size` rows, its
`[CLS]`, `[SEP]`, `[MASK]`, `[PAD]` among them), the `[>]` token that separates text from video, and the
visual tokens (`visual_vocab_size` = k ** levels rows, codebook id `c` at row `visual_offset + c`).
"""

from __future__ import annotations

from transformers import BertConfig

# The pretrained BERT's special tokens (bert-base-uncased's vocabulary; checked against the tokenizer when a
# model is initialised from a pretrained directory).
BERT_PAD_ID = 0
BERT_CLS_ID = 101
BERT_SEP_ID = 102
BERT_MASK_ID = 103
BERT_VOCAB_SIZE = 30522
PAPER_VISUAL_VOCAB = 12**4  # 4 levels of k = 12: 20,736 visual tokens
VISUAL_INIT_CHOICES = ("random", "centroids")


class VideoBertConfig(BertConfig):
    """`BertConfig` plus the visual vocabulary, the special tokens and the weights of the three losses.

    `vocab_size` (BERT's field: the embedding table's rows) is derived: text + `[>]` + visual.
    """

    model_type = "videobert"

    text_vocab_size: int = BERT_VOCAB_SIZE
    visual_vocab_size: int = PAPER_VISUAL_VOCAB
    cls_token_id: int = BERT_CLS_ID
    sep_token_id: int = BERT_SEP_ID
    mask_token_id: int = BERT_MASK_ID
    text_loss_weight: float = 1.0
    visual_loss_weight: float = 1.0
    alignment_loss_weight: float = 1.0
    visual_init: str = "random"  # random | centroids (codebook centroids through a fixed random projection)
    visual_init_seed: int = 0
    corpus_hash: str | None = None  # the corpus version it was trained on (set by the training flow)
    codebook_hash: str | None = None  # the codebook whose ids it reads

    def __post_init__(self, **kwargs):  # type: ignore[no-untyped-def]
        if self.visual_init not in VISUAL_INIT_CHOICES:
            raise ValueError(f"visual_init must be one of {VISUAL_INIT_CHOICES}, got {self.visual_init!r}")
        if self.text_vocab_size < 1 or self.visual_vocab_size < 1:
            raise ValueError("text_vocab_size and visual_vocab_size must be positive")
        for name in ("cls_token_id", "sep_token_id", "mask_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is None or not 0 <= value < self.text_vocab_size:
                raise ValueError(f"{name} {value} is not a text token id (0..{self.text_vocab_size - 1})")
        self.vocab_size = self.text_vocab_size + 1 + self.visual_vocab_size
        super().__post_init__(**kwargs)

    @property
    def video_separator_id(self) -> int:
        """The `[>]` token between a text and its video."""
        return self.text_vocab_size

    @property
    def visual_offset(self) -> int:
        """Row of codebook id 0 in the embedding table."""
        return self.text_vocab_size + 1

    def visual_ids(self, codebook_ids):  # type: ignore[no-untyped-def]
        """Embedding-table ids of codebook ids (ints, lists, numpy arrays or tensors)."""
        if isinstance(codebook_ids, list):
            return [self.visual_offset + int(c) for c in codebook_ids]
        return codebook_ids + self.visual_offset
