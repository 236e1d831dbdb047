"""Expected tokens computed without the code under test: tree descent in float64 numpy over a saved codebook's
centroid files (`centroids_level<l>.npy`, shape (k^(l-1), k, dim)), as the README describes labeling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def saved_centroids(folder: Path) -> tuple[int, list[np.ndarray]]:
    """k and every level's centroids (float64) of a codebook folder."""
    config = json.loads((folder / "config.json").read_text())
    return int(config["k"]), [np.load(folder / f"centroids_level{level}.npy").astype(np.float64)
                              for level in range(1, int(config["levels"]) + 1)]


def descend(folder: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's token (at every level the nearest child of the node reached, the lowest on ties; the token id
    is the path read as a base-k number) and its squared distance to that token's leaf centroid."""
    k, levels = saved_centroids(folder)
    x = np.asarray(x, dtype=np.float64)
    node = np.zeros(len(x), dtype=np.int64)
    for centroids in levels:
        children = centroids[node]  # (n, k, dim): the children of each row's node
        child = ((x[:, None, :] - children) ** 2).sum(axis=2).argmin(axis=1)
        node = node * k + child
    leaves = levels[-1].reshape(-1, x.shape[1])
    return node, ((x - leaves[node]) ** 2).sum(axis=1)
