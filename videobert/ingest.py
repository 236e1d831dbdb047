"""The ingest stages of one video (download, transcript, punctuate) and the run/skip plan for many.

Each stage is a plain function of (runtime, video id, params) that computes its fingerprint, then runs its
body through `execute_stage` (claim, write artifacts, verify, record). `plan_ingest` computes the same
fingerprints for many videos at once from two queries, so that stages that are up to date are skipped
before anything is scheduled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videobert.db import repository as repo
from videobert.db.models import StageStatus, Video
from videobert.decode import DecodeReport
from videobert.download import download
from videobert.errors import PermanentStageError
from videobert.features import extract_video
from videobert.fingerprint import stage_fingerprint
from videobert.howto100m import HowTo100MCaptions
from videobert.media import TooLongError, probe
from videobert.params import Params
from videobert.punctuation import model_identity, punctuate, sentences_json
from videobert.runtime import Runtime
from videobert.stages import StageOptions, StageOutput, StageResult, StageSpec, execute_stage
from videobert.storage import ObjectInfo, keys
from videobert.transcripts import (
    Transcript,
    find_subtitles,
    from_howto100m,
    from_subtitle_file,
    from_youtube,
    tidy,
)

log = logging.getLogger(__name__)

DOWNLOAD = StageSpec("download", "1")
TRANSCRIPT = StageSpec("transcript", "1")
PUNCTUATE = StageSpec("punctuate", "1")
FEATURES = StageSpec("features", "1")
INGEST_STAGES = (DOWNLOAD, TRANSCRIPT, PUNCTUATE, FEATURES)
STAGE_NAMES = tuple(s.name for s in INGEST_STAGES)

VIDEO_ARTIFACT = "video"
TRANSCRIPT_ARTIFACT = "transcript"
SENTENCES_ARTIFACT = "sentences"
FEATURES_ARTIFACT = "features"
FRAMES_ARTIFACT = "frames"
YOUTUBE_SOURCES = {"youtube", "howto100m"}


class LocalFileMissingError(PermanentStageError):
    """A local video registered earlier is no longer at its path."""


def _file_identity(path: Path) -> str:
    """Cheap identity of a local file for fingerprints: path, size and modification time."""
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _without(model: Any, *fields: str) -> dict[str, Any]:
    """A params section as a dict minus the fields that do not change the output (retries ...)."""
    return model.model_dump(mode="json", exclude=set(fields))


# --- fingerprints (shared by the planner and the stages) ----------------------------------------------


def download_fingerprint(video: Video, params: Params) -> str:
    """Depends on the source (URL, or the local file's identity) and the download parameters."""
    if video.source == "local":
        path = Path(video.source_id)
        inputs = {"file": _file_identity(path) if path.is_file() else f"{path}:missing"}
    else:
        inputs = {"url": video.url or video.source_id}
    return stage_fingerprint(
        DOWNLOAD.name, DOWNLOAD.version, _without(params.download, "task_retries", "retry_backoff_s"), inputs
    )


def _captions_file(rt: Runtime, params: Params) -> HowTo100MCaptions | None:
    path = params.transcript.howto100m_captions
    if not path or "howto100m" not in params.transcript.sources:
        return None
    return rt.howto100m(path)


def transcript_fingerprint(rt: Runtime, video: Video, params: Params) -> str:
    """Depends on the transcript parameters and the identity of every source that could answer."""
    p = params.transcript
    inputs: dict[str, str] = {"video": video.source_id}
    captions = _captions_file(rt, params)
    if captions is not None:
        inputs["howto100m"] = captions.identity
    if video.source == "local" and "subtitles" in p.sources:
        sub = find_subtitles(video.source_id, p.languages)
        inputs["subtitles"] = _file_identity(sub) if sub else "none"
    section = _without(p, "task_retries", "retry_backoff_s", "howto100m_captions")
    return stage_fingerprint(TRANSCRIPT.name, TRANSCRIPT.version, section, inputs)


def punctuate_fingerprint(rt: Runtime, params: Params, transcript_sha256: str) -> str:
    """Depends on the transcript's content, the punctuation parameters and the model's identity."""
    method = params.punctuate.method
    model = rt.settings.punctuation_model if method != "fallback" else None
    section = {**_without(params.punctuate), "model": model_identity(model)}
    return stage_fingerprint(PUNCTUATE.name, PUNCTUATE.version, section, {"transcript": transcript_sha256})


def features_fingerprint(rt: Runtime, params: Params, video_sha256: str) -> str:
    """Depends on the video's content, the sampling parameters and the extractor's identity (weights hash)."""
    section = {**_without(params.features, "batch_size", "decoder_threads"),
               "extractor_identity": rt.extractor(params.features).identity()}
    return stage_fingerprint(FEATURES.name, FEATURES.version, section, {"video": video_sha256})


# --- stages ---------------------------------------------------------------------------------------------


def run_stage(rt: Runtime, video_id: str, spec: StageSpec, fingerprint: str,
              body: Callable[[repo.Claim], StageOutput], opts: StageOptions) -> StageResult:
    """execute_stage with the runtime's database, store and claim lease."""
    return execute_stage(rt.db, rt.store, video_id, spec, fingerprint, body, rt.settings.claim_lease_s, opts)


def stage_input(rt: Runtime, video_id: str, spec: StageSpec, upstream: str, artifact: str) -> ObjectInfo | StageResult:
    """The artifact `spec` reads from its input stage, or the 'skipped' result when that stage is not done."""
    view = repo.stage_views(rt.db, [upstream], [video_id]).get((video_id, upstream))
    if view is None or view.status != StageStatus.DONE:
        status = view.status if view else "not run"
        return StageResult(video_id, spec.name, "skipped", "upstream not done", f"{upstream} is {status}")
    return view.artifact(artifact)


def _check_duration(duration: float | None, params: Params, name: str) -> None:
    limit = params.download.max_duration_s
    if duration is not None and duration > limit:
        raise TooLongError(f"{name} is {duration:.0f} s long, over the {limit:.0f} s limit (download.max_duration_s)")


def run_download(rt: Runtime, video_id: str, params: Params, opts: StageOptions = StageOptions()) -> StageResult:
    """Fetch (or copy in) the video file and store it as `videos/<id>/download/source.<ext>`."""
    video = repo.get_video(rt.db, video_id)
    fp = download_fingerprint(video, params)

    def body(_claim: repo.Claim) -> StageOutput:
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
        else:
            continue
        notes.append(note)
        if found is not None:
            found.captions, fixes = tidy(found.captions, p.dedupe_rolling)
            found.notes = notes + found.notes + fixes
            if found.captions:
                return found
            notes.append(f"{source}: no usable captions")
    return Transcript("none", notes=notes)


def run_transcript(rt: Runtime, video_id: str, params: Params, opts: StageOptions = StageOptions()) -> StageResult:
    """Find the video's transcript and store it as `videos/<id>/transcript/captions.json`."""
    video = repo.get_video(rt.db, video_id)
    fp = transcript_fingerprint(rt, video, params)

    def body(_claim: repo.Claim) -> StageOutput:
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


def run_punctuate(rt: Runtime, video_id: str, params: Params, opts: StageOptions = StageOptions()) -> StageResult:
    """Restore punctuation and split into timed sentences: `videos/<id>/punctuate/sentences.json`."""
    transcript_info = stage_input(rt, video_id, PUNCTUATE, TRANSCRIPT.name, TRANSCRIPT_ARTIFACT)
    if isinstance(transcript_info, StageResult):
        return transcript_info
    fp = punctuate_fingerprint(rt, params, transcript_info.sha256)

    def body(_claim: repo.Claim) -> StageOutput:
        transcript = Transcript.from_json(rt.store.get_json(transcript_info.key, verify=True))  # type: ignore[arg-type]
        if transcript.source == "none" or not transcript.captions:
            sentences, method = [], "none (no transcript)"
        else:
            labeler = rt.labeler(params.punctuate)
            sentences, method = punctuate(transcript.captions, labeler, params.punctuate), labeler.name
        data = sentences_json(sentences, method, transcript.language, transcript.english)
        stored = rt.store.put_bytes(keys.video_artifact(video_id, PUNCTUATE.name, "sentences.json"), data.encode(),
                                    "application/json")
        outcome = {"method": method, "sentences": len(sentences), "language": transcript.language,
                   "english": transcript.english}
        return StageOutput({SENTENCES_ARTIFACT: stored}, outcome)

    return run_stage(rt, video_id, PUNCTUATE, fp, body, opts)


def run_features(rt: Runtime, video_id: str, params: Params, opts: StageOptions = StageOptions()) -> StageResult:
    """Clip features and middle frames: `videos/<id>/features/features.npz` and `frames.zip`."""
    video_info = stage_input(rt, video_id, FEATURES, DOWNLOAD.name, VIDEO_ARTIFACT)
    if isinstance(video_info, StageResult):
        return video_info
    fp = features_fingerprint(rt, params, video_info.sha256)

    def body(_claim: repo.Claim) -> StageOutput:
        extractor = rt.extractor(params.features)
        report = DecodeReport()
        with rt.scratch("features") as tmp:
            with rt.store.local_path(video_info.key, verify=True) as source:
                features_path, frames_path, clips = extract_video(source, extractor, params.features, tmp, report)
            stored_features = rt.store.put_file(keys.video_artifact(video_id, FEATURES.name, "features.npz"), features_path)
            stored_frames = rt.store.put_file(keys.video_artifact(video_id, FEATURES.name, "frames.zip"), frames_path,
                                              "application/zip")
        outcome = {"clips": clips, "extractor": extractor.name, "dim": extractor.dim, "device": extractor.device(),
                   "rotation": report.rotation, "source_frames": report.source_frames,
                   "decode_error": report.error}  # set when a damaged file lost its end: the clips before are kept
        return StageOutput({FEATURES_ARTIFACT: stored_features, FRAMES_ARTIFACT: stored_frames}, outcome)

    return run_stage(rt, video_id, FEATURES, fp, body, opts)


# --- planning ------------------------------------------------------------------------------------------


@dataclass
class IngestPlan:
    """Which stages each video needs, decided before anything is scheduled."""

    todo: dict[str, list[str]] = field(default_factory=dict)  # video id -> stages to run, in order
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> count
    unknown: list[str] = field(default_factory=list)  # ids that are not registered

    def count(self, stage: str) -> int:
        return sum(stage in stages for stages in self.todo.values())


def _decide(view: repo.StageView | None, fp: str, opts: StageOptions) -> str | None:
    """None when the stage must run; else the reason it is skipped."""
    if view is None or view.fingerprint != fp:
        return None
    if view.status == StageStatus.DONE:
        return None if opts.force else "up to date"
    if view.status == StageStatus.FAILED and view.retryable is False:
        return None if opts.retry_permanent else "failed permanently"
    return None  # pending, running (the claim decides), or failed with a retryable error


def plan_ingest(rt: Runtime, video_ids: Sequence[str], params: Params, stages: Sequence[str] = STAGE_NAMES,
                opts: StageOptions = StageOptions()) -> IngestPlan:
    """Decide, from the database alone, which (video, stage) pairs need a run."""
    plan = IngestPlan()
    videos = repo.get_videos(rt.db, list(video_ids))
    plan.unknown = [v for v in video_ids if v not in videos]
    views = repo.stage_views(rt.db, list(STAGE_NAMES), list(videos))

    def skip(stage: str, reason: str) -> None:
        plan.skipped.setdefault(stage, {}).setdefault(reason, 0)
        plan.skipped[stage][reason] += 1

    # stage -> (its input stage, the input's artifact, the fingerprint given that artifact's sha256)
    dependents: dict[str, tuple[str, str, Callable[[str], str]]] = {
        PUNCTUATE.name: (TRANSCRIPT.name, TRANSCRIPT_ARTIFACT, lambda sha: punctuate_fingerprint(rt, params, sha)),
        FEATURES.name: (DOWNLOAD.name, VIDEO_ARTIFACT, lambda sha: features_fingerprint(rt, params, sha)),
    }
    for vid, video in videos.items():
        todo: list[str] = []
        fingerprints = {DOWNLOAD.name: lambda v=video: download_fingerprint(v, params),
                        TRANSCRIPT.name: lambda v=video: transcript_fingerprint(rt, v, params)}
        for stage, fingerprint in fingerprints.items():
            if stage in stages:
                why = _decide(views.get((vid, stage)), fingerprint(), opts)
                todo.append(stage) if why is None else skip(stage, why)
        for stage, (upstream, artifact, fingerprint_of) in dependents.items():
            if stage not in stages:
                continue
            uview = views.get((vid, upstream))
            if upstream in todo:
                todo.append(stage)  # decided again once the new input exists
            elif uview is None or uview.status != StageStatus.DONE:
                skip(stage, f"{upstream} not done")
            else:
                why = _decide(views.get((vid, stage)), fingerprint_of(uview.artifact(artifact).sha256), opts)
                todo.append(stage) if why is None else skip(stage, why)
        if todo:
            plan.todo[vid] = sorted(todo, key=STAGE_NAMES.index)
    return plan
