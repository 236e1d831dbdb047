"""The README's "fingerprint covers" column (the stages table of the Ingest section), entry by entry.

Each entry is changed alone, and exactly the fingerprint of the stage that reads it must change: a missing
entry would let a stage be skipped on stale inputs, an extra one would re-run stages for nothing. A field kept
out of fingerprints (`NOT_FINGERPRINTED`: retries, batch sizes, threads) changes none.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project
from tests.helpers.tfhub_models import build_s3d_like
from videobert.core.errors import SettingsError
from videobert.core.params import FeaturesParams, Params
from videobert.core.runtime import Runtime
from videobert.core.settings import Settings, load_settings
from videobert.db.models import Video
from videobert.features.stage import features_fingerprint
from videobert.ingest.stages import download_fingerprint, punctuate_fingerprint, transcript_fingerprint

STAGES = ("download", "transcript", "punctuate", "features")


@dataclass(frozen=True)
class World:
    """Everything the four ingest fingerprints read."""

    settings: Settings
    video: Video
    params: Params
    transcript_sha256: str = "a" * 64  # the stored transcript punctuate reads
    video_sha256: str = "b" * 64  # the stored video features reads


class Fingerprints:
    """The four fingerprints of a World, with one Runtime (and so one loaded extractor) per settings."""

    def __init__(self, project: Project) -> None:
        base = project.runtime()
        self._db, self._store = base.db, base.store
        self._runtimes: dict[str, Runtime] = {}

    def __call__(self, w: World) -> dict[str, str]:
        key = w.settings.model_dump_json()
        rt = self._runtimes.setdefault(key, Runtime(w.settings, self._db, self._store))
        return {
            "download": download_fingerprint(w.video, w.params),
            "transcript": transcript_fingerprint(rt, w.video, w.params),
            "punctuate": punctuate_fingerprint(rt, w.params, w.transcript_sha256),
            "features": features_fingerprint(rt, w.params, w.video_sha256),
        }


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {stage for stage in STAGES if before[stage] != after[stage]}


def _whisper_model(folder: Path, weights: bytes = b"\1" * 1000) -> Path:
    """A folder as the whisper source's identity sees it (a CTranslate2 Whisper model's files; never loaded)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        (folder / name).write_text("{}")
    (folder / "model.bin").write_bytes(weights)
    return folder


def _punctuation_model(folder: Path, config: str = '{"labels": 6}', weights: int = 1000) -> Path:
    """A model folder as model_identity sees it: a config (content counts) and a weights file (size counts)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config)
    (folder / "model.safetensors").write_bytes(b"\0" * weights)
    return folder


@pytest.fixture(scope="module")
def s3d_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two S3D-like SavedModels with different weights, and a copy of the first at another path."""
    root = tmp_path_factory.mktemp("s3d")
    models = {"a": build_s3d_like(root / "a", seed=0), "b": build_s3d_like(root / "b", seed=7)}
    models["a-copy"] = Path(shutil.copytree(root / "a", root / "a-copy"))
    return models


@pytest.fixture
def local_world(project: Project, s3d_models: dict[str, Path]) -> World:
    """A local video with a subtitle file beside it, a punctuation model folder, a Whisper model folder, the
    S3D-like model."""
    video_file = project.root / "videos" / "clip.mp4"
    video_file.parent.mkdir()
    video_file.write_bytes(b"\0" * 5000)  # fingerprints read the file's identity, not its content
    (project.root / "videos" / "clip.en.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n")
    settings = load_settings(env_file=None, data_dir=project.data, s3d_handle=str(s3d_models["a"]),
                             punctuation_model=str(_punctuation_model(project.root / "punct")),
                             whisper_model=str(_whisper_model(project.root / "whisper")))
    video = Video(id="clip", source="local", source_id=str(video_file), url=None)
    return World(settings, video, Params.model_validate({"features": {"extractor": "s3d"}}))


@pytest.fixture
def youtube_world(project: Project) -> World:
    """A YouTube video whose transcript sources include HowTo100M's caption file."""
    captions = project.root / "raw_caption.json"
    captions.write_text('{"abcdefghijk": {"start": [0], "end": [1], "text": ["hello"]}}')
    params = Params.model_validate({"transcript": {"howto100m_captions": str(captions)},
                                    "features": {"extractor": "baseline"}})
    video = Video(id="abcdefghijk", source="youtube", source_id="abcdefghijk",
                  url="https://www.youtube.com/watch?v=abcdefghijk")
    return World(load_settings(env_file=None, data_dir=project.data), video, params)


def _with(params: Params, section: str, **values: Any) -> Params:
    """`params` with fields of one section changed (validated, as if read from params.yaml)."""
    data = params.model_dump(mode="json")
    data[section].update(values)
    return Params.model_validate(data)


ITS_OWN_TEST = object()

# Every field of the sections the ingest stages read, with another valid value, and the one stage whose
# fingerprint must change (None: kept out of every fingerprint). A new field must be added here.
PARAM_CHANGES: dict[str, dict[str, tuple[Any, str | None]]] = {
    "download": {
        "min_height": (480, "download"), "format": ("b", "download"), "format_sort": (["+size"], "download"),
        "max_duration_s": (600.0, "download"), "http_retries": (5, "download"),
        "socket_timeout_s": (10.0, "download"), "task_retries": (9, None), "retry_backoff_s": (1.0, None),
    },
    "transcript": {
        "sources": (["subtitles", "youtube"], "transcript"), "languages": (["de", "en"], "transcript"),
        "prefer_manual": (False, "transcript"), "dedupe_rolling": (False, "transcript"),
        "whisper_vad_filter": (False, "transcript"), "whisper_beam_size": (1, "transcript"),
        "whisper_compute_type": ("float32", "transcript"),
        "task_retries": (9, None), "retry_backoff_s": (1.0, None),
        "howto100m_captions": (ITS_OWN_TEST, None),  # the path is kept out, the file's identity is an input
    },
    "punctuate": {
        "method": ("model", "punctuate"), "word_timing": ("uniform", "punctuate"),
        "sentence_end_labels": ([".", "?"], "punctuate"), "fallback_pause_s": (2.0, "punctuate"),
        "fallback_max_words": (10, "punctuate"),
    },
    "features": {
        "extractor": ("baseline", "features"), "fps": (10.0, "features"), "frames_per_clip": (16, "features"),
        "frame_size": (112, "features"), "partial_clip": ("drop", "features"), "dtype": ("float32", "features"),
        "frame_jpeg_quality": (90, "features"), "s3d_output": ("video_embedding", "features"),
        "i3d_pool_tensor": ("RGB/x", "features"), "batch_size": (1, None), "decoder_threads": (4, None),
        # read by the efficientnet extractor only, and fingerprinted only with it (tests/test_efficientnet.py)
        "frames_per_clip_sampled": (ITS_OWN_TEST, None), "clip_pooling": (ITS_OWN_TEST, None),
        "change_weight": (ITS_OWN_TEST, None), "track_weight": (ITS_OWN_TEST, None),
    },
    # sections no ingest stage reads
    "codebook": {"k": (4, None), "levels": (2, None)},
    "corpus": {"max_len": (64, None)},
    "ingest": {"concurrency": (1, None)},
}


def test_the_table_covers_every_field_of_the_ingest_sections() -> None:
    for section in ("download", "transcript", "punctuate", "features"):
        fields = set(type(getattr(Params(), section)).model_fields)
        assert set(PARAM_CHANGES[section]) == fields, section
        not_fingerprinted = {f for f, (_, stage) in PARAM_CHANGES[section].items() if stage is None}
        assert not_fingerprinted == set(type(getattr(Params(), section)).NOT_FINGERPRINTED) | (
            {"howto100m_captions"} if section == "transcript" else set()) | (
            set(FeaturesParams.EFFICIENTNET_ONLY) if section == "features" else set()), section


def test_each_parameter_changes_exactly_its_stage(project: Project, local_world: World) -> None:
    fingerprints = Fingerprints(project)
    base = fingerprints(local_world)
    for section, fields in PARAM_CHANGES.items():
        for field, (value, stage) in fields.items():
            if value is ITS_OWN_TEST:
                continue
            after = fingerprints(replace(local_world, params=_with(local_world.params, section, **{field: value})))
            assert changed(base, after) == ({stage} if stage else set()), f"{section}.{field} -> {value!r}"


def _touch(path: Path, delta_ns: int) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + delta_ns))


def test_local_file_identity_is_the_download_s(project: Project, local_world: World) -> None:
    """The local file's path, size and mtime: the download's input (its path is the video's source id, which
    names its transcript too), and the transcript's when Whisper may hear it."""
    fingerprints = Fingerprints(project)
    video_file = Path(local_world.video.source_id)
    base = fingerprints(local_world)
    _touch(video_file, 1_000_000_000)  # same size, newer
    touched = fingerprints(local_world)
    assert changed(base, touched) == {"download", "transcript"}
    without_whisper = replace(local_world, params=_with(local_world.params, "transcript", sources=["subtitles"]))
    before = fingerprints(without_whisper)
    with video_file.open("ab") as f:
        f.write(b"\0")
    assert changed(before, fingerprints(without_whisper)) == {"download"}
    grown = fingerprints(local_world)
    assert changed(touched, grown) == {"download", "transcript"}
    moved = project.root / "elsewhere" / "clip.mp4"
    moved.parent.mkdir()
    shutil.copy2(video_file, moved)  # same size and mtime, another path
    shutil.copy2(video_file.with_suffix(".en.vtt"), moved.with_suffix(".en.vtt"))
    after = fingerprints(replace(local_world, video=Video(id="clip", source="local", source_id=str(moved))))
    assert changed(grown, after) == {"download", "transcript"}
    video_file.unlink()  # gone: the download must not stay up to date, nor a transcript heard from it
    assert changed(grown, fingerprints(local_world)) == {"download", "transcript"}


def test_url_is_the_download_s(project: Project, youtube_world: World) -> None:
    fingerprints = Fingerprints(project)
    base = fingerprints(youtube_world)
    other = Video(id="abcdefghijk", source="youtube", source_id="abcdefghijk",
                  url="https://www.youtube.com/watch?v=abcdefghijk&t=1")
    assert changed(base, fingerprints(replace(youtube_world, video=other))) == {"download"}


def test_caption_and_subtitle_files_are_the_transcript_s(project: Project, youtube_world: World,
                                                          local_world: World) -> None:
    fingerprints = Fingerprints(project)
    # HowTo100M's caption file: its identity, not its path
    captions = Path(youtube_world.params.transcript.howto100m_captions or "")
    base = fingerprints(youtube_world)
    copy = project.root / "moved" / "raw_caption.json"
    copy.parent.mkdir()
    shutil.copy2(captions, copy)
    moved = replace(youtube_world, params=_with(youtube_world.params, "transcript", howto100m_captions=str(copy)))
    assert changed(base, fingerprints(moved)) == set()
    copy.write_text(copy.read_text().replace("hello", "hello there"))
    assert changed(base, Fingerprints(project)(moved)) == {"transcript"}
    # the subtitle file beside a local video
    base = fingerprints(local_world)
    Path(local_world.video.source_id).with_suffix(".en.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nhi\n")
    edited = fingerprints(local_world)
    assert changed(base, edited) == {"transcript"}
    Path(local_world.video.source_id).with_suffix(".en.vtt").unlink()
    assert changed(edited, fingerprints(local_world)) == {"transcript"}


def test_the_whisper_weights_and_the_audio_are_the_transcript_s(project: Project, local_world: World,
                                                               youtube_world: World) -> None:
    """The Whisper model's identity is a hash of its files' bytes (weights included), not their path or size; it
    counts only while `whisper` is a source. A downloaded video's audio is its stored download's sha256."""
    fingerprints = Fingerprints(project)
    base = fingerprints(local_world)

    def with_whisper(path: Path | None, world: World = local_world) -> World:
        settings = world.settings.model_copy(update={"whisper_model": None if path is None else str(path)})
        return replace(world, settings=settings)

    model = Path(local_world.settings.whisper_model or "")
    other_weights = _whisper_model(project.root / "w-other", weights=b"\2" * 1000)  # same size, other bytes
    assert changed(base, fingerprints(with_whisper(other_weights))) == {"transcript"}
    same = Path(shutil.copytree(model, project.root / "w-copy"))  # the same model at another path
    assert changed(base, fingerprints(with_whisper(same))) == set()
    no_whisper = _with(local_world.params, "transcript", sources=["youtube", "howto100m", "subtitles"])
    assert (fingerprints(replace(with_whisper(other_weights), params=no_whisper))
            == fingerprints(replace(local_world, params=no_whisper)))

    with pytest.raises(SettingsError, match="VIDEOBERT_WHISPER_MODEL=.*missing model.bin"):
        fingerprints(with_whisper(project.root / "punct"))  # a folder, not a Whisper model: named at once

    base_rt = project.runtime()
    rt = Runtime(with_whisper(model, youtube_world).settings, base_rt.db, base_rt.store)
    video, params = youtube_world.video, youtube_world.params
    not_downloaded = transcript_fingerprint(rt, video, params)
    downloaded = transcript_fingerprint(rt, video, params, "e" * 64)
    assert len({not_downloaded, downloaded, transcript_fingerprint(rt, video, params, "f" * 64)}) == 3


def test_the_transcript_and_the_model_are_punctuate_s(project: Project, local_world: World) -> None:
    fingerprints = Fingerprints(project)
    base = fingerprints(local_world)
    assert changed(base, fingerprints(replace(local_world, transcript_sha256="c" * 64))) == {"punctuate"}

    def with_model(path: Path | str | None) -> World:
        settings = local_world.settings.model_copy(update={"punctuation_model": None if path is None else str(path)})
        return replace(local_world, settings=settings)

    model = Path(local_world.settings.punctuation_model or "")
    configs = {
        "config": _punctuation_model(project.root / "m-config", config='{"labels": 7}'),
        "weights": _punctuation_model(project.root / "m-weights", weights=2000),
        "none": None,
        "hub": "oliverguhr/fullstop-punctuation-multilang-large",
    }
    for name, other in configs.items():
        assert changed(base, fingerprints(with_model(other))) == {"punctuate"}, name
    same = Path(shutil.copytree(model, project.root / "m-copy"))  # the same model at another path
    assert changed(base, fingerprints(with_model(same))) == set()


def test_the_video_and_the_extractor_weights_are_features_s(project: Project, local_world: World,
                                                             s3d_models: dict[str, Path]) -> None:
    fingerprints = Fingerprints(project)
    base = fingerprints(local_world)
    assert changed(base, fingerprints(replace(local_world, video_sha256="d" * 64))) == {"features"}

    def with_s3d(path: Path) -> World:
        return replace(local_world, settings=local_world.settings.model_copy(update={"s3d_handle": str(path)}))

    assert changed(base, fingerprints(with_s3d(s3d_models["b"]))) == {"features"}  # other weights
    assert changed(base, fingerprints(with_s3d(s3d_models["a-copy"]))) == set()  # same weights elsewhere




def test_a_caption_file_replaced_under_a_running_worker_changes_the_transcript_s(project: Project,
                                                                                  youtube_world: World) -> None:
    fingerprints = Fingerprints(project)  # one Runtime, as in one process
    base = fingerprints(youtube_world)
    captions = Path(youtube_world.params.transcript.howto100m_captions or "")
    captions.write_text(captions.read_text().replace("hello", "hello there"))
    assert changed(base, fingerprints(youtube_world)) == {"transcript"}
