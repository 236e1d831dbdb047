"""Small real video files made with ffmpeg for tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_video(
    path: Path, seconds: float = 3.0, size: str = "320x240", fps: int = 25, audio: bool = False,
    pattern: str = "testsrc2", codec: str = "libx264", extra: list[str] | None = None,
) -> Path:
    """Encode a synthetic video (an ffmpeg test pattern, optionally with a sine tone)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=size={size}:rate={fps}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"]
    cmd += ["-t", str(seconds), "-c:v", codec, "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac", "-shortest"]
    cmd += (extra or []) + [str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path
