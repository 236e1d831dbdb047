"""The visual vocabulary: hierarchical k-means over clip features, and labeling by tree descent.

VideoBERT quantises each 1.5 s clip's feature vector into one of k ** levels visual tokens (4 levels of k = 12:
20,736 tokens) with hierarchical k-means: k centroids at the root, then k children inside each cluster, and so
on. A token id is the path of child indices read as a base-k number:

    token = ((d1 * k + d2) * k + d3) * k + d4        (d_l in 0 .. k-1: the child chosen at level l)

so ids are always dense, 0 .. k ** levels - 1, and the whole tree is kept (the centroids of every level).

Fitting works level by level on an array that may be a memory-mapped file (`np.memmap`): only one node's
vectors (or a sample of them) are loaded at a time, and all assignments are done in chunks, so the data need
not fit in memory. Each node is fitted with faiss k-means, seeded from (seed, level, node), so a fit is
deterministic.

Nodes too small to split are handled by a fixed rule, so nothing crashes and every node has k children:
* a node with n <= k vectors: its first n children are those vectors (in data order), the other k - n
  children are copies of the node's own centroid;
* an empty node (nothing reached it): all k children are copies of its centroid.
Labeling visits children in order and takes the lowest index among equal distances, so copies are never
preferred over the first of them, and ties always resolve the same way.

This module does no I/O except `save_pretrained` / `from_pretrained` (a directory in the style of Hugging Face).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
CENTROIDS_NAME = "centroids_level{level}.npy"


@dataclass(frozen=True)
class HKMeansConfig:
    """Shape and fitting parameters of the hierarchical k-means (defaults: the paper's 4 x 12)."""

    levels: int = 4  # depth of the tree
    k: int = 12  # children per node; vocabulary = k ** levels
    seed: int = 0  # every node's k-means is seeded from (seed, level, node)
    niter: int = 20  # k-means iterations per node
    nredo: int = 3  # k-means restarts per node; the best (lowest inertia) is kept
    max_points_per_centroid: int = 1024  # a node fits on at most k * this many of its vectors (a sample)
    chunk: int = 65_536  # vectors per assignment step (bounds memory)

    def __post_init__(self) -> None:
        if self.levels < 1 or self.k < 2:
            raise ValueError(f"need levels >= 1 and k >= 2, got levels={self.levels}, k={self.k}")

    @property
    def vocab_size(self) -> int:
        return self.k**self.levels


@dataclass
class FitStats:
    """What fitting saw: per-level node sizes and the leaf inertia on the training data."""

    n_vectors: int
    dim: int
    leaf_inertia: float  # mean squared L2 distance of each training vector to its leaf centroid
    leaf_sizes: np.ndarray  # (vocab_size,) training vectors per leaf
    small_nodes: list[int] = field(default_factory=list)  # per level: nodes with 1 .. k vectors
    empty_nodes: list[int] = field(default_factory=list)  # per level: nodes with no vector

    def summary(self) -> dict[str, Any]:
        """Quality figures as plain JSON values."""
        sizes = self.leaf_sizes
        used = sizes[sizes > 0]
        pct = np.percentile(used, [5, 25, 50, 75, 95]).tolist() if used.size else [0, 0, 0, 0, 0]
        return {
            "n_vectors": self.n_vectors,
            "dim": self.dim,
            "leaf_inertia": self.leaf_inertia,
            "empty_leaf_share": float((sizes == 0).mean()),
            "leaf_size": {"min": int(used.min()) if used.size else 0, "p5": pct[0], "p25": pct[1], "median": pct[2],
                          "p75": pct[3], "p95": pct[4], "max": int(sizes.max()) if sizes.size else 0},
            "small_nodes_per_level": self.small_nodes,
            "empty_nodes_per_level": self.empty_nodes,
        }


# --- distances ------------------------------------------------------------------------------------------------


def _sq_norms(c: np.ndarray) -> np.ndarray:
    return np.einsum("...d,...d->...", c, c)


def _nearest(x: np.ndarray, c: np.ndarray, c_norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest row of `c` for each row of `x` (lowest index on ties) and its squared distance."""
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 does not change the argmin, added back for the distance
    scores = c_norms[None, :] - 2.0 * (x @ c.T)  # (n, k)
    idx = np.argmin(scores, axis=1)
    d = scores[np.arange(len(x)), idx] + _sq_norms(x)
    return idx, np.maximum(d, 0.0)


def _as_f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


# --- the codebook --------------------------------------------------------------------------------------------


class VisualCodebook:
    """The tree of centroids. `centroids[l]` has shape (k ** l, k, dim): the children of every node at depth l."""

    def __init__(self, config: HKMeansConfig, centroids: list[np.ndarray], root: np.ndarray,
                 extra: dict[str, Any] | None = None) -> None:
        if len(centroids) != config.levels:
            raise ValueError(f"expected {config.levels} levels of centroids, got {len(centroids)}")
        dim = root.shape[-1]
        for level, c in enumerate(centroids):
            if c.shape != (config.k**level, config.k, dim):
                raise ValueError(f"level {level + 1} centroids have shape {c.shape}, expected {(config.k ** level, config.k, dim)}")
        self.config = config
        self.dim = int(dim)
        self.root = _as_f32(root)  # (dim,) mean of the training data
        self.centroids = [_as_f32(c) for c in centroids]
        self._norms = [_sq_norms(c) for c in self.centroids]  # (k ** l, k)
        self.extra = dict(extra or {})  # metrics and provenance saved alongside (not part of the hash)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def leaf_centroids(self) -> np.ndarray:
        """(vocab_size, dim): the centroid of every token, in token id order."""
        return self.centroids[-1].reshape(self.vocab_size, self.dim)

    def path(self, token: int) -> tuple[int, ...]:
        """The child index chosen at each level for `token`."""
        digits = []
        for _ in range(self.config.levels):
            token, d = divmod(token, self.config.k)
            digits.append(d)
        return tuple(reversed(digits))

    # labeling -----------------------------------------------------------------------------------------------

    def label_with_distance(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token ids by tree descent (levels x k distances per vector) and squared distance to that leaf."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {x.shape}")
        tokens = np.empty(len(x), dtype=np.int64)
        dists = np.empty(len(x), dtype=np.float32)
        step = self.config.chunk
        for start in range(0, len(x), step):
            t, d = self._descend(_as_f32(x[start : start + step]))
            tokens[start : start + len(t)] = t
            dists[start : start + len(d)] = d
        return tokens, dists

    def label(self, x: np.ndarray) -> np.ndarray:
        """Token ids by tree descent."""
        return self.label_with_distance(x)[0]

    def _descend(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.config.k
        node = np.zeros(len(x), dtype=np.int64)
        dist = np.zeros(len(x), dtype=np.float32)
        for level, (c, norms) in enumerate(zip(self.centroids, self._norms, strict=True)):
            if level == 0:
                child, dist = _nearest(x, c[0], norms[0])
                node = child.astype(np.int64)
                continue
            order = np.argsort(node, kind="stable")
            bounds = np.flatnonzero(np.diff(node[order])) + 1
            new = np.empty_like(node)
            for rows in np.split(order, bounds):
                parent = node[rows[0]]
                child, d = _nearest(x[rows], c[parent], norms[parent])
                new[rows] = parent * k + child
                dist[rows] = d
            node = new
        return node, dist

    def label_flat(self, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Exact nearest leaf by brute force over all vocab_size leaves (for comparison with the descent)."""
        leaves = self.leaf_centroids()
        norms = _sq_norms(leaves)
        out = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), chunk):
            out[start : start + chunk] = _nearest(_as_f32(x[start : start + chunk]), leaves, norms)[0]
        return out

    # persistence ------------------------------------------------------------------------------------------

    def content_hash(self) -> str:
        """sha256 of the configuration and every level's centroids (float32, C order)."""
        digest = hashlib.sha256()
        cfg = {**asdict(self.config), "dim": self.dim, "format_version": FORMAT_VERSION}
        cfg.pop("chunk")  # how assignments are batched does not change the codebook
        digest.update(json.dumps(cfg, sort_keys=True).encode())
        digest.update(self.root.tobytes())
        for c in self.centroids:
            digest.update(c.tobytes())
        return digest.hexdigest()

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write `config.json` and one `centroids_level<l>.npy` per level (plus `root.npy`) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "root.npy", self.root)
        for level, c in enumerate(self.centroids, start=1):
            np.save(folder / CENTROIDS_NAME.format(level=level), c)
        config = {
            "format_version": FORMAT_VERSION,
            "model_type": "videobert-hierarchical-kmeans",
            **asdict(self.config),
            "dim": self.dim,
            "vocab_size": self.vocab_size,
            "content_hash": self.content_hash(),
            **({"extra": self.extra} if self.extra else {}),
        }
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> VisualCodebook:
        """Load a codebook saved by `save_pretrained`; ValueError if its content does not match its hash."""
        folder = Path(folder)
        config = json.loads((folder / CONFIG_NAME).read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: unsupported codebook format {config.get('format_version')!r}")
        fields = {f: config[f] for f in HKMeansConfig.__dataclass_fields__ if f in config}
        cfg = HKMeansConfig(**fields)
        centroids = [np.load(folder / CENTROIDS_NAME.format(level=level)) for level in range(1, cfg.levels + 1)]
        book = cls(cfg, centroids, np.load(folder / "root.npy"), config.get("extra"))
        if book.content_hash() != config["content_hash"]:
            raise ValueError(f"{folder}: centroids do not match the content hash in {CONFIG_NAME}")
        return book


# --- fitting ----------------------------------------------------------------------------------------------------


def _node_seed(seed: int, level: int, node: int) -> int:
    h = hashlib.sha256(f"{seed}:{level}:{node}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def _kmeans(x: np.ndarray, k: int, config: HKMeansConfig, seed: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(
        x.shape[1], k, niter=config.niter, nredo=config.nredo, seed=seed, verbose=False,
        min_points_per_centroid=1, max_points_per_centroid=max(1, len(x) // k + 1),  # we sample ourselves
    )
    km.train(x)
    return np.asarray(km.centroids, dtype=np.float32).reshape(k, x.shape[1])


def _mean(data: np.ndarray, chunk: int) -> np.ndarray:
    total = np.zeros(data.shape[1], dtype=np.float64)
    for start in range(0, len(data), chunk):
        total += _as_f32(data[start : start + chunk]).sum(axis=0, dtype=np.float64)
    return (total / max(len(data), 1)).astype(np.float32)


def _numpy_blas_single_threaded() -> Any:
    """Limit every BLAS but faiss's own to one thread while fitting.

    Fitting alternates many small faiss k-means calls (faiss's OpenMP pool) with small numpy products (numpy's
    BLAS pool); two pools spinning on the same cores slow each other down several-fold on small machines.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    prefixes = {i["prefix"] for i in threadpool_info() if i["user_api"] == "blas" and "faiss" not in i["filepath"]}
    return threadpool_limits(limits=dict.fromkeys(prefixes, 1))


def fit_hierarchical_kmeans(
    data: np.ndarray, config: HKMeansConfig = HKMeansConfig(),
    progress: Callable[[int, int, int], None] | None = None,
) -> tuple[VisualCodebook, FitStats]:
    """Fit the tree on `data` (n, dim), an in-memory array or an np.memmap; returns the codebook and stats.

    `progress(level, node, nodes_in_level)` is called after each node is fitted.
    """
    import faiss  # noqa: F401 - loaded first, so that its thread pools are known

    with _numpy_blas_single_threaded():
        return _fit(data, config, progress)


def _fit(
    data: np.ndarray, config: HKMeansConfig, progress: Callable[[int, int, int], None] | None
) -> tuple[VisualCodebook, FitStats]:
    n, dim = data.shape
    if n == 0:
        raise ValueError("cannot fit a codebook on no vectors")
    k, step = config.k, config.chunk
    root = _mean(data, step)
    node_of = np.zeros(n, dtype=np.int64)  # node of each vector at the current depth
    parent_centroids = root[None, None, :]  # (1, 1, dim): the root's own centroid
    centroids: list[np.ndarray] = []
    small, empty = [], []
    cap = k * config.max_points_per_centroid
    for level in range(config.levels):
        n_nodes = k**level
        level_c = np.empty((n_nodes, k, dim), dtype=np.float32)
        order = np.argsort(node_of, kind="stable")  # members of each node, in data order
        counts = np.bincount(node_of, minlength=n_nodes)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        new_node = np.empty_like(node_of)
        n_small = n_empty = 0
        for node in range(n_nodes):
            idx = order[offsets[node] : offsets[node + 1]]
            own = parent_centroids[node // k, node % k] if level else root
            if len(idx) == 0:
                level_c[node] = own  # the documented rule for an empty node
                n_empty += 1
            elif len(idx) <= k:
                members = _as_f32(data[idx])
                level_c[node, : len(idx)] = members
                level_c[node, len(idx) :] = own
                n_small += 1
            else:
                fit_idx = idx
                if len(idx) > cap:
                    rng = np.random.default_rng(_node_seed(config.seed, level, node))
                    fit_idx = np.sort(rng.choice(idx, size=cap, replace=False))
                level_c[node] = _kmeans(_as_f32(data[fit_idx]), k, config, _node_seed(config.seed, level, node))
            # assign the node's members to its children
            norms = _sq_norms(level_c[node])
            for start in range(0, len(idx), step):
                rows = idx[start : start + step]
                child, _ = _nearest(_as_f32(data[rows]), level_c[node], norms)
                new_node[rows] = node * k + child
            if progress:
                progress(level + 1, node, n_nodes)
        centroids.append(level_c)
        parent_centroids = level_c
        node_of = new_node
        small.append(n_small)
        empty.append(n_empty)
    book = VisualCodebook(config, centroids, root)
    # leaf inertia and sizes from the training assignment (the same as labeling by descent)
    leaves = book.leaf_centroids()
    inertia = 0.0
    for start in range(0, n, step):
        x = _as_f32(data[start : start + step])
        diff = x - leaves[node_of[start : start + step]]
        inertia += float(np.einsum("nd,nd->", diff, diff, dtype=np.float64))
    stats = FitStats(n, dim, inertia / n, np.bincount(node_of, minlength=config.vocab_size), small, empty)
    return book, stats


def agreement(book: VisualCodebook, x: np.ndarray) -> float:
    """Share of vectors whose tree-descent token is also their exact nearest leaf."""
    if len(x) == 0:
        return 1.0
    return float((book.label(x) == book.label_flat(x)).mean())
