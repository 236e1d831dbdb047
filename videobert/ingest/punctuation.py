"""Punctuation restoration and timed sentences.

ASR gives a stream of caption lines with times but little or no punctuation. Each line's words get times
by interpolation inside the line (proportional to their length, or uniform); a punctuation model labels
every word with the mark that follows it; a sentence ends at an end mark. A sentence's span runs from its
first word's start to its last word's end, so neighbouring sentences never share a time span, even when they
come from the same caption line.

A transcript that its recognizer punctuated and timed word by word (Whisper) is split as it is: its own
marks end the sentences and its own word times bound them (`asr_sentences`, method `asr`); no model runs.

The model is deepmultilingualpunctuation's token classifier, loaded from a local directory or a hub name.
When no model is configured (or it cannot be loaded) a documented rule-based fallback runs, and the method
used is recorded per video.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from videobert.core.errors import SettingsError
from videobert.core.params import PunctuateParams
from videobert.ingest.transcripts import Caption

log = logging.getLogger(__name__)

NO_MARK = "0"  # deepmultilingualpunctuation's label for "no punctuation after this word"
_STRIP_MARKS_RE = re.compile(r"(?<!\d)[.,;:!?](?!\d)")  # marks outside numbers, as the model's preprocessing


@dataclass(frozen=True)
class Word:
    """A word with its times, seconds: interpolated inside its caption line, or the recognizer's own."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Sentence:
    """A punctuated sentence with its time span, seconds."""

    start: float
    end: float
    text: str

    def to_json(self) -> dict[str, float | str]:
        return asdict(self)


# --- words and their times -----------------------------------------------------------------------------------


def words_from_captions(captions: Sequence[Caption], timing: str = "chars") -> list[Word]:
    """Split caption lines into words with times interpolated inside each line.

    A line's span ends at its own end or at the next line's start, whichever comes first (YouTube's
    durations are display times and overlap the next line). `timing="chars"` gives each word a share of the
    span proportional to its length plus one (for the space); `"uniform"` gives equal shares. A line that
    carries its words' own times (a speech recognizer's) keeps them.
    """
    words: list[Word] = []
    for i, cap in enumerate(captions):
        if cap.words:
            words.extend(Word(w.text, w.start, w.end) for w in cap.words)
            continue
        tokens = cap.text.split()
        if not tokens:
            continue
        start = cap.start
        end = cap.end
        if i + 1 < len(captions) and captions[i + 1].start > start:
            end = min(end, captions[i + 1].start)
        if end <= start:  # zero-length or inverted line: give it a token duration
            end = start + 0.01 * len(tokens)
        weights = [len(t) + 1 for t in tokens] if timing == "chars" else [1] * len(tokens)
        total = float(sum(weights))
        cum = 0.0
        for k, (tok, w) in enumerate(zip(tokens, weights, strict=True)):
            t0 = start + (end - start) * cum / total
            cum += w
            t1 = end if k == len(tokens) - 1 else start + (end - start) * cum / total
            words.append(Word(tok, t0, t1))
    return words


# --- labelers ------------------------------------------------------------------------------------------------


class Labeler(Protocol):
    """Gives each word the punctuation mark that follows it (NO_MARK for none)."""

    name: str

    def label(self, words: Sequence[Word]) -> list[str]: ...


class FallbackLabeler:
    """Rules, no model: keep the marks already in the text; else end a sentence at a pause or a length.

    * a word that already ends with '.', '?' or '!' ends a sentence (manual captions are punctuated);
    * otherwise a pause of at least `pause_s` before the next word ends the sentence;
    * and no sentence grows past `max_words` words.
    """

    def __init__(self, pause_s: float, max_words: int) -> None:
        self.pause_s = pause_s
        self.max_words = max_words
        self.name = f"fallback:pause{pause_s:g}s-max{max_words}w"

    def label(self, words: Sequence[Word]) -> list[str]:
        labels = []
        run = 0
        for i, w in enumerate(words):
            run += 1
            mark = w.text[-1] if w.text[-1:] in {".", "?", "!"} else NO_MARK
            if mark == NO_MARK:
                pause = words[i + 1].start - w.end if i + 1 < len(words) else math.inf
                if pause >= self.pause_s or run >= self.max_words or i + 1 == len(words):
                    mark = "."
            labels.append(mark)
            if mark in {".", "?", "!"}:
                run = 0
        return labels


class ModelLabeler:
    """deepmultilingualpunctuation's model, adapted to transformers 5 and to local model directories."""

    def __init__(self, model: str, device: str | None = None) -> None:
        self.model_ref = model
        self._model = _load_punctuation_model(model, device)
        self.name = f"model:{Path(model).name if Path(model).exists() else model}"

    def label(self, words: Sequence[Word]) -> list[str]:
        if not words:
            return []
        clean = [_STRIP_MARKS_RE.sub("", w.text) or w.text for w in words]
        tagged = self._model.predict(clean)
        labels = []
        for _word, label, _score in tagged:
            labels.append(str(label) if str(label) in {".", ",", "?", "-", ":", "!"} else NO_MARK)
        return labels


def _load_punctuation_model(model: str, device: str | None):  # noqa: ANN202
    """A PunctuationModel whose pipeline is built the transformers-5 way (no `grouped_entities`)."""
    import torch
    from deepmultilingualpunctuation import PunctuationModel
    from transformers import pipeline

    class _Model(PunctuationModel):
        def __init__(self, name: str, dev: str | None) -> None:  # noqa: D401 - do not call the parent's
            if dev is None:
                dev = "cuda:0" if torch.cuda.is_available() else "cpu"
            # aggregation_strategy="none" gives one result per sub-token with its end offset, which is what
            # PunctuationModel.predict reads; transformers 5 removed the old `grouped_entities` argument.
            self.pipe = pipeline("token-classification", model=name, aggregation_strategy="none", device=dev)

    try:
        return _Model(model, device)
    except OSError as exc:
        raise SettingsError(
            f"punctuation model {model!r} cannot be loaded: {exc}. Set VIDEOBERT_PUNCTUATION_MODEL to a local "
            "directory (e.g. a copy of oliverguhr/fullstop-punctuation-multilang-large), or use "
            "punctuate.method: fallback"
        ) from None


def model_identity(model: str | None) -> str | None:
    """What identifies a model's behaviour for fingerprints: its config and weight files' sizes and names."""
    if model is None:
        return None
    path = Path(model)
    if not path.is_dir():
        return f"hub:{model}"
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        digest.update(rel.encode())
        if f.suffix in {".json", ".txt", ".model"} and f.stat().st_size < (1 << 20):
            digest.update(f.read_bytes())  # configs and vocabularies: content
        else:
            digest.update(str(f.stat().st_size).encode())  # weights: size (hashing GBs per run is too slow)
    return "dir:" + digest.hexdigest()


# --- sentences ---------------------------------------------------------------------------------------------


def sentences_from_labels(words: Sequence[Word], labels: Sequence[str], end_labels: Sequence[str]) -> list[Sentence]:
    """Join labelled words into sentences; a word whose label is in `end_labels` closes one."""
    if len(words) != len(labels):
        raise ValueError(f"{len(words)} words but {len(labels)} labels")
    out: list[Sentence] = []
    current: list[tuple[Word, str]] = []
    ends = set(end_labels)

    def close() -> None:
        if not current:
            return
        parts = []
        for w, lab in current:
            text = _STRIP_MARKS_RE.sub("", w.text) or w.text
            parts.append(text + (lab if lab != NO_MARK and lab != "-" else ""))
        text = " ".join(parts)
        if text[-1:] not in {".", "?", "!"}:
            text += "."
        out.append(Sentence(current[0][0].start, current[-1][0].end, text))
        current.clear()

    for w, lab in zip(words, labels, strict=True):
        current.append((w, lab))
        if lab in ends:
            close()
    close()
    return out


def make_labeler(params: PunctuateParams, model: str | None) -> Labeler:
    """The labeler `params.method` asks for; `auto` falls back to the rules when no model is configured."""
    fallback = FallbackLabeler(params.fallback_pause_s, params.fallback_max_words)
    if params.method == "fallback":
        return fallback
    if model is None:
        if params.method == "model":
            raise SettingsError("punctuate.method is 'model' but VIDEOBERT_PUNCTUATION_MODEL is not set")
        return fallback
    try:
        return ModelLabeler(model)
    except SettingsError:
        if params.method == "model":
            raise
        log.warning("punctuation model %s cannot be loaded; using the rule-based fallback", model)
        return fallback


def punctuate(captions: Sequence[Caption], labeler: Labeler, params: PunctuateParams) -> list[Sentence]:
    """Timed sentences from timed captions."""
    words = words_from_captions(captions, params.word_timing)
    return sentences_from_labels(words, labeler.label(words), params.sentence_end_labels)


ASR_METHOD = "asr"  # the method recorded for sentences split on the recognizer's own punctuation
_CLOSERS = "\"')]}»”’"  # quotes and brackets that may follow a sentence's end mark


def asr_sentences(captions: Sequence[Caption], params: PunctuateParams) -> list[Sentence]:
    """Sentences of a transcript its recognizer punctuated: its words, marks and times as they are.

    A sentence ends after a word whose last mark (closing quotes and brackets aside) is one of
    `sentence_end_labels`; as in the fallback, none grows past `fallback_max_words` words (a recognizer that
    stops punctuating must not make one sentence of a whole video). A sentence without an end mark gets '.'.
    """
    ends = tuple(params.sentence_end_labels)
    out: list[Sentence] = []
    current: list[Word] = []

    def close() -> None:
        if not current:
            return
        text = " ".join(w.text for w in current)
        if not text.rstrip(_CLOSERS).endswith((".", "?", "!")):
            text += "."
        out.append(Sentence(current[0].start, current[-1].end, text))
        current.clear()

    for w in words_from_captions(captions, params.word_timing):
        current.append(w)
        if w.text.rstrip(_CLOSERS).endswith(ends) or len(current) >= params.fallback_max_words:
            close()
    close()
    return out


def sentences_json(sentences: Sequence[Sentence], method: str, language: str | None, english: bool) -> str:
    """The stored form of a video's sentences."""
    return json.dumps(
        {"method": method, "language": language, "english": english, "sentences": [s.to_json() for s in sentences]},
        ensure_ascii=False,
    )
