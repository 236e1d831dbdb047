"""The loss curve of a training run as a PNG (drawn with Pillow: no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

SERIES = (("loss", "train loss", (70, 110, 170)), ("eval_loss", "validation loss", (200, 90, 40)))


def loss_curve_png(path: Path, log_history: Sequence[dict[str, Any]], width: int = 640, height: int = 320) -> Path:
    """Training and validation loss against the step, from transformers' `state.log_history`."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    points = {key: [(float(e["step"]), float(e[key])) for e in log_history if key in e and "step" in e]
              for key, _, _ in SERIES}
    everything = [p for series in points.values() for p in series]
    left, right, top, bottom = 56, width - 12, 24, height - 28
    draw.rectangle([left, top, right, bottom], outline=(180, 180, 180))
    if everything:
        x0, x1 = min(p[0] for p in everything), max(p[0] for p in everything)
        y0, y1 = min(p[1] for p in everything), max(p[1] for p in everything)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-6)

        def xy(p: tuple[float, float]) -> tuple[float, float]:
            return (left + (p[0] - x0) / (x1 - x0) * (right - left), bottom - (p[1] - y0) / (y1 - y0) * (bottom - top))

        for key, _label, colour in SERIES:
            series = points[key]
            if len(series) > 1:
                draw.line([xy(p) for p in series], fill=colour, width=2)
            for p in series:
                cx, cy = xy(p)
                draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
        draw.text((4, top), f"{y1:.3g}", fill="black")
        draw.text((4, bottom - 10), f"{y0:.3g}", fill="black")
        draw.text((left, bottom + 6), f"step {x0:g}", fill="black")
        draw.text((right - 70, bottom + 6), f"step {x1:g}", fill="black")
    x = left
    for key, label, colour in SERIES:
        if points[key]:
            draw.rectangle([x, 6, x + 10, 16], fill=colour)
            draw.text((x + 14, 5), label, fill="black")
            x += 24 + 7 * len(label)
    img.save(path, format="PNG")
    return path
