"""The run/skip plan of the ingest stages for many videos, decided from the database alone.

`plan_ingest` computes the same fingerprints as the stages themselves, for many videos at once from two
queries, so that stages that are up to date are skipped before anything is scheduled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from videobert.core.params import Params
from videobert.core.runtime import Runtime
from videobert.core.stages import DEFAULT_OPTIONS, StageOptions, StageSpec, decide
from videobert.db import repository as repo
from videobert.db.models import StageStatus
from videobert.features.stage import FEATURES, features_fingerprint
from videobert.ingest.stages import (
    DOWNLOAD,
    PUNCTUATE,
    TRANSCRIPT,
    VIDEO_ARTIFACT,
    download_fingerprint,
    punctuate_fingerprint,
    transcript_fingerprint,
    transcript_reads_download,
)

INGEST_STAGES = (DOWNLOAD, TRANSCRIPT, PUNCTUATE, FEATURES)
STAGE_NAMES = tuple(s.name for s in INGEST_STAGES)
UPSTREAM = {s.name: s.upstream for s in INGEST_STAGES if s.upstream}  # stage -> the stage whose output it reads


@dataclass
class IngestPlan:
    """Which stages each video needs, decided before anything is scheduled."""

    todo: dict[str, list[str]] = field(default_factory=dict)  # video id -> stages to run, in order
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> count
    unknown: list[str] = field(default_factory=list)  # ids that are not registered
    # video id -> {stage: the stage it waits for}, beyond UPSTREAM: the transcript of a video that Whisper hears
    # from its stored download waits for that download
    waits: dict[str, dict[str, str]] = field(default_factory=dict)

    def count(self, stage: str) -> int:
        return sum(stage in stages for stages in self.todo.values())

    def upstream(self, video_id: str) -> dict[str, str]:
        """Stage -> the stage it waits for when both are planned for this video."""
        return {**UPSTREAM, **self.waits.get(video_id, {})}


def plan_ingest(rt: Runtime, video_ids: Sequence[str], params: Params, stages: Sequence[str] = STAGE_NAMES,
                opts: StageOptions = DEFAULT_OPTIONS) -> IngestPlan:
    """Decide, from the database alone, which (video, stage) pairs need a run."""
    plan = IngestPlan()
    videos = repo.get_videos(rt.db, list(video_ids))
    plan.unknown = [v for v in video_ids if v not in videos]
    views = repo.stage_views(rt.db, list(STAGE_NAMES), list(videos))

    def skip(stage: str, reason: str) -> None:
        plan.skipped.setdefault(stage, {}).setdefault(reason, 0)
        plan.skipped[stage][reason] += 1

    # stages that read another stage's output: the fingerprint given that artifact's sha256
    dependents: dict[StageSpec, Callable[[str], str]] = {
        PUNCTUATE: lambda sha: punctuate_fingerprint(rt, params, sha),
        FEATURES: lambda sha: features_fingerprint(rt, params, sha),
    }
    for vid, video in videos.items():
        todo: list[str] = []
        reads_download = TRANSCRIPT.name in stages and transcript_reads_download(rt, video, params)
        downloaded: str | None = None  # the stored download's sha256, when the transcript may read it
        if reads_download:
            plan.waits[vid] = {TRANSCRIPT.name: DOWNLOAD.name}
            download = views.get((vid, DOWNLOAD.name))
            if download is not None and download.status == StageStatus.DONE:
                downloaded = download.artifact(VIDEO_ARTIFACT).sha256
        fingerprints = {DOWNLOAD.name: lambda v=video: download_fingerprint(v, params),
                        TRANSCRIPT.name: lambda v=video, d=downloaded: transcript_fingerprint(rt, v, params, d)}
        for stage, fingerprint in fingerprints.items():
            if stage not in stages:
                continue
            if stage == TRANSCRIPT.name and reads_download and DOWNLOAD.name in todo:
                todo.append(stage)  # decided again once the new download exists
                continue
            why = decide(views.get((vid, stage)), fingerprint(), opts)
            todo.append(stage) if why is None else skip(stage, why)
        for spec, fingerprint_of in dependents.items():
            stage, (upstream, artifact) = spec.name, spec.reads
            if stage not in stages:
                continue
            uview = views.get((vid, upstream))
            if upstream in todo:
                todo.append(stage)  # decided again once the new input exists
            elif uview is None or uview.status != StageStatus.DONE:
                skip(stage, f"{upstream} not done")
            else:
                why = decide(views.get((vid, stage)), fingerprint_of(uview.artifact(artifact).sha256), opts)
                todo.append(stage) if why is None else skip(stage, why)
        if todo:
            plan.todo[vid] = sorted(todo, key=STAGE_NAMES.index)
    return plan
