"""Hierarchical k-means codebook and labeling (videobert_model.visual_tokenizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import videobert_model.visual_tokenizer as vt
from videobert_model.visual_tokenizer import HKMeansConfig, VisualCodebook, agreement, fit_hierarchical_kmeans


def hierarchical_clusters(n: int, dim: int, k: int, levels: int, seed: int = 0, spread: float = 10.0) -> np.ndarray:
    """Points around k ** levels well separated centres arranged as a tree (each level `spread` x tighter)."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((1, dim), np.float32)
    scale = spread**levels
    for _ in range(levels):
        offsets = rng.standard_normal((len(centres), k, dim)).astype(np.float32) * scale
        centres = (centres[:, None, :] + offsets).reshape(-1, dim)
        scale /= spread
    pick = rng.integers(0, len(centres), n)
    return centres[pick] + rng.standard_normal((n, dim)).astype(np.float32) * 0.01


def test_fit_is_deterministic_and_seeded() -> None:
    x = np.random.default_rng(1).standard_normal((3000, 32)).astype(np.float32)
    cfg = HKMeansConfig(levels=2, k=5, seed=3)
    a, _ = fit_hierarchical_kmeans(x, cfg)
    b, _ = fit_hierarchical_kmeans(x.copy(), cfg)
    assert a.content_hash() == b.content_hash()
    np.testing.assert_array_equal(a.label(x), b.label(x))
    c, _ = fit_hierarchical_kmeans(x, HKMeansConfig(levels=2, k=5, seed=4))
    assert c.content_hash() != a.content_hash()


def test_empty_and_tiny_nodes_still_give_k_children() -> None:
    # 7 distinct points, 3 levels of k = 4: level-2 nodes hold 0 to a few points, level 3 mostly nothing
    x = np.arange(7 * 6, dtype=np.float32).reshape(7, 6) ** 1.5
    book, stats = fit_hierarchical_kmeans(x, HKMeansConfig(levels=3, k=4, seed=0))
    assert book.vocab_size == 64
    assert [c.shape for c in book.centroids] == [(1, 4, 6), (4, 4, 6), (16, 4, 6)]
    assert all(np.isfinite(c).all() for c in book.centroids)
    assert sum(stats.small_nodes) > 0 and sum(stats.empty_nodes) > 0
    tokens = book.label(x)
    assert ((tokens >= 0) & (tokens < 64)).all()
    # every training point is exactly a leaf centroid: tiny nodes keep their members as children
    np.testing.assert_allclose(book.leaf_centroids()[tokens], x, rtol=1e-5, atol=1e-4)
    assert stats.leaf_inertia < 1e-2  # zero up to float32 rounding (|x|^2 is about 1e5 here)
    # an empty node's children are copies of its own centroid
    empty_node = next(i for i in range(16) if np.all(book.centroids[2][i] == book.centroids[2][i][0]))
    parent = book.centroids[1][empty_node // 4, empty_node % 4]
    np.testing.assert_array_equal(book.centroids[2][empty_node], np.repeat(parent[None], 4, axis=0))


def test_fewer_vectors_than_k_at_the_root() -> None:
    x = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    book, _ = fit_hierarchical_kmeans(x, HKMeansConfig(levels=2, k=3))
    assert book.label(x).tolist() == [0, 3]  # children 0 and 1 of the root are the two points


def test_vector_exactly_between_two_centroids_takes_the_lower_id() -> None:
    cfg = HKMeansConfig(levels=2, k=2)
    root = np.zeros(4, np.float32)
    level1 = np.array([[[0, 0, 0, 0], [2, 2, 2, 2]]], np.float32)
    level2 = np.array([[[0, 0, 0, 0], [1, 1, 1, 1]], [[1, 1, 1, 1], [2, 2, 2, 2]]], np.float32)
    book = VisualCodebook(cfg, [level1, level2], root)
    between = np.array([[1, 1, 1, 1]], np.float32)
    # level 1: equally far from both children -> child 0; level 2: child 1 is exactly the point -> token 1
    assert book.label(between).tolist() == [1]
    # leaves 1 (= [1,1,1,1]) and 2 (= [1,1,1,1]) tie exactly for the flat search too: the lower id wins
    assert book.label_flat(between).tolist() == [1]
    middle = np.array([[0.5, 0.5, 0.5, 0.5]], np.float32)  # between leaves 0 and 1
    assert book.label(middle).tolist() == [0] and book.label_flat(middle).tolist() == [0]


@pytest.mark.parametrize("dim", [3, 128, 1024])
def test_other_dimensions(dim: int) -> None:
    x = hierarchical_clusters(2000, dim, k=3, levels=2, seed=dim)
    book, stats = fit_hierarchical_kmeans(x, HKMeansConfig(levels=2, k=3))
    assert book.dim == dim and book.leaf_centroids().shape == (9, dim)
    assert stats.leaf_sizes.sum() == 2000
    with pytest.raises(ValueError, match=f"shape \\(n, {dim}\\)"):
        book.label(np.zeros((2, dim + 1), np.float32))


def test_tree_equals_flat_on_well_separated_clusters() -> None:
    x = hierarchical_clusters(6000, 16, k=4, levels=3)
    book, stats = fit_hierarchical_kmeans(x, HKMeansConfig(levels=3, k=4, seed=0, nredo=3))
    assert agreement(book, x) == 1.0
    assert (stats.leaf_sizes > 0).sum() == 64  # every true cluster found its own leaf


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    x = np.random.default_rng(2).standard_normal((1500, 24)).astype(np.float32)
    book, _ = fit_hierarchical_kmeans(x, HKMeansConfig(levels=3, k=3, seed=5))
    book.extra = {"note": "kept"}
    folder = book.save_pretrained(tmp_path / "codebook")
    assert sorted(p.name for p in folder.iterdir()) == [
        "centroids_level1.npy", "centroids_level2.npy", "centroids_level3.npy", "config.json", "root.npy",
    ]
    loaded = VisualCodebook.from_pretrained(folder)
    assert loaded.content_hash() == book.content_hash() and loaded.config == book.config
    assert loaded.extra == {"note": "kept"}
    np.testing.assert_array_equal(loaded.label(x), book.label(x))
    c = np.load(folder / "centroids_level2.npy")
    c[0, 0, 0] += 1.0
    np.save(folder / "centroids_level2.npy", c)
    with pytest.raises(ValueError, match="do not match the content hash"):
        VisualCodebook.from_pretrained(folder)


def test_memory_mapped_input_and_processes_give_the_same_codebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = hierarchical_clusters(4000, 8, k=3, levels=3, seed=9)
    path = tmp_path / "x.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")
    cfg = HKMeansConfig(levels=3, k=3, processes=1)
    in_memory, _ = fit_hierarchical_kmeans(x, cfg)
    monkeypatch.setattr(vt, "PARALLEL_MIN_VECTORS", 0)  # force the process pool on this small input
    parallel, _ = fit_hierarchical_kmeans(mapped, HKMeansConfig(levels=3, k=3, processes=2))
    assert parallel.content_hash() == in_memory.content_hash()


def test_token_ids_are_paths() -> None:
    x = np.random.default_rng(0).standard_normal((500, 4)).astype(np.float32)
    book, _ = fit_hierarchical_kmeans(x, HKMeansConfig(levels=3, k=5))
    assert book.path(0) == (0, 0, 0) and book.path(124) == (4, 4, 4) and book.path(38) == (1, 2, 3)
    with pytest.raises(ValueError, match="cannot fit a codebook on no vectors"):
        fit_hierarchical_kmeans(np.zeros((0, 4), np.float32), HKMeansConfig(levels=2, k=2))


def test_kmeans_pp_starts_are_distinct_data_rows_and_seeded() -> None:
    x = hierarchical_clusters(300, 16, k=6, levels=1, seed=4)
    starts = vt._kmeans_pp(x, 6, np.random.default_rng(7))
    assert starts.shape == (6, 16) and starts.dtype == np.float32
    assert all((x == s).all(axis=1).any() for s in starts)  # every start is a data vector
    gaps = np.linalg.norm(starts[:, None] - starts[None], axis=-1)[np.triu_indices(6, 1)]
    assert gaps.min() > 1.0  # one start in each of the 6 well separated clusters (noise is 0.01)
    np.testing.assert_array_equal(starts, vt._kmeans_pp(x.copy(), 6, np.random.default_rng(7)))
    dup = np.repeat(x[:2], 10, axis=0)  # fewer distinct vectors than k: still k starts, no error
    assert vt._kmeans_pp(dup, 6, np.random.default_rng(0)).shape == (6, 16)
