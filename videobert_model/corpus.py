"""Training examples of VideoBERT from one video's visual tokens and timed sentences (no I/O).

The paper's recipe (Sun et al. 2019, section 3 and 4.1), every number a field of `CorpusConfig`:

* **alignment** — a clip belongs to the sentence whose [start, end) span holds the clip's midpoint; of
  overlapping sentences, the one that starts first (then the first listed) takes it, so two sentences never
  share a clip. A zero-length span holds nothing; a sentence outside the video gets no clip.
* **text-video examples** `[CLS] text [>] video [SEP]` — the sentences of a video are cut into groups of 1 to
  `max_concat` neighbours (drawn at random; fewer when the group would not fit `max_len`), each group's text
  with the tokens of its clips, subsampled at a random rate of `subsample_min` to `subsample_max` (every r-th
  token from a random offset). A group with no clip gives no text-video example.
* **alignment labels** — with probability `negative_ratio` a text-video example becomes a negative: its video
  tokens are replaced by as many consecutive tokens of another video (from a `NegativePool`); otherwise it is
  a positive (aligned) pair.
* **video-only examples** — the stretches of consecutive clips that no sentence holds (all of a video without
  English ASR), cut into segments of `video_segment` tokens (the paper's 16).
* **text-only examples** — every sentence alone.
* **split** — by a hash of the video id alone, so adding videos never moves one from a side to the other.

Randomness comes from a generator seeded with (seed, video id): a video's examples do not depend on which
other videos are in the corpus, except the video tokens of its negatives, drawn from the pool.
Special tokens are not stored: an example holds its WordPiece ids and its codebook ids, and the model's
collator lays them out as `[CLS] text [>] video [SEP]` (`SPECIAL_POSITIONS` positions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

SPECIAL_POSITIONS = 3  # [CLS], [>] and [SEP] of a text-video example ([CLS] and [SEP] of a single-modality one)
KINDS = ("text_video", "text", "video")
SPLITS = ("train", "validation")
UNLABELLED = -1  # `aligned` of text-only and video-only examples


@dataclass(frozen=True)
class CorpusConfig:
    """How examples are made; the paper's values where it gives one."""

    max_len: int = 128  # positions per example, special tokens included (ours: the paper gives none)
    max_concat: int = 4  # most neighbouring sentences concatenated into one example (ours)
    subsample_min: int = 1  # video tokens subsampled at a random rate in [min, max] per example (paper: 1 to 5)
    subsample_max: int = 5
    video_segment: int = 16  # video tokens per video-only example (paper: 16)
    negative_ratio: float = 0.5  # share of text-video examples whose video comes from another video (paper: half)
    validation_share: float = 0.1  # share of videos in the validation split (by id hash)
    text_only: bool = True  # make text-only examples
    video_only: bool = True  # make video-only examples
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.subsample_min <= self.subsample_max:
            raise ValueError(f"subsample rates must satisfy 1 <= min <= max, got {self.subsample_min}, {self.subsample_max}")
        if self.max_len < SPECIAL_POSITIONS + 2:
            raise ValueError(f"max_len {self.max_len} leaves no room for a word and a video token")
        if self.max_concat < 1 or self.video_segment < 1:
            raise ValueError("max_concat and video_segment must be at least 1")
        if not 0.0 <= self.negative_ratio <= 1.0 or not 0.0 <= self.validation_share <= 1.0:
            raise ValueError("negative_ratio and validation_share are shares between 0 and 1")


@dataclass(frozen=True)
class Sentence:
    """One timed sentence, already tokenized to WordPiece ids (no special tokens)."""

    text_ids: Sequence[int]
    start: float  # seconds
    end: float  # seconds, exclusive


@dataclass
class VideoInput:
    """What the corpus needs of one video: one codebook id per clip with the clip times, and its sentences
    (empty when it has no English transcript)."""

    video_id: str
    tokens: np.ndarray  # (clips,) int codebook ids
    start: np.ndarray  # (clips,) float seconds
    end: np.ndarray  # (clips,) float seconds
    sentences: Sequence[Sentence] = ()


@dataclass
class Example:
    """One training example."""

    video_id: str  # the video its text (or its video tokens, for video-only examples) comes from
    kind: str  # text_video | text | video
    split: str  # train | validation
    text_ids: list[int]
    video_tokens: list[int]  # codebook ids
    aligned: int  # 1 aligned pair, 0 negative pair, -1 not a pair
    video_source: str  # the video its video tokens come from ("" when it has none)
    start: float  # seconds: the span its text or video covers in `video_id`
    end: float
    sentences: int = 0  # sentences concatenated
    subsample: int = 1  # video subsampling rate

    @property
    def length(self) -> int:
        """Positions it takes, special tokens included."""
        if self.kind == "text_video":
            return SPECIAL_POSITIONS + len(self.text_ids) + len(self.video_tokens)
        return SPECIAL_POSITIONS - 1 + len(self.text_ids) + len(self.video_tokens)


def split_of(video_id: str, validation_share: float) -> str:
    """The split of a video, from a hash of its id alone (stable whatever else is in the corpus)."""
    h = int.from_bytes(hashlib.sha256(f"split:{video_id}".encode()).digest()[:8], "big") / 2**64
    return "validation" if h < validation_share else "train"


def video_rng(seed: int, video_id: str) -> np.random.Generator:
    """The random generator of one video's examples."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "big")])


def align(sentences: Sequence[Sentence], start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For each clip, the index of the sentence that holds its midpoint, or -1 (see the module's rule)."""
    mid = (np.asarray(start, dtype=np.float64) + np.asarray(end, dtype=np.float64)) / 2
    owner = np.full(len(mid), -1, dtype=np.int64)
    order = sorted(range(len(sentences)), key=lambda i: (sentences[i].start, i))
    for i in order:
        s = sentences[i]
        held = (owner == -1) & (mid >= s.start) & (mid < s.end)
        owner[held] = i
    return owner


@dataclass
class NegativePool:
    """Video tokens of some videos, from which negatives draw; bounded, so memory does not grow with the corpus."""

    videos: list[tuple[str, np.ndarray]] = field(default_factory=list)

    def draw(self, rng: np.random.Generator, exclude: str, n: int) -> tuple[str, list[int]] | None:
        """`n` consecutive tokens (fewer if the video is shorter) of a random pooled video other than `exclude`."""
        candidates = [i for i, (vid, toks) in enumerate(self.videos) if vid != exclude and len(toks)]
        if not candidates or n < 1:
            return None
        vid, toks = self.videos[candidates[int(rng.integers(len(candidates)))]]
        n = min(n, len(toks))
        at = int(rng.integers(len(toks) - n + 1))
        return vid, [int(t) for t in toks[at : at + n]]


def pool_members(video_ids: Sequence[str], size: int, seed: int) -> list[str]:
    """The `size` videos of the negative pool: those with the smallest seeded hash of their id."""
    def key(vid: str) -> bytes:
        return hashlib.sha256(f"pool:{seed}:{vid}".encode()).digest()

    return sorted(sorted(video_ids, key=key)[:size])


def _subsample(tokens: list[int], rng: np.random.Generator, cfg: CorpusConfig) -> tuple[list[int], int]:
    rate = int(rng.integers(cfg.subsample_min, cfg.subsample_max + 1))
    if not tokens:
        return tokens, rate
    offset = int(rng.integers(min(rate, len(tokens))))
    return tokens[offset::rate], rate


def _fit(text: list[int], video: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Cut an over-long pair to `budget` tokens: each side keeps its head, and at least half the budget when it
    needs that much."""
    if len(text) + len(video) <= budget:
        return text, video
    keep_video = min(len(video), max(budget - len(text), budget // 2))
    text = text[: budget - keep_video]
    return text, video[: budget - len(text)]


def video_examples(video: VideoInput, cfg: CorpusConfig, pool: NegativePool | None = None) -> Iterator[Example]:
    """Every example of one video, in a fixed order: text-video, then text-only, then video-only."""
    rng = video_rng(cfg.seed, video.video_id)
    split = split_of(video.video_id, cfg.validation_share)
    tokens = [int(t) for t in np.asarray(video.tokens)]
    sentences = list(video.sentences)
    owner = align(sentences, video.start, video.end) if sentences else np.full(len(tokens), -1, dtype=np.int64)
    clips_of = [np.flatnonzero(owner == i) for i in range(len(sentences))]
    budget = cfg.max_len - SPECIAL_POSITIONS

    i = 0
    while i < len(sentences):
        k = int(rng.integers(1, cfg.max_concat + 1))
        while k > 1 and sum(len(s.text_ids) for s in sentences[i : i + k]) + sum(
                len(c) for c in clips_of[i : i + k]) > budget:
            k -= 1  # a shorter group; the last resort is one sentence, cut to fit
        group = range(i, min(i + k, len(sentences)))
        i += k
        clip_idx = np.sort(np.concatenate([clips_of[j] for j in group]))
        if len(clip_idx) == 0:
            continue
        text = [int(t) for j in group for t in sentences[j].text_ids]
        vid, rate = _subsample([tokens[c] for c in clip_idx], rng, cfg)
        text, vid = _fit(text, vid, budget)
        aligned, source = 1, video.video_id
        if rng.random() < cfg.negative_ratio and pool is not None:
            drawn = pool.draw(rng, video.video_id, len(vid))
            if drawn is not None:
                (source, vid), aligned = drawn, 0
        yield Example(video.video_id, "text_video", split, text, vid, aligned, source,
                      float(sentences[group[0]].start), float(max(sentences[j].end for j in group)),
                      sentences=len(group), subsample=rate)

    if cfg.text_only:
        for s in sentences:
            yield Example(video.video_id, "text", split, [int(t) for t in s.text_ids][: cfg.max_len - 2], [],
                          UNLABELLED, "", float(s.start), float(s.end), sentences=1)

    if cfg.video_only:
        free = np.flatnonzero(owner == -1)
        if len(free):
            # stretches of consecutive clips that no sentence holds, cut into segments
            stretches = np.split(free, np.flatnonzero(np.diff(free) != 1) + 1)
            for stretch in stretches:
                for at in range(0, len(stretch), cfg.video_segment):
                    seg = stretch[at : at + cfg.video_segment]
                    yield Example(video.video_id, "video", split, [], [tokens[c] for c in seg], UNLABELLED,
                                  video.video_id, float(video.start[seg[0]]), float(video.end[seg[-1]]))


@dataclass
class CorpusStats:
    """Counts that describe a corpus (kept as examples stream by)."""

    examples: dict[str, dict[str, int]] = field(default_factory=lambda: {s: dict.fromkeys(KINDS, 0) for s in SPLITS})
    negatives: int = 0
    videos: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    videos_without_sentences: int = 0
    clips: int = 0
    clips_without_sentence: int = 0
    length_histogram: dict[int, int] = field(default_factory=dict)  # length bucket start -> examples
    bucket: int = 16  # width of a length bucket, positions

    def add_video(self, video: VideoInput, cfg: CorpusConfig) -> None:
        """Count one video's clips and whether its sentences hold them."""
        self.videos[split_of(video.video_id, cfg.validation_share)] += 1
        n = len(video.tokens)
        self.clips += n
        if not video.sentences:
            self.videos_without_sentences += 1
            self.clips_without_sentence += n
        else:
            self.clips_without_sentence += int((align(video.sentences, video.start, video.end) == -1).sum())

    def add(self, ex: Example) -> None:
        """Count one example."""
        self.examples[ex.split][ex.kind] += 1
        self.negatives += ex.aligned == 0
        b = (ex.length // self.bucket) * self.bucket
        self.length_histogram[b] = self.length_histogram.get(b, 0) + 1

    def summary(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "examples": self.examples,
            "negatives": self.negatives,
            "videos": self.videos,
            "videos_without_sentences": self.videos_without_sentences,
            "clips": self.clips,
            "clips_without_sentence_share": round(self.clips_without_sentence / self.clips, 6) if self.clips else 0.0,
            "length_histogram": {str(k): v for k, v in sorted(self.length_histogram.items())},
            "length_bucket": self.bucket,
        }
