"""Scores of the zero-shot classification: top-k accuracy of ranked words against the ground truth, the two
reference levels it is read against (chance: a uniformly random ranking; the frequency prior: always the
vocabulary split's most frequent words), and a confusion matrix with its picture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def topk_accuracy(rankings: Sequence[Sequence[str]], truths: Sequence[str | None], k: int) -> float:
    """Share of items whose truth is among the first `k` words of its ranking (best first).

    A truth of None, or one missing from the ranking, counts as a miss. ValueError when the lengths differ, there
    is nothing to score, or k < 1.
    """
    _check(len(rankings), len(truths), k)
    hits = sum(t is not None and t in r[:k] for r, t in zip(rankings, truths, strict=True))
    return hits / len(truths)


def chance_topk(vocab_size: int, k: int) -> float:
    """Expected top-k accuracy of a uniformly random ranking of `vocab_size` words whose truth is among them: k / V."""
    if vocab_size < 1 or k < 1:
        raise ValueError(f"vocab_size and k must be at least 1, got {vocab_size} and {k}")
    return min(k, vocab_size) / vocab_size


def frequency_prior_topk(prior: Sequence[str], truths: Sequence[str | None], k: int) -> float:
    """Top-k accuracy of ranking every item the same way, by `prior` (the vocabulary split's frequency order): what
    a model that ignores the video scores by knowing which words are common."""
    _check(len(truths), len(truths), k)
    top = set(prior[:k])
    return sum(t is not None and t in top for t in truths) / len(truths)


def _check(n_rankings: int, n_truths: int, k: int) -> None:
    if n_rankings != n_truths:
        raise ValueError(f"{n_rankings} rankings for {n_truths} truths")
    if n_truths == 0:
        raise ValueError("nothing to score: no truths")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def confusion_matrix(truths: Sequence[str | None], predictions: Sequence[str | None],
                     labels: Sequence[str]) -> np.ndarray:
    """Counts (L, L) int64: row = truth, column = prediction, in the order of `labels`.

    A pair whose truth or prediction is not one of `labels` (or None) is not counted, so a matrix over the most
    frequent labels shows how those are confused with each other; its sum says how many pairs it holds.
    """
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} truths for {len(predictions)} predictions")
    index = {w: i for i, w in enumerate(labels)}
    if len(index) != len(labels):
        raise ValueError("labels are not unique")
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truths, predictions, strict=True):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return m


CELL_PX = (14, 30)  # smallest and largest cell side, pixels
CANVAS_PX = 720  # the grid's side aims at this many pixels


def confusion_png(path: str | Path, matrix: np.ndarray, labels: Sequence[str], title: str) -> None:
    """A confusion matrix drawn with Pillow: truth labels down the left, predictions rotated along the top; each
    cell shaded by its share of the row (white 0 -> dark blue 1), its count written when the cell has room;
    diagonal cells outlined. Best read with at most a few dozen labels (the most frequent ones)."""
    from PIL import Image, ImageDraw, ImageFont

    m = np.asarray(matrix)
    n = len(labels)
    if m.shape != (n, n):
        raise ValueError(f"matrix of shape {m.shape} for {n} labels")
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(s: str) -> tuple[int, int]:
        x0, y0, x1, y1 = probe.textbbox((0, 0), s, font=font)
        return x1 - x0, y1 - y0

    cell = int(min(CELL_PX[1], max(CELL_PX[0], CANVAS_PX // max(n, 1))))
    label_w = max([text_size(w)[0] for w in labels] + [0]) + 8
    line_h = text_size("Ag")[1] + 4
    subtitle = f"rows: truth, columns: prediction; shade: share of the row; {int(m.sum())} pairs"
    top = 2 * line_h + 6 + label_w  # title, subtitle, rotated column labels
    left = label_w
    width = max(left + n * cell + 8, text_size(title)[0] + 8, text_size(subtitle)[0] + 8)
    img = Image.new("RGB", (width, top + n * cell + 8), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), title, fill="black", font=font)
    draw.text((4, 2 + line_h), subtitle, fill=(90, 90, 90), font=font)

    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=float), where=rows > 0)
    for i, word in enumerate(labels):
        w, h = text_size(word)
        draw.text((left - w - 4, top + i * cell + (cell - h) // 2), word, fill="black", font=font)
        # column label: drawn horizontally on its own strip, then turned to read bottom-up
        strip = Image.new("RGB", (label_w, cell), "white")
        ImageDraw.Draw(strip).text((4, (cell - h) // 2), word, fill="black", font=font)
        img.paste(strip.rotate(90, expand=True), (left + i * cell, top - label_w))
    for i in range(n):
        for j in range(n):
            s = float(share[i, j])
            shade = tuple(int(255 - s * (255 - c)) for c in (20, 60, 140))  # white -> dark blue
            box = [left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1]
            draw.rectangle(box, fill=shade, outline=(0, 0, 0) if i == j else (225, 225, 225))
            count = str(int(m[i, j]))
            cw, ch = text_size(count)
            if m[i, j] and cw + 2 <= cell and ch + 2 <= cell:
                draw.text((box[0] + (cell - cw) // 2, box[1] + (cell - ch) // 2), count,
                          fill="white" if s > 0.5 else "black", font=font)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=False)
