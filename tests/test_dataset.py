"""Dataset stages: manifest, codebook (with pictures and gallery), per-video tokens."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from tests.conftest import Project
from tests.helpers.hkmeans import descend
from tests.helpers.media import make_video
from videobert.core.errors import VideobertError
from videobert.core.params import CodebookParams, FeaturesParams, Params
from videobert.core.runtime import Runtime
from videobert.core.stages import StageOptions
from videobert.dataset.codebook import build_codebook, load_codebook
from videobert.dataset.manifest import build_manifest
from videobert.dataset.tokens import run_tokens, tokens_index, tokens_todo
from videobert.db import repository as repo
from videobert.db.models import Codebook
from videobert.features.clips import FrameReader, load_features
from videobert.features.extractors import BaselineExtractor
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download

PATTERNS = ["testsrc2", "mandelbrot", "rgbtestsrc", "smptebars"]
PARAMS = Params(features=FeaturesParams(extractor="baseline"), codebook=CodebookParams(levels=2, k=3, agreement_sample=50))


@pytest.fixture
def ingested(project: Project) -> Project:
    rt = project.runtime()
    for i, pattern in enumerate(PATTERNS):
        src = make_video(project.root / f"v{i}.mp4", seconds=4 + i, pattern=pattern)
        repo.register_videos(rt.db, [repo.NewVideo(f"v{i}", "local", str(src))])
        assert run_download(rt, f"v{i}", PARAMS).status == "done"
        assert run_features(rt, f"v{i}", PARAMS).status == "done"
    return project


def test_manifest_lists_current_features_only(ingested: Project) -> None:
    rt = ingested.runtime()
    manifest = build_manifest(rt, PARAMS)
    assert [v["id"] for v in manifest["videos"]] == ["v0", "v1", "v2", "v3"]
    assert manifest["clips"] == sum(v["clips"] for v in manifest["videos"]) == 3 + 4 + 4 + 5
    assert manifest["dim"] == BaselineExtractor(20, 30, 224).dim and manifest["stale"] == []
    other = Params(features=FeaturesParams(extractor="baseline", fps=10))
    stale = build_manifest(rt, other)
    assert stale["videos"] == [] and stale["stale"] == ["v0", "v1", "v2", "v3"]


def _check_token_pictures(rt: Runtime, manifest: dict[str, Any], folder: Path) -> float:
    """Every token picture is the middle frame of the clip nearest to its token's centroid among the clips
    labelled with it (ties: the first in manifest order); tokens and distances computed here from the saved
    centroid files (tests/helpers/hkmeans.py). Returns the largest gap, within one token, between its nearest
    and farthest clip."""
    pictures = json.loads((folder / "pictures.json").read_text())
    rows = [(v["id"], clip) for v in manifest["videos"] for clip in range(v["clips"])]
    x = np.concatenate([load_features(rt.store, v["features"]["key"]).features for v in manifest["videos"]])
    tokens, dist = descend(folder, x)
    assert set(pictures) == {str(t) for t in tokens.tolist()}
    spread = 0.0
    with zipfile.ZipFile(folder / "pictures.zip") as z:
        for token, where in pictures.items():
            members = np.flatnonzero(tokens == int(token))
            chosen = rows.index((where["video"], where["clip"]))
            assert chosen in members, token
            nearest = dist[members].min()
            assert dist[chosen] <= nearest + 1e-4 * (1 + nearest), token  # the nearest, float32 rounding aside
            assert not any(np.array_equal(x[m], x[chosen]) for m in members if m < chosen), token  # ties: the first
            assert where["sq_distance"] == pytest.approx(dist[chosen], rel=1e-3, abs=1e-3)
            spread = max(spread, float(dist[members].max() - nearest))
            view = repo.stage_views(rt.db, ["features"], [where["video"]])[(where["video"], "features")]
            with rt.store.local_path(view.artifact("frames").key) as path, FrameReader(path) as frames:
                assert z.read(f"{int(token):06d}.jpg") == frames.jpeg(where["clip"])
    return spread


def test_codebook_is_deterministic_illustrated_and_registered(ingested: Project) -> None:
    rt = ingested.runtime()
    manifest = build_manifest(rt, PARAMS)
    book, metrics = build_codebook(rt, manifest, PARAMS, ingested.root / "cb1")
    again, _ = build_codebook(rt, manifest, PARAMS, ingested.root / "cb2")
    assert again.content_hash() == book.content_hash()
    files = sorted(p.name for p in (ingested.root / "cb1").iterdir())
    assert files == ["centroids_level1.npy", "centroids_level2.npy", "config.json", "gallery.png", "metrics.json",
                     "pictures.json", "pictures.zip", "root.npy", "token_counts.npy"]
    for name in files:  # byte for byte
        assert (ingested.root / "cb1" / name).read_bytes() == (ingested.root / "cb2" / name).read_bytes(), name

    assert metrics["n_vectors"] == 16 and metrics["vocab_size"] == 9 and metrics["videos"] == 4
    assert 0 <= metrics["empty_leaf_share"] < 1 and 0 <= metrics["tree_flat_agreement"] <= 1
    assert json.loads((ingested.root / "cb1" / "metrics.json").read_text()) == metrics

    pictures = json.loads((ingested.root / "cb1" / "pictures.json").read_text())
    assert pictures and len(pictures) == metrics["tokens_with_pictures"]
    _check_token_pictures(rt, manifest, ingested.root / "cb1")  # here most tokens hold copies of one clip: ties
    gallery = Image.open(ingested.root / "cb1" / "gallery.png")
    assert gallery.format == "PNG" and gallery.size[0] >= 96

    with rt.db.session() as s:
        row = s.scalars(select(Codebook)).one()
    assert (row.content_hash, row.levels, row.k, row.dim) == (book.content_hash(), 2, 3, BaselineExtractor(20, 30, 224).dim)
    assert rt.store.exists(f"codebooks/{book.content_hash()}/config.json")
    # another worker loads it from the store by hash
    assert load_codebook(rt, book.content_hash()).content_hash() == book.content_hash()

    # two tokens for 16 clips of 4 videos: a token's clips lie at clearly different distances from its centroid
    coarse = Params(features=PARAMS.features, codebook=CodebookParams(levels=1, k=2, agreement_sample=50))
    build_codebook(rt, manifest, coarse, ingested.root / "cb-coarse")
    assert _check_token_pictures(rt, manifest, ingested.root / "cb-coarse") > 1.0  # the farthest clip would not pass


def test_a_failed_codebook_leaves_no_empty_or_half_folder(ingested: Project) -> None:
    rt = ingested.runtime()
    manifest = build_manifest(rt, PARAMS)
    dataset = ingested.root / "dataset"
    build_codebook(rt, manifest, PARAMS, dataset / "codebook")
    before = {f.name: f.read_bytes() for f in (dataset / "codebook").iterdir()}
    for v in manifest["videos"]:  # the fit and the saved centroids succeed, then the token pictures cannot be read
        rt.store.delete(v["frames"]["key"])
    other = Params(features=PARAMS.features, codebook=CodebookParams(levels=2, k=2, agreement_sample=50))
    with pytest.raises(VideobertError):
        build_codebook(rt, manifest, other, dataset / "codebook")
    assert {f.name: f.read_bytes() for f in (dataset / "codebook").iterdir()} == before  # the last good one, as it was
    with pytest.raises(VideobertError):
        build_codebook(rt, manifest, other, dataset / "fresh")
    assert [f.name for f in dataset.iterdir()] == ["codebook"]  # no empty `fresh`, no temporary folder left


def test_tokens_stage(ingested: Project) -> None:
    rt = ingested.runtime()
    manifest = build_manifest(rt, PARAMS)
    book, _ = build_codebook(rt, manifest, PARAMS, ingested.root / "cb")
    for v in manifest["videos"]:
        r = run_tokens(rt, v["id"], book)
        assert r.status == "done" and r.outcome["clips"] == v["clips"]
    doc = rt.store.get_json("videos/v1/tokens/tokens.json")
    feats = load_features(rt.store, manifest["videos"][1]["features"]["key"])
    assert doc["tokens"] == descend(ingested.root / "cb", feats.features)[0].tolist()
    assert doc["start"][:2] == [0.0, 1.5] and doc["codebook"] == book.content_hash()
    assert run_tokens(rt, "v1", book).reason == "up to date"
    index = tokens_index(rt, manifest, book.content_hash())
    assert sorted(index["videos"]) == ["v0", "v1", "v2", "v3"] and index["missing"] == []
    assert tokens_todo(rt, manifest, book.content_hash()) == ([], {"up to date": 4})  # planned from the database
    assert tokens_todo(rt, manifest, book.content_hash(), StageOptions(force=True))[0] == ["v0", "v1", "v2", "v3"]
    assert tokens_todo(rt, manifest, "another-codebook") == (["v0", "v1", "v2", "v3"], {})
    # a new codebook re-labels
    other, _ = build_codebook(rt, manifest, Params(features=PARAMS.features, codebook=CodebookParams(levels=1, k=4)),
                              ingested.root / "cb-other")
    assert run_tokens(rt, "v1", other).status == "done"
    assert tokens_index(rt, manifest, book.content_hash())["missing"] == ["v1"]


def test_codebook_of_nothing(project: Project) -> None:
    from videobert.dataset.files import DatasetError

    rt = project.runtime()
    with pytest.raises(DatasetError, match="no clips"):
        build_codebook(rt, build_manifest(rt, PARAMS), PARAMS, project.root / "cb")
