"""Text-to-video, measured: for each held-out sentence, the visual tokens the model writes after it, each read as the
(verb, object) of the training clip that illustrates it (its nearest training clip in the codebook's pictures), and
the share of them that match the sentence's own verb and object.

Beside it: chance (one over the vocabulary's size) and the shuffled control (each sentence scored against the
tokens written for another sentence, seeded), which keeps the tokens' class frequencies: a model whose tokens
follow the words beats it, one that writes the same tokens whatever it reads does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Truth = tuple[str, str]  # (verb, object)


def clip_class(segments: Sequence[tuple[float, float, Truth | None]], start: float, end: float) -> Truth | None:
    """The truth of the annotated segment whose [start, end) holds the clip's midpoint (None: no segment, or one
    without a truth)."""
    mid = (start + end) / 2
    for seg_start, seg_end, truth in segments:
        if seg_start <= mid < seg_end:
            return truth
    return None


def token_classes(pictures: Mapping[str, Mapping[str, Any]], clip_times: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                  segments: Mapping[str, Sequence[tuple[float, float, Truth | None]]]) -> dict[int, Truth]:
    """Each token's class: the truth of the segment its picture's clip (`pictures.json`: token -> video and clip
    index) lies in. `clip_times` gives each video's clip starts and ends; tokens whose clip is in no annotated
    segment have no class."""
    out: dict[int, Truth] = {}
    for token, pic in pictures.items():
        times = clip_times.get(pic["video"])
        if times is None or pic["clip"] >= len(times[0]):
            continue
        truth = clip_class(segments.get(pic["video"], ()), float(times[0][pic["clip"]]), float(times[1][pic["clip"]]))
        if truth is not None:
            out[int(token)] = truth
    return out


def _shares(generated: Sequence[Sequence[int]], truths: Sequence[Truth], classes: Mapping[int, Truth]) -> dict[str, float]:
    verb = obj = both = mapped = 0
    for tokens, (v, o) in zip(generated, truths, strict=True):
        for t in tokens:
            c = classes.get(int(t))
            if c is None:
                continue
            mapped += 1
            verb += c[0] == v
            obj += c[1] == o
            both += c == (v, o)
    n = max(mapped, 1)
    return {"verb": verb / n, "object": obj / n, "both": both / n, "mapped_tokens": mapped}


def text_to_video_scores(generated: Sequence[Sequence[int]], truths: Sequence[Truth], classes: Mapping[int, Truth],
                         verbs: int, objects: int, seed: int = 0) -> dict[str, Any]:
    """The shares of generated tokens whose class matches their sentence's verb, object and both, beside chance
    (uniform over `verbs` and `objects` words) and the shuffled control (tokens of another sentence)."""
    if len(generated) != len(truths):
        raise ValueError(f"{len(generated)} token lists for {len(truths)} sentences")
    model = _shares(generated, truths, classes)
    # each sentence gets the tokens of the next one in a seeded cycle through all of them: never its own
    cycle = np.random.default_rng(seed).permutation(len(generated))
    source = np.empty(len(generated), dtype=np.int64)
    source[cycle] = np.roll(cycle, -1)
    shuffled = _shares([generated[i] for i in source], truths, classes)
    return {"sentences": len(generated), "tokens": sum(len(g) for g in generated),
            "mapped_tokens": model["mapped_tokens"], "verb": model["verb"], "object": model["object"],
            "both": model["both"], "chance_verb": 1 / verbs, "chance_object": 1 / objects,
            "chance_both": 1 / (verbs * objects), "shuffled_verb": shuffled["verb"],
            "shuffled_object": shuffled["object"], "shuffled_both": shuffled["both"]}
