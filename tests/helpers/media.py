"""Small real video files made with ffmpeg for tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np


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


# Frame numbers are drawn as a 12-bit barcode: a 4 x 3 grid of black/white blocks in the centre of the
# picture (inside the centred square that the decoder keeps), big enough to survive compression and scaling.
CODE_BITS = 12
_GRID = (3, 4)  # rows, columns


def _code_cells(size: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of each bit's block inside a `size` x `size` square."""
    rows, cols = _GRID
    cell = size // 6
    y_off = (size - rows * cell) // 2
    x_off = (size - cols * cell) // 2
    return [(y_off + r * cell, y_off + (r + 1) * cell, x_off + c * cell, x_off + (c + 1) * cell)
            for r in range(rows) for c in range(cols)]


def make_numbered_video(path: Path, fps: float, n_frames: int, width: int = 320, height: int = 240,
                        extra: list[str] | None = None) -> Path:
    """A video whose frame i shows the number i as a barcode (encoded by ffmpeg from raw frames)."""


    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    cells = _code_cells(side)
    frames = np.full((n_frames, height, width, 3), 128, dtype=np.uint8)
    for i in range(n_frames):
        for bit, (a, b, c, d) in enumerate(cells):
            frames[i, y0 + a : y0 + b, x0 + c : x0 + d] = 255 if (i >> bit) & 1 else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
           "-r", str(fps), "-i", "-", "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", *(extra or []), str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True, capture_output=True, timeout=300)
    return path


def read_number(frame: np.ndarray) -> int:
    """The number drawn by make_numbered_video in a decoded square RGB frame."""
    gray = frame.mean(axis=2)
    value = 0
    for bit, (a, b, c, d) in enumerate(_code_cells(frame.shape[0])):
        h, w = b - a, d - c  # sample the block's centre, away from blurred edges
        if gray[a + h // 4 : b - h // 4, c + w // 4 : d - w // 4].mean() > 128:
            value |= 1 << bit
    return value
