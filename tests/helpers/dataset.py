"""Three short ingested videos (two with subtitles) for the dataset flows, and the small params they use."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.media import make_video
from videobert.core.params import load_params
from videobert.core.runtime import Runtime
from videobert.db import repository as repo
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download, run_punctuate, run_transcript

SMALL = "features:\n  extractor: baseline\ncodebook:\n  levels: 2\n  k: 3\n  agreement_sample: 50\ncorpus:\n  video_segment: 4\n"
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nwhisk the eggs.\n\n00:00:02.000 --> 00:00:04.000\nthen fold in the flour.\n"
PATTERNS = ["testsrc2", "mandelbrot", "rgbtestsrc"]  # v0, v1, v2: 3, 4 and 5 seconds; v2 without subtitles


def ingest_three_videos(rt: Runtime, root: Path, params_file: Path) -> None:
    """Register v0..v2 (local files in `root`) and run download, transcript, punctuate and features on each."""
    params = load_params(params_file)
    for i, pattern in enumerate(PATTERNS):
        src = make_video(root / f"v{i}.mp4", seconds=3 + i, pattern=pattern)
        if i < 2:
            (root / f"v{i}.en.vtt").write_text(VTT)
        repo.register_videos(rt.db, [repo.NewVideo(f"v{i}", "local", str(src))])
        for run in (run_download, run_transcript, run_punctuate, run_features):
            assert run(rt, f"v{i}", params).status == "done"
