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
    niter: int = 10  # Lloyd iterations per node (after a k-means++ start)
    nredo: int = 1  # k-means runs per node from different starts; the lowest inertia is kept
    max_points_per_centroid: int = 64  # a node fits on at most k * this many of its vectors (a sample)
    init_points_per_centroid: int = 32  # k-means++ chooses its starts among at most k * this many of them
    chunk: int = 65_536  # vectors per assignment step (bounds memory)
    processes: int = 0  # worker processes for big levels of many nodes (memory-mapped data only); 0 = one per CPU

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
        cfg.pop("chunk")  # how the work is batched and spread does not change the codebook
        cfg.pop("processes")
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


# Why not sklearn.cluster.kmeans_plusplus (same greedy algorithm; measured 2026-11-22, 2 cores, no GPU, BLAS
# limited to one thread as during a fit, 1024-d float32, k = 12): per call it is 2.6x slower on a 384-vector
# node (8.4 ms against 3.3 ms) and 6x to 7x slower on a ~116-vector leaf-level node (2.7-3.1 ms against 0.44 ms),
# because it validates its input and upcasts every float32 distance block to float64 at each of the k steps.
# A fit calls it once per fitted node (about 1,800 times at 4 x 12): seeding went from 1.7-2.4 s to 7.5-10.5 s
# of a one-process fit of 200,000 x 1024, and bench/bench_tokenizer.py's fit from 5.5 s to 11.7-19.5 s
# (median of 3), losing the 10x goal over the MiniBatchKMeans baseline. It was deterministic and its starts
# were as good (start inertia within 3.5 %), so it would be a drop-in if its per-call cost fell.
def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ starting centroids (greedy: the best of 2 + ln k candidates at each step, as scikit-learn)."""
    n = len(x)
    trials = 2 + int(np.log(k))
    norms = _sq_norms(x)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(n)
    d2 = np.maximum(norms - 2.0 * (x @ x[chosen[0]]) + norms[chosen[0]], 0.0)
    for c in range(1, k):
        total = float(d2.sum())
        if total > 0:
            cand = np.minimum(np.searchsorted(np.cumsum(d2), rng.random(trials) * total), n - 1)
        else:  # every point already is a centre (duplicates): any will do
            cand = rng.integers(n, size=trials)
        dots = x[cand] @ x.T  # (trials, n)
        new = np.minimum(d2[None, :], np.maximum(norms[None, :] - 2.0 * dots + norms[cand][:, None], 0.0))
        best = int(np.argmin(new.sum(axis=1)))
        chosen[c] = cand[best]
        d2 = new[best]
    return x[chosen].copy()


def _kmeans(x: np.ndarray, k: int, config: HKMeansConfig, seed: int) -> np.ndarray:
    """k centroids of `x` (n > k): k-means++ starts, then faiss Lloyd iterations; best of `nredo` runs."""
    import faiss

    rng = np.random.default_rng(seed)
    best, best_obj = None, np.inf
    for _ in range(config.nredo):
        km = faiss.Kmeans(
            x.shape[1], k, niter=config.niter, nredo=1, seed=int(rng.integers(2**31 - 1)), verbose=False,
            min_points_per_centroid=1, max_points_per_centroid=len(x),  # sampling is done by the caller
        )
        cap = k * config.init_points_per_centroid
        init_x = x if len(x) <= cap else x[np.sort(rng.choice(len(x), size=cap, replace=False))]
        km.train(x, init_centroids=_kmeans_pp(init_x, k, rng))
        obj = float(km.obj[-1]) if len(km.obj) else 0.0
        if obj < best_obj or best is None:
            best, best_obj = np.asarray(km.centroids, dtype=np.float32).reshape(k, x.shape[1]), obj
    assert best is not None
    return best


def _root_centroid(data: np.ndarray, config: HKMeansConfig) -> np.ndarray:
    """The root's own centroid: the mean of the vectors the root is fitted on (all of them, or its sample)."""
    n, cap = len(data), config.k * config.max_points_per_centroid
    if n > cap:
        pick = np.sort(np.random.default_rng(_node_seed(config.seed, 0, 0)).choice(n, size=cap, replace=False))
        return _as_f32(data[pick]).mean(axis=0, dtype=np.float64).astype(np.float32)
    return _as_f32(data[:]).mean(axis=0, dtype=np.float64).astype(np.float32)


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


def _fit_node(
    data: np.ndarray, idx: np.ndarray, own: np.ndarray, level: int, node: int, config: HKMeansConfig
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Fit one node on its members `idx`; returns (k children, each member's child, members' summed squared
    distance to their child, kind: 'empty' | 'small' | 'fitted')."""
    k, dim, step = config.k, data.shape[1], config.chunk
    children = np.empty((k, dim), dtype=np.float32)
    if len(idx) == 0:
        children[:] = own  # the documented rule for an empty node
        return children, np.empty(0, np.int64), 0.0, "empty"
    cap = k * config.max_points_per_centroid
    x = _as_f32(np.asarray(data)[idx]) if len(idx) <= max(cap, step) else None  # small enough: load once, use twice
    if len(idx) <= k:
        assert x is not None
        children[: len(idx)] = x  # the documented rule for a node of at most k vectors
        children[len(idx) :] = own
        kind = "small"
    else:
        seed = _node_seed(config.seed, level, node)
        if len(idx) > cap:
            pick = np.sort(np.random.default_rng(seed).choice(len(idx), size=cap, replace=False))
            fit_x = x[pick] if x is not None else _as_f32(data[idx[pick]])
        else:
            fit_x = x
        children[:] = _kmeans(fit_x, k, config, seed)
        kind = "fitted"
    norms = _sq_norms(children)
    if x is not None:
        child, d = _nearest(x, children, norms)
        return children, child, float(d.sum(dtype=np.float64)), kind
    child = np.empty(len(idx), dtype=np.int64)
    total = 0.0
    for start in range(0, len(idx), step):
        c, d = _nearest(_as_f32(data[idx[start : start + step]]), children, norms)
        child[start : start + len(c)] = c
        total += float(d.sum(dtype=np.float64))
    return children, child, total, kind


def _fit(
    data: np.ndarray, config: HKMeansConfig, progress: Callable[[int, int, int], None] | None
) -> tuple[VisualCodebook, FitStats]:
    n, dim = data.shape
    if n == 0:
        raise ValueError("cannot fit a codebook on no vectors")
    workers = _Workers(config)
    if workers.n > 1 and isinstance(data, np.memmap) and n >= PARALLEL_MIN_VECTORS and config.levels > 1:
        for _ in range(workers.n):
            workers.pool().submit(_warm_up)  # workers import numpy and faiss while the root is fitted
    root = _root_centroid(data, config)
    node_of = np.zeros(n, dtype=np.int64)  # node of each vector at the current depth
    centroids: list[np.ndarray] = []
    small: list[int] = []
    empty: list[int] = []
    try:
        levels = _fit_levels(data, config, progress, root, node_of, centroids, small, empty, workers)
    finally:
        workers.close()
    node_of, inertia = levels
    book = VisualCodebook(config, centroids, root)
    stats = FitStats(n, dim, inertia / n, np.bincount(node_of, minlength=config.vocab_size), small, empty)
    return book, stats


def _fit_levels(
    data: np.ndarray, config: HKMeansConfig, progress: Callable[[int, int, int], None] | None, root: np.ndarray,
    node_of: np.ndarray, centroids: list[np.ndarray], small: list[int], empty: list[int], workers: _Workers,
) -> tuple[np.ndarray, float]:
    """The level-by-level loop of _fit; fills `centroids`, `small`, `empty`; returns leaves and inertia."""
    k, dim = config.k, data.shape[1]
    inertia = 0.0
    for level in range(config.levels):
        n_nodes = k**level
        level_c = np.empty((n_nodes, k, dim), dtype=np.float32)
        order = np.argsort(node_of, kind="stable")  # members of each node, in data order
        offsets = np.concatenate([[0], np.cumsum(np.bincount(node_of, minlength=n_nodes))])
        new_node = np.empty_like(node_of)
        kinds: list[str] = []
        inertia = 0.0  # of the last level: the leaf inertia
        owns = centroids[-1].reshape(n_nodes, dim) if level else root[None, :]
        jobs = ((node, order[offsets[node] : offsets[node + 1]], owns[node]) for node in range(n_nodes))
        for done, (node, idx, (c, child, dist, kind)) in enumerate(_fit_level(data, jobs, level, n_nodes, config, workers)):
            level_c[node] = c
            new_node[idx] = node * k + child
            inertia += dist
            kinds.append(kind)
            if progress:
                progress(level + 1, done, n_nodes)
        centroids.append(level_c)
        node_of = new_node
        small.append(kinds.count("small"))
        empty.append(kinds.count("empty"))
    return node_of, inertia


PARALLEL_MIN_VECTORS = 50_000


class _Workers:
    """A process pool started on first use and kept for every level of one fit."""

    def __init__(self, config: HKMeansConfig) -> None:
        self.n = config.processes or os.cpu_count() or 1
        self._pool: Any = None

    def pool(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.n, mp_context=mp.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _fit_level(
    data: np.ndarray, jobs: Any, level: int, n_nodes: int, config: HKMeansConfig, workers: _Workers
) -> Any:
    """Yield (node, member indices, _fit_node result) for every node of a level, serially or in processes.

    Processes are used for levels with many nodes when the data is a file-backed memory map that workers can
    open themselves; each node's result depends only on its members and its seed, so the codebook is the
    same whatever the number of processes.
    """
    filename = getattr(data, "filename", None)
    small_job = len(data) < PARALLEL_MIN_VECTORS  # starting processes costs more than it saves
    if workers.n <= 1 or n_nodes < 4 * workers.n or small_job or filename is None or not isinstance(data, np.memmap):
        for node, idx, own in jobs:
            yield node, idx, _fit_node(data, idx, own, level, node, config)
        return
    jobs = list(jobs)
    n_batches = workers.n * 4
    batches = [jobs[i::n_batches] for i in range(n_batches)]  # interleaved: similar sizes per batch
    futures = [workers.pool().submit(_fit_batch, filename, data.offset, data.shape, data.dtype.str, batch, level, config)
               for batch in batches if batch]
    for future in futures:
        yield from future.result()


def _warm_up() -> None:
    import faiss  # noqa: F401


def _fit_batch(filename: str, offset: int, shape: tuple[int, int], dtype: str, batch: list[Any], level: int,
               config: HKMeansConfig) -> list[Any]:
    """Worker process: fit a batch of nodes reading the data from its memory-mapped file."""
    import faiss

    faiss.omp_set_num_threads(1)
    data = np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)
    with _numpy_blas_single_threaded():
        return [(node, idx, _fit_node(data, idx, own, level, node, config)) for node, idx, own in batch]


def agreement(book: VisualCodebook, x: np.ndarray) -> float:
    """Share of vectors whose tree-descent token is also their exact nearest leaf."""
    if len(x) == 0:
        return 1.0
    return float((book.label(x) == book.label_flat(x)).mean())
