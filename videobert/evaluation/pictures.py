"""Strips of token pictures (text-to-video, forecasting) from a codebook's `pictures.zip`, drawn with Pillow."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

CAPTION_PX = 16
LABEL_PX = 18


def token_tiles(pictures_zip: Path, tokens: Sequence[int], tile: int) -> list[object]:
    """One tile per token: its picture (the training clip nearest its centroid), or a grey tile with its id when
    the codebook has no picture for it."""
    from PIL import Image, ImageDraw

    tiles = []
    with zipfile.ZipFile(pictures_zip) as z:
        names = set(z.namelist())
        for t in tokens:
            name = f"{int(t):06d}.jpg"
            if name in names:
                img = Image.open(io.BytesIO(z.read(name))).convert("RGB").resize((tile, tile))
            else:
                img = Image.new("RGB", (tile, tile), (200, 200, 200))
                ImageDraw.Draw(img).text((4, tile // 2 - 6), "no picture", fill="black")
            tiles.append(img)
    return tiles


def strips_png(path: Path, rows: Sequence[tuple[str, Sequence[int]]], pictures_zip: Path, tile: int = 72) -> Path:
    """A PNG with one labelled strip per row: the label (a sentence, a video and time) above its tokens'
    pictures, each captioned with its token id."""
    from PIL import Image, ImageDraw

    width = max((len(tokens) for _, tokens in rows), default=1) * tile
    height = max(1, len(rows)) * (LABEL_PX + tile + CAPTION_PX)
    canvas = Image.new("RGB", (max(width, 320), height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for label, tokens in rows:
        draw.text((2, y + 2), label, fill="black")
        y += LABEL_PX
        for i, img in enumerate(token_tiles(pictures_zip, tokens, tile)):
            canvas.paste(img, (i * tile, y))  # type: ignore[arg-type]
            draw.text((i * tile + 2, y + tile + 1), str(int(tokens[i])), fill="black")
        y += tile + CAPTION_PX
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path
