"""Demo data that can be learned: videos of real photographs moved by hand-like motions, with timed narration,
made deterministically.

Each video is a sequence of segments. In a segment one object, a card cut from a real photograph that ships in an
installed package (a cat, a cup, a rocket and a motorcycle from scikit-image's `skimage/data`, a flower from
scikit-learn's sample images), undergoes one action (a distinct motion: slide, lift, drop, spin, shake, squeeze)
over a real texture (scikit-image's grass, gravel or brick photographs, tinted per video), while a subtitle cue
says so in a recipe's words ("now slide the cup.", "now let me show you how to slide the cup.", ...). Nothing is
written in the frames: the words are only in the subtitles. A pretrained image network (the `efficientnet`
extractor) knows these photos; nothing in the pictures was drawn for a particular extractor.

* **clips** — segments last a whole number of 1.5 s clips and start on the clip grid (20 fps, 30 frames: the
  paper's sampling), so every clip shows one segment and its midpoint falls inside that segment's narration.
* **words** — every verb and object is a single WordPiece of bert-base-uncased, so the paper's zero-shot
  template (`now let me show you how to [MASK] the [MASK] .`) can name it with one masked token.
* **split** — a held-out (`validation`) set of videos in which every (action, object) class occurs equally
  often, so a text prior alone scores chance; training segments cycle through all classes evenly too. Video ids
  are chosen so that the corpus's own split (`videobert_model.corpus.split_of`, a hash of the id, with
  `validation_share`) puts the held-out videos in its validation split and the others in training: their
  narration never reaches the training examples.
* **annotations** — `annotations.json` in the YouCook II format (`{"database": {id: {"subset", "duration",
  "recipe_type", "annotations": [{"id", "segment", "sentence"}]}}}`), one annotation per segment with the
  segment's exact time span. As in YouCook II, the annotation's sentence is written like an annotator's step
  ("slide the tomato on the board") while the narration is what is said ("now let me show you how to slide the
  tomato."): a part-of-speech tagger finds the action and the object in every step sentence, and would take
  "let" or "want" for the verb of some narrations. Each annotation also carries its true `verb` and `object`
  (extra keys a YouCook II reader ignores).
* **determinism** — the same arguments give the same bytes: every random draw comes from a generator seeded
  with (seed, video index), frames are drawn with numpy and turned into yuv420p here, every byte of the frames
  handed to the encoder is set, and PyAV's libx264 runs on one thread without B-frames or macroblock tree (with
  them, or with swscale's conversion or PyAV's uninitialised row padding, repeated runs gave different bytes for
  some videos). A folder already holding the dataset for the same arguments is kept as it is.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videobert_model.corpus import split_of

GENERATOR_VERSION = "2"  # bump when the pictures, narration or layout change for the same arguments
FPS = 20  # frames per second (the paper's sampling rate)
FRAMES_PER_CLIP = 30  # 1.5 s clips, the paper's
ANNOTATIONS_NAME = "annotations.json"
RECORD_NAME = "demo_dataset.json"  # the arguments and file hashes of the dataset in a folder

VERBS: tuple[str, ...] = ("slide", "lift", "drop", "spin", "shake", "squeeze")
OBJECTS: tuple[str, ...] = ("cat", "cup", "rocket", "flower", "motorcycle")

# Narration: `{v}` the verb, `{o}` the object. The first is the paper's zero-shot template; every variant says
# "<verb> the <object>", so the words around the two slots carry no hint of which class a segment is.
NARRATION: tuple[str, ...] = (
    "now let me show you how to {v} the {o}.",
    "now {v} the {o}.",
    "let me show you how to {v} the {o}.",
    "next {v} the {o}.",
    "next {v} the {o} across the board.",
    "then {v} the {o} gently.",
    "and now we {v} the {o}.",
    "first {v} the {o} like this.",
    "you want to {v} the {o} for a few seconds.",
    "okay {v} the {o} on the board.",
)
# No commas or inner full stops: the punctuation step's rules keep a caption's final mark and drop the others,
# so the timed sentences it makes are these words exactly.

# Annotation sentences (YouCook II's "sentence"): steps as an annotator writes them, each checked to give the
# verb and the object to the evaluation's ground truth (spaCy and the rule fallback alike).
STEPS: tuple[str, ...] = ("{v} the {o}", "{v} the {o} on the board", "{v} the {o} gently", "{v} the whole {o}")

# Where each object's photograph comes from: (package, name). scikit-image's are read with `skimage.data.<name>()`
# (the motorcycle is the left view of its stereo pair), scikit-learn's with `load_sample_image(<name>)`.
PHOTOS: dict[str, tuple[str, str]] = {
    "cat": ("skimage", "chelsea"),
    "cup": ("skimage", "coffee"),
    "rocket": ("skimage", "rocket"),
    "flower": ("sklearn", "flower.jpg"),
    "motorcycle": ("skimage", "stereo_motorcycle"),
}
TEXTURES: tuple[str, ...] = ("grass", "gravel", "brick")  # scikit-image's grey texture photographs, the backgrounds
# Per-segment and per-video variety
CARD_SIDE = (0.42, 0.5)  # the photo card's side, share of the frame side, drawn per segment
COLOUR_JITTER = 12  # a card's colours move by up to this much per channel, per segment
TEXTURE_TINT = (0.6, 1.1)  # each channel of the grey texture is scaled by a factor drawn in this range, per video


@dataclass(frozen=True)
class DemoSegment:
    """One narrated action: `verb` done to `object` from `start` to `end` seconds of `video_id`."""

    video_id: str
    index: int  # its place in the video, from 0 (the YouCook II annotation id)
    start: float  # seconds, on the clip grid
    end: float  # seconds, exclusive, on the clip grid
    verb: str
    object: str
    narration: str  # what the subtitle cue says over the segment
    sentence: str  # the annotation's step sentence


@dataclass(frozen=True)
class DemoDataset:
    """Where a generated demo dataset is and what it holds."""

    folder: Path
    videos_dir: Path  # <id>.mp4 and its <id>.en.vtt narration: `videobert ingest --local` takes this folder
    annotations: Path  # YouCook II format JSON
    verbs: tuple[str, ...]
    objects: tuple[str, ...]
    split: dict[str, str]  # video id -> "training" | "validation" (held out)
    segments: tuple[DemoSegment, ...]
    seconds: float = 0.0  # total video length
    files: dict[str, str] = field(default_factory=dict)  # file name (relative to folder) -> sha256

    @property
    def training_ids(self) -> list[str]:
        return sorted(v for v, s in self.split.items() if s == "training")

    @property
    def heldout_ids(self) -> list[str]:
        return sorted(v for v, s in self.split.items() if s == "validation")

    def video_path(self, video_id: str) -> Path:
        """The video file of `video_id`."""
        return self.videos_dir / f"{video_id}.mp4"

    def subtitles_path(self, video_id: str) -> Path:
        """The narration (WebVTT) of `video_id`."""
        return self.videos_dir / f"{video_id}.en.vtt"


@dataclass(frozen=True)
class DemoConfig:
    """The arguments of a dataset (recorded beside it; the same arguments give the same bytes)."""

    videos: int
    heldout: int
    segments_per_video: int
    clips_per_segment: tuple[int, int]
    size: int
    seed: int
    verbs: tuple[str, ...]
    objects: tuple[str, ...]
    validation_share: float
    crf: int
    version: str = GENERATOR_VERSION

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["clips_per_segment"], d["verbs"], d["objects"] = list(self.clips_per_segment), list(self.verbs), list(self.objects)
        return d


def make_demo_dataset(
    folder: Path,
    *,
    videos: int = 60,
    heldout: int = 12,
    segments_per_video: int = 5,
    clips_per_segment: tuple[int, int] = (3, 4),
    size: int = 112,
    seed: int = 0,
    verbs: Sequence[str] = VERBS,
    objects: Sequence[str] = OBJECTS,
    validation_share: float = 0.1,
    crf: int = 20,
    write: bool = True,
) -> DemoDataset:
    """Write the demo videos, their narration and `annotations.json` into `folder`; return what was written.

    Args:
        folder: where to write (created); videos go to `folder/videos`, the annotations to `folder/annotations.json`.
        videos: how many videos in all, held-out ones included.
        heldout: how many of them are held out (the `validation` subset); `heldout * segments_per_video` must be
            a multiple of the number of (verb, object) classes, so that each class occurs equally often there.
        segments_per_video: narrated actions per video.
        clips_per_segment: (fewest, most) 1.5 s clips per segment, drawn uniformly.
        size: frame side, pixels (square; a multiple of 16 keeps H.264 exact).
        seed: every random draw derives from it.
        verbs, objects: the actions and objects used (subsets of VERBS and OBJECTS).
        validation_share: the corpus's `validation_share`: ids are picked so its hash split agrees with ours.
        crf: H.264 quality (lower is better and bigger).
        write: False writes nothing and only says what the dataset holds (its split, segments and paths).

    Returns:
        The DemoDataset. A folder that already holds a dataset made with the same arguments (and whose files
        still have their recorded hashes) is returned as it is, without rendering anything.
    """
    config = _validated(videos, heldout, segments_per_video, clips_per_segment, size, seed, verbs, objects,
                        validation_share, crf)
    folder = Path(folder)
    videos_dir = folder / "videos"
    plan = _plan(config)
    dataset = DemoDataset(
        folder=folder, videos_dir=videos_dir, annotations=folder / ANNOTATIONS_NAME, verbs=config.verbs,
        objects=config.objects, split={v.video_id: v.subset for v in plan}, seconds=sum(v.seconds for v in plan),
        segments=tuple(s for v in plan for s in v.segments),
    )
    if not write:
        return dataset
    record = folder / RECORD_NAME
    if record.is_file():
        previous = json.loads(record.read_text())
        if previous.get("config") == config.to_json() and _files_intact(folder, previous.get("files", {})):
            return _with_files(dataset, previous["files"])
    videos_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for video in plan:
        mp4 = dataset.video_path(video.video_id)
        files[mp4.relative_to(folder).as_posix()] = _write_if_changed(mp4, _encode(_render_video(video, config), config))
        vtt = dataset.subtitles_path(video.video_id)
        files[vtt.relative_to(folder).as_posix()] = _write_if_changed(vtt, webvtt(video.segments).encode())
    files[ANNOTATIONS_NAME] = _write_if_changed(dataset.annotations, annotations_json(plan).encode())
    _write_if_changed(record, (json.dumps({"config": config.to_json(), "files": files}, indent=1) + "\n").encode())
    return _with_files(dataset, files)


# --- the plan: which video shows what, when -----------------------------------------------------------------


@dataclass(frozen=True)
class _SegmentPlan:
    """How one segment is drawn: its segment record and the drawing parameters drawn for it."""

    segment: DemoSegment
    scale: float  # the card's side, share of the frame side
    colour_jitter: tuple[int, int, int]
    motion: dict[str, float]  # the action's parameters (positions in frame sides, angles in degrees, Hz)


@dataclass(frozen=True)
class _VideoPlan:
    """How one video is drawn: its id and side, its board, its segments in order."""

    video_id: str
    index: int
    subset: str  # training | validation
    texture: str  # one of TEXTURES
    tint: tuple[float, float, float]  # the texture's colour, a factor per channel
    texture_offset: tuple[float, float]  # where the frame's window lies in the texture photograph, shares
    parts: tuple[_SegmentPlan, ...]

    @property
    def segments(self) -> tuple[DemoSegment, ...]:
        return tuple(p.segment for p in self.parts)

    @property
    def seconds(self) -> float:
        return self.parts[-1].segment.end if self.parts else 0.0


def _validated(videos: int, heldout: int, segments_per_video: int, clips_per_segment: tuple[int, int], size: int,
               seed: int, verbs: Sequence[str], objects: Sequence[str], validation_share: float,
               crf: int) -> DemoConfig:
    unknown = [w for w in verbs if w not in VERBS] + [w for w in objects if w not in OBJECTS]
    if unknown:
        raise ValueError(f"unknown verbs or objects {unknown}: choose among {VERBS} and {OBJECTS}")
    if len(set(verbs)) != len(verbs) or len(set(objects)) != len(objects) or not verbs or not objects:
        raise ValueError(f"verbs {list(verbs)} and objects {list(objects)} must be non-empty and distinct")
    classes = len(verbs) * len(objects)
    if not 0 < heldout < videos:
        raise ValueError(f"heldout={heldout} must be between 1 and videos - 1 = {videos - 1}")
    if (heldout * segments_per_video) % classes:
        raise ValueError(f"heldout x segments_per_video = {heldout * segments_per_video} is not a multiple of the "
                         f"{classes} (verb, object) classes: the held-out classes could not occur equally often")
    lo, hi = clips_per_segment
    if not 1 <= lo <= hi or segments_per_video < 1:
        raise ValueError(f"clips_per_segment {clips_per_segment} must be (fewest, most) >= 1, segments_per_video >= 1")
    if size < 32 or size % 16:
        raise ValueError(f"size {size} must be a multiple of 16, at least 32")
    if not 0 < validation_share < 1:
        raise ValueError(f"validation_share {validation_share} must be strictly between 0 and 1")
    return DemoConfig(videos, heldout, segments_per_video, (lo, hi), size, seed, tuple(verbs), tuple(objects),
                      validation_share, crf)


def _pick_id(index: int, subset: str, validation_share: float) -> str:
    """The first id `demo-<index>[-<n>]` that the corpus's hash split puts on `subset`'s side."""
    want = "validation" if subset == "validation" else "train"
    for n in range(10_000):
        vid = f"demo-{index:03d}" + (f"-{n}" if n else "")
        if split_of(vid, validation_share) == want:
            return vid
    raise ValueError(f"no id for video {index} falls in the corpus's {want} split with share {validation_share}")


def _balanced_classes(rng: np.random.Generator, classes: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """`n` classes in rounds of one shuffled copy of every class: counts differ by at most one."""
    out: list[tuple[str, str]] = []
    while len(out) < n:
        out.extend(classes[i] for i in rng.permutation(len(classes)))
    return out[:n]


def _plan(config: DemoConfig) -> list[_VideoPlan]:
    """Every video's id, side, segments and drawing parameters: all the randomness of a dataset, from its seed."""
    rng = np.random.default_rng([config.seed, 0])
    classes = [(v, o) for v in config.verbs for o in config.objects]
    heldout = set(rng.choice(config.videos, size=config.heldout, replace=False).tolist())
    # Both sides draw whole rounds of every class: the held-out side exactly (its size was checked), training
    # to within one.
    n_held = config.heldout * config.segments_per_video
    held_classes = iter(_balanced_classes(rng, classes, n_held))
    train_classes = iter(_balanced_classes(rng, classes, (config.videos - config.heldout) * config.segments_per_video))
    clip_s = FRAMES_PER_CLIP / FPS
    plans = []
    for i in range(config.videos):
        subset = "validation" if i in heldout else "training"
        vid = _pick_id(i, subset, config.validation_share)
        vr = np.random.default_rng([config.seed, 1, i])
        parts = []
        t = 0
        for s in range(config.segments_per_video):
            verb, obj = next(held_classes if subset == "validation" else train_classes)
            n_clips = int(vr.integers(config.clips_per_segment[0], config.clips_per_segment[1] + 1))
            narration = NARRATION[int(vr.integers(len(NARRATION)))].format(v=verb, o=obj)
            step = STEPS[int(vr.integers(len(STEPS)))].format(v=verb, o=obj)
            seg = DemoSegment(vid, s, round(t * clip_s, 3), round((t + n_clips) * clip_s, 3), verb, obj, narration, step)
            jitter = tuple(int(c) for c in vr.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3))
            parts.append(_SegmentPlan(seg, float(vr.uniform(*CARD_SIDE)), jitter, _motion(verb, vr)))  # type: ignore[arg-type]
            t += n_clips
        texture = TEXTURES[int(vr.integers(len(TEXTURES)))]
        tint = tuple(float(c) for c in vr.uniform(*TEXTURE_TINT, size=3))
        offset = tuple(float(c) for c in vr.uniform(0, 1, size=2))
        plans.append(_VideoPlan(vid, i, subset, texture, tint, offset, tuple(parts)))  # type: ignore[arg-type]
    return plans


def _motion(verb: str, rng: np.random.Generator) -> dict[str, float]:
    """The random parameters of one action; positions are shares of the frame side from the top left."""
    tilt = float(rng.uniform(-15, 15))  # degrees: the object's resting angle
    if verb == "slide":  # horizontal travel across the board, left or right
        y = float(rng.uniform(0.4, 0.6))
        x0, x1 = float(rng.uniform(0.27, 0.32)), float(rng.uniform(0.68, 0.73))
        if rng.random() < 0.5:
            x0, x1 = x1, x0
        return {"x0": x0, "x1": x1, "y0": y, "y1": y, "angle": tilt}
    if verb == "lift":  # upwards, slowing towards the top
        x = float(rng.uniform(0.4, 0.6))
        return {"x0": x, "x1": x, "y0": float(rng.uniform(0.68, 0.73)), "y1": float(rng.uniform(0.27, 0.32)),
                "ease": 0.7, "angle": tilt}
    if verb == "drop":  # downwards, speeding up
        x = float(rng.uniform(0.4, 0.6))
        return {"x0": x, "x1": x, "y0": float(rng.uniform(0.27, 0.32)), "y1": float(rng.uniform(0.68, 0.73)),
                "ease": 1.4, "angle": tilt}
    x, y = float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.42, 0.58))
    if verb == "spin":  # rotation in place, either way round
        speed = float(rng.uniform(150, 220)) * (1 if rng.random() < 0.5 else -1)
        return {"x0": x, "y0": y, "angle": float(rng.uniform(0, 360)), "spin": speed}
    if verb == "shake":  # fast small side-to-side oscillation
        return {"x0": x, "y0": y, "angle": tilt, "amplitude": float(rng.uniform(0.05, 0.07)),
                "hz": float(rng.uniform(2.2, 2.8)), "phase": float(rng.uniform(0, 2 * math.pi))}
    if verb == "squeeze":  # squashed flat and released, over and over
        return {"x0": x, "y0": y, "angle": tilt, "hz": float(rng.uniform(0.9, 1.2)),
                "phase": float(rng.uniform(0, 2 * math.pi))}
    raise ValueError(f"unknown verb {verb!r}")


def _pose(verb: str, m: dict[str, float], t: float, duration: float) -> tuple[float, float, float, float, float]:
    """(x, y, angle in degrees, x scale, y scale) of the object `t` seconds into a segment of `duration`."""
    u = t / duration
    if verb in {"slide", "lift", "drop"}:
        p = u ** m.get("ease", 1.0)
        return m["x0"] + (m["x1"] - m["x0"]) * p, m["y0"] + (m["y1"] - m["y0"]) * p, m["angle"], 1.0, 1.0
    if verb == "spin":
        return m["x0"], m["y0"], m["angle"] + m["spin"] * t, 1.0, 1.0
    if verb == "shake":
        return m["x0"] + m["amplitude"] * math.sin(2 * math.pi * m["hz"] * t + m["phase"]), m["y0"], m["angle"], 1.0, 1.0
    if verb == "squeeze":
        s = 0.5 - 0.5 * math.cos(2 * math.pi * m["hz"] * t + m["phase"])  # 0 released .. 1 squashed
        return m["x0"], m["y0"], m["angle"], 1.0 + 0.35 * s, 1.0 - 0.45 * s
    raise ValueError(f"unknown verb {verb!r}")


# --- drawing ---------------------------------------------------------------------------------------------------


def _photo(obj: str) -> np.ndarray:
    """The centred square of `obj`'s photograph, uint8 RGB."""
    package, name = PHOTOS[obj]
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        img = load_sample_image(name)
    else:
        from skimage import data

        img = getattr(data, name)()
        if name == "stereo_motorcycle":
            img = img[0]
    h, w = img.shape[:2]
    side = min(h, w)
    return np.ascontiguousarray(img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side, :3])


def _background(video: _VideoPlan, size: int) -> np.ndarray:
    """The video's background, uint8 (size, size, 3): a window of its grey texture photograph, tinted."""
    from PIL import Image
    from skimage import data

    grey = getattr(data, video.texture)()  # (512, 512) uint8
    side = grey.shape[0] // 2  # a window half the photograph's side: the texture at a natural scale
    y0, x0 = (int(o * (grey.shape[i] - side)) for i, o in enumerate(video.texture_offset))
    window = np.asarray(Image.fromarray(grey[y0:y0 + side, x0:x0 + side]).resize((size, size), Image.BILINEAR))
    return np.clip(window[..., None].astype(np.float32) * np.array(video.tint, np.float32) + 0.5, 0, 255).astype(np.uint8)


def _render_video(video: _VideoPlan, config: DemoConfig) -> list[np.ndarray]:
    """Every frame of a video, uint8 (size, size, 3) RGB: each segment's photo card moved over the background."""
    from PIL import Image

    size = config.size
    background = Image.fromarray(_background(video, size))
    photos: dict[str, np.ndarray] = {}
    frames = []
    for part in video.parts:
        seg = part.segment
        duration = seg.end - seg.start
        if seg.object not in photos:
            photos[seg.object] = _photo(seg.object)
        side = max(2, round(part.scale * size))
        # the card at its size once per segment (its colours moved by the segment's jitter), opaque RGBA
        small = np.asarray(Image.fromarray(photos[seg.object]).resize((side, side), Image.BILINEAR), np.int16)
        card = Image.fromarray(np.clip(small + np.array(part.colour_jitter, np.int16), 0, 255).astype(np.uint8)).convert("RGBA")
        for f in range(int(round(duration * FPS))):
            x, y, angle, sx, sy = _pose(seg.verb, part.motion, f / FPS, duration)
            shaped = card.resize((max(2, round(side * sx)), max(2, round(side * sy))), Image.BILINEAR)
            # PIL turns counter-clockwise; transparent corners where the turned card does not cover
            turned = shaped.rotate(-angle, resample=Image.BILINEAR, expand=True)
            frame = background.copy()
            frame.paste(turned, (round(x * size - turned.width / 2), round(y * size - turned.height / 2)), turned)
            frames.append(np.asarray(frame))
    return frames


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) RGB -> the planes of yuv420p pictures stacked as PyAV takes them, (..., H * 3 / 2, W).

    BT.601 limited range (what decoders assume of an untagged SD stream) in integer arithmetic, chroma from each
    2 x 2 block's mean colour. Done here rather than by FFmpeg's swscale, whose threaded conversion is not
    guaranteed to give the same bytes on every run.
    """
    *lead, h, w, _ = rgb.shape
    c = rgb.astype(np.int32)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    m = (c[..., 0::2, 0::2, :] + c[..., 1::2, 0::2, :] + c[..., 0::2, 1::2, :] + c[..., 1::2, 1::2, :] + 2) >> 2  # 2 x 2 means
    mr, mg, mb = m[..., 0], m[..., 1], m[..., 2]
    u = ((-38 * mr - 74 * mg + 112 * mb + 128) >> 8) + 128
    v = ((112 * mr - 94 * mg - 18 * mb + 128) >> 8) + 128
    return np.concatenate([y, u.reshape(*lead, h // 4, w), v.reshape(*lead, h // 4, w)], axis=-2).astype(np.uint8)


def _yuv_frame(av: Any, yuv: np.ndarray, size: int) -> Any:
    """A yuv420p VideoFrame whose every byte is set, the row padding included (PyAV leaves it uninitialised,
    and libx264's vector code reads it: the chroma rows of a 112-pixel picture are 56 bytes in rows of 64)."""
    frame = av.VideoFrame(size, size, "yuv420p")
    half = size // 2
    planes = (yuv[:size], yuv[size : size + half // 2].reshape(half, half), yuv[size + half // 2 :].reshape(half, half))
    for plane, data in zip(frame.planes, planes, strict=True):
        padded = np.pad(data, ((0, 0), (0, plane.line_size - data.shape[1])), mode="edge")
        plane.update(np.ascontiguousarray(padded).tobytes())
    return frame


def _encode(frames: list[np.ndarray], config: DemoConfig) -> bytes:
    """H.264 in MP4 with PyAV's libx264, from frames converted to yuv420p here (the same bytes on every run)."""
    import io
    from fractions import Fraction

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        # One thread; no B-frames and no macroblock tree: with them, libx264 (as PyAV ships it) gives different
        # bytes for the same frames from one run to the next.
        stream = out.add_stream("libx264", rate=FPS, options={
            "crf": str(config.crf), "preset": "veryfast", "threads": "1", "x264-params": "bframes=0:mbtree=0"})
        stream.width = stream.height = config.size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.time_base = Fraction(1, FPS)
        for i, rgb in enumerate(frames):
            frame = _yuv_frame(av, rgb_to_yuv420p(rgb), config.size)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


# --- narration and annotations -------------------------------------------------------------------------------


def _vtt_time(t: float) -> str:
    ms = int(round(t * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt(segments: Sequence[DemoSegment]) -> str:
    """The narration as WebVTT: one cue per segment, spanning it."""
    return "WEBVTT\n\n" + "".join(f"{_vtt_time(s.start)} --> {_vtt_time(s.end)}\n{s.narration}\n\n" for s in segments)


def annotations_json(plan: Sequence[_VideoPlan]) -> str:
    """YouCook II's annotation format: one annotation per segment, its step sentence and true verb and object."""
    database = {
        v.video_id: {
            "duration": v.seconds,
            "subset": v.subset,
            "recipe_type": "demo",
            "annotations": [{"segment": [s.start, s.end], "id": s.index, "sentence": s.sentence,
                             "verb": s.verb, "object": s.object} for s in v.segments],
            "video_url": f"videos/{v.video_id}.mp4",
        }
        for v in plan
    }
    return json.dumps({"database": database}, indent=1, sort_keys=False) + "\n"


# --- files -----------------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_if_changed(path: Path, data: bytes) -> str:
    """Write `data` to `path` unless it already holds exactly that (its mtime then stays); return the sha256."""
    digest = _sha256(data)
    if path.is_file() and path.stat().st_size == len(data) and _sha256(path.read_bytes()) == digest:
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return digest


def _files_intact(folder: Path, files: dict[str, str]) -> bool:
    return bool(files) and all((folder / name).is_file() and _sha256((folder / name).read_bytes()) == digest
                               for name, digest in files.items())


def _with_files(dataset: DemoDataset, files: dict[str, str]) -> DemoDataset:
    from dataclasses import replace

    return replace(dataset, files=dict(files))
