"""The video captioner's configuration (no I/O): a BERT configuration for its decoder, plus the encoder over a
segment's per-clip input vectors.

The captioner (`modeling_captioner.py`) is a transformer encoder-decoder in the manner of the paper's section 4.4:
the encoder reads one vector per clip of a segment (`input_dim` wide: the frozen VideoBERT's features of the clip
beside its clip feature, or the clip feature alone for the "S3D alone" row), the decoder is a BERT with
cross-attention that writes the caption in the pretrained BERT's WordPieces, `[CLS]` first, `[SEP]` last.
"""

from __future__ import annotations

from transformers import BertConfig

CAPTIONER_INPUTS = ("videobert+clip", "clip")  # what the encoder reads: VideoBERT features and clip features, or clips


class VideoCaptionerConfig(BertConfig):
    """`BertConfig` of the decoder (`num_hidden_layers` decoder layers) plus the encoder's fields.

    The encoder has the decoder's width, heads and feed-forward size (so the pretrained BERT's layers fit both),
    `encoder_layers` layers and `max_position_embeddings` clip positions.
    """

    model_type = "videobert_captioner"

    input_dim: int = 1024  # width of one clip's input vector
    videobert_dim: int = 0  # of which the VideoBERT features (0: clip features alone)
    clip_dim: int = 1024  # of which the clip feature
    encoder_layers: int = 2
    inputs: str = "videobert+clip"  # one of CAPTIONER_INPUTS (recorded: which row of the ablation this is)
    label_smoothing: float = 0.0
    is_encoder_decoder: bool = True
    decoder_start_token_id: int | None = 101  # BERT's [CLS] starts every caption
    bos_token_id: int | None = 101
    eos_token_id: int | list[int] | None = 102  # ... and [SEP] ends it
    # the pretrained BERT's WordPiece ids of the decoder's vocabulary rows (row i is WordPiece vocab_ids[i]); None:
    # BERT's whole vocabulary. A captioner on the training captions' WordPieces writes only those, and its output
    # layer is that much smaller (see `caption_vocabulary`)
    vocab_ids: list[int] | None = None
    videobert_hash: str | None = None  # sha256 of the VideoBERT weights whose features it reads
    codebook_hash: str | None = None

    def __post_init__(self, **kwargs):  # type: ignore[no-untyped-def]
        if self.inputs not in CAPTIONER_INPUTS:
            raise ValueError(f"inputs must be one of {CAPTIONER_INPUTS}, got {self.inputs!r}")
        if self.input_dim != self.videobert_dim + self.clip_dim:
            raise ValueError(f"input_dim {self.input_dim} is not videobert_dim {self.videobert_dim} + clip_dim "
                             f"{self.clip_dim}")
        if (self.inputs == "clip") != (self.videobert_dim == 0):
            raise ValueError(f"inputs {self.inputs!r} with videobert_dim {self.videobert_dim}: the clip-only row "
                             "reads no VideoBERT features, the other does")
        if self.vocab_ids is not None and len(self.vocab_ids) != self.vocab_size:
            raise ValueError(f"{len(self.vocab_ids)} vocab_ids for vocab_size {self.vocab_size}")
        if self.encoder_layers < 1 or self.num_hidden_layers < 1:
            raise ValueError("encoder_layers and num_hidden_layers (decoder layers) must be at least 1")
        super().__post_init__(**kwargs)

    def decoder_config(self) -> BertConfig:
        """The decoder's BertConfig: causal, with cross-attention to the encoder."""
        return BertConfig(**self._bert_fields(), num_hidden_layers=self.num_hidden_layers, is_decoder=True,
                          add_cross_attention=True, vocab_size=self.vocab_size, tie_word_embeddings=True)

    def encoder_config(self) -> BertConfig:
        """The encoder's BertConfig: bidirectional; its inputs are projected clip vectors, so one dummy word row."""
        return BertConfig(**self._bert_fields(), num_hidden_layers=self.encoder_layers, is_decoder=False,
                          add_cross_attention=False, vocab_size=1)

    def _bert_fields(self) -> dict[str, object]:
        keys = ("hidden_size", "num_attention_heads", "intermediate_size", "hidden_act", "hidden_dropout_prob",
                "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size", "initializer_range",
                "layer_norm_eps", "pad_token_id")
        return {k: getattr(self, k) for k in keys}
