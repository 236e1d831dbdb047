"""The `features` stage of one video: decode the stored video into clips, run the clip extractor, store the
features and each clip's middle frame. Written in the stage shape of `videobert.core.stages`."""

from __future__ import annotations

from videobert.core.fingerprint import stage_fingerprint
from videobert.core.params import Params
from videobert.core.runtime import Runtime
from videobert.core.stages import DEFAULT_OPTIONS, StageOptions, StageOutput, StageResult, StageSpec, run_derived_stage
from videobert.core.storage import ObjectInfo, keys
from videobert.features.clips import extract_video
from videobert.features.decode import DecodeReport
from videobert.ingest.stages import DOWNLOAD, VIDEO_ARTIFACT

FEATURES_ARTIFACT = "features"
FRAMES_ARTIFACT = "frames"
FEATURES = StageSpec("features", "1", reads=(DOWNLOAD.name, VIDEO_ARTIFACT))


def features_fingerprint(rt: Runtime, params: Params, video_sha256: str) -> str:
    """Depends on the video's content, the sampling parameters and the extractor's identity (weights hash)."""
    section = {**params.features.fingerprinted(), "extractor_identity": rt.extractor(params.features).identity()}
    return stage_fingerprint(FEATURES.name, FEATURES.version, section, {"video": video_sha256})


def run_features(rt: Runtime, video_id: str, params: Params, opts: StageOptions = DEFAULT_OPTIONS) -> StageResult:
    """Clip features and middle frames: `videos/<id>/features/features.npz` and `frames.zip`."""

    def body(video_info: ObjectInfo) -> StageOutput:
        extractor = rt.extractor(params.features)
        report = DecodeReport()
        with rt.scratch("features") as tmp:
            with rt.store.local_path(video_info.key, verify=True) as source:
                features_path, frames_path, clips = extract_video(source, extractor, params.features, tmp, report)
            stored_features = rt.store.put_file(keys.video_artifact(video_id, FEATURES.name, "features.npz"),
                                                features_path)
            stored_frames = rt.store.put_file(keys.video_artifact(video_id, FEATURES.name, "frames.zip"),
                                              frames_path, "application/zip")
        outcome = {"clips": clips, "extractor": extractor.name, "dim": extractor.dim, "device": extractor.device(),
                   "rotation": report.rotation, "source_frames": report.source_frames,
                   "decode_error": report.error}  # set when a damaged file lost its end: the clips before are kept
        return StageOutput({FEATURES_ARTIFACT: stored_features, FRAMES_ARTIFACT: stored_frames}, outcome)

    return run_derived_stage(rt, video_id, FEATURES, lambda src: features_fingerprint(rt, params, src.sha256),
                             body, opts)
