"""Punctuation restoration and timed sentences: word timings, the real model path, the fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.punct_model import build_punctuation_model
from videobert.core.errors import SettingsError
from videobert.core.params import PunctuateParams
from videobert.ingest.punctuation import (
    FallbackLabeler,
    ModelLabeler,
    Word,
    asr_sentences,
    make_labeler,
    model_identity,
    punctuate,
    sentences_from_labels,
    words_from_captions,
)
from videobert.ingest.transcripts import Caption, CaptionWord


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_punctuation_model(tmp_path_factory.mktemp("punct") / "tiny-punct")


def test_word_times_by_characters_and_uniform() -> None:
    caps = [Caption(0.0, 4.0, "a bbb"), Caption(2.0, 3.0, "cc")]  # the first line's display overlaps the next
    words = words_from_captions(caps, "chars")
    # the first line ends where the next starts (2.0 s); 'a' gets 2/6 of it, 'bbb' 4/6
    assert [(w.text, round(w.start, 3), round(w.end, 3)) for w in words] == [
        ("a", 0.0, 0.667), ("bbb", 0.667, 2.0), ("cc", 2.0, 3.0),
    ]
    uniform = words_from_captions(caps, "uniform")
    assert [round(w.end, 3) for w in uniform] == [1.0, 2.0, 3.0]


def _spoken(start: float, *words: tuple[str, float]) -> Caption:
    """A caption as Whisper gives it: each word with its own (start, end)."""
    timed, t = [], start
    for text, length in words:
        timed.append(CaptionWord(t, t + length, text))
        t += length + 0.1
    return Caption(timed[0].start, timed[-1].end, " ".join(w.text for w in timed), tuple(timed))


def test_asr_sentences_keep_the_recognizer_s_marks_and_word_times() -> None:
    caps = [_spoken(0.5, ("First,", 0.4), ("whisk", 0.2), ("the", 0.1), ("eggs.", 0.3), ("Then", 0.2)),
            _spoken(3.0, ("fold", 0.3), ("it", 0.1), ('in!"', 0.2), ("Done", 0.3))]
    sentences = asr_sentences(caps, PunctuateParams())
    assert [(s.start, s.end, s.text) for s in sentences] == [
        (0.5, caps[0].words[3].end, "First, whisk the eggs."),  # marks kept; sentences can span caption lines
        (caps[0].words[4].start, caps[1].words[2].end, 'Then fold it in!"'),  # a closing quote after the mark
        (caps[1].words[3].start, caps[1].end, "Done."),
    ]
    # words keep their own times (a line's words are not spread over it as for captions without them)
    assert [w.start for w in words_from_captions(caps)] == [w.start for c in caps for w in c.words]
    # a recognizer that stops punctuating does not make one sentence of a whole video
    long = [_spoken(0.0, *[("word", 0.2)] * 7)]
    assert [s.text for s in asr_sentences(long, PunctuateParams(fallback_max_words=3))] == [
        "word word word.", "word word word.", "word."]


def test_sentences_from_labels_have_disjoint_spans() -> None:
    words = [Word("crack", 0, 1), Word("eggs", 1, 2), Word("then", 2, 2.5), Word("whisk", 2.5, 3)]
    sentences = sentences_from_labels(words, ["0", ".", "0", "0"], [".", "?", "!"])
    assert [(s.start, s.end, s.text) for s in sentences] == [(0, 2, "crack eggs."), (2, 3, "then whisk.")]
    with pytest.raises(ValueError, match="4 words but 3 labels"):
        sentences_from_labels(words, ["0", "0", "0"], ["."])


def test_real_pipeline_with_a_local_model(model_dir: Path) -> None:
    labeler = make_labeler(PunctuateParams(method="model"), str(model_dir))
    assert isinstance(labeler, ModelLabeler) and labeler.name == "model:tiny-punct"
    caps = [
        Caption(0.0, 3.0, "whisk the eggs until done"),
        Caption(3.0, 6.0, "pour the batter, cook until done then flip"),
    ]
    sentences = punctuate(caps, labeler, PunctuateParams(method="model"))
    assert [s.text for s in sentences] == [
        "whisk the eggs until done.", "pour the batter cook until done.", "then flip.",
    ]
    # two sentences from the same caption line get different, touching spans
    assert sentences[1].start == 3.0 and sentences[1].end == sentences[2].start < 6.0 == sentences[2].end
    assert all(a.end <= b.start for a, b in zip(sentences, sentences[1:], strict=False))


def test_model_handles_more_words_than_one_chunk(model_dir: Path) -> None:
    labeler = ModelLabeler(str(model_dir))
    text = " ".join(["stir the sauce until done"] * 120)  # 600 words: three overlapping chunks
    words = words_from_captions([Caption(0, 600, text)])
    labels = labeler.label(words)
    assert len(labels) == 600
    assert [i for i, lab in enumerate(labels) if lab == "."] == list(range(4, 600, 5))


def test_fallback_rules() -> None:
    fb = FallbackLabeler(pause_s=1.0, max_words=4)
    words = [Word("Heat", 0, 0.5), Word("the", 0.5, 1), Word("pan.", 1, 1.5), Word("add", 1.5, 2),
             Word("oil", 2, 2.5), Word("wait", 4.0, 4.5), Word("a", 4.5, 5), Word("b", 5, 5.5), Word("c", 5.5, 6),
             Word("d", 6, 6.5)]
    # existing mark ends 'pan.'; the 1.5 s pause after 'oil' ends a sentence; 4 words at most; last word ends
    assert fb.label(words) == ["0", "0", ".", "0", ".", "0", "0", "0", ".", "."]
    assert fb.name == "fallback:pause1s-max4w"


def test_auto_method_falls_back_without_a_model(tmp_path: Path) -> None:
    assert isinstance(make_labeler(PunctuateParams(), None), FallbackLabeler)
    with pytest.raises(SettingsError, match="VIDEOBERT_PUNCTUATION_MODEL is not set"):
        make_labeler(PunctuateParams(method="model"), None)
    missing = str(tmp_path / "no-such-model")
    assert isinstance(make_labeler(PunctuateParams(), missing), FallbackLabeler)
    with pytest.raises(SettingsError, match="cannot be loaded"):
        make_labeler(PunctuateParams(method="model"), missing)


def test_model_identity_changes_with_the_model(tmp_path: Path, model_dir: Path) -> None:
    other = build_punctuation_model(tmp_path / "other", end_words=("flip",))
    assert model_identity(str(model_dir)) == model_identity(str(model_dir))
    (other / "config.json").write_text((other / "config.json").read_text().replace('"hidden_act"', '"hidden_act" '))
    assert model_identity(str(model_dir)) != model_identity(str(other))
    assert model_identity(None) is None
