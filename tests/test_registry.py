"""Dataset indexes in the store and the database (videobert.dataset.registry), codebooks found by reference, and
the codebook fit skipped when the same manifest, parameters and code version were fitted before."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import Project
from tests.helpers.dataset import SMALL, ingest_three_videos
from videobert.core.errors import SettingsError
from videobert.core.params import Params
from videobert.dataset import registry
from videobert.dataset.codebook import build_codebook, fetch_codebook, fit_key, load_codebook, reusable_codebook
from videobert.dataset.files import DatasetError, write_json
from videobert.dataset.manifest import build_manifest

PARAMS = Params.model_validate(yaml.safe_load(SMALL))


def _manifest(n: int) -> dict:
    return {"videos": [{"id": f"v{i}", "clips": 2} for i in range(n)], "dim": 8, "clips": 2 * n, "stale": []}


def test_indexes_are_found_latest_by_prefix_or_as_files(project: Project) -> None:
    rt = project.runtime()
    with pytest.raises(DatasetError, match="no manifest index is registered: write one first"):
        registry.resolve_index(rt, registry.MANIFEST, "")
    one = registry.register(rt, registry.MANIFEST, _manifest(1))
    two = registry.register(rt, registry.MANIFEST, _manifest(2))
    assert one.content_hash != two.content_hash
    # in the store, as the same bytes a local file gets, under its hash
    key = f"manifests/{two.content_hash}/manifest.json"
    write_json(project.root / "m.json", _manifest(2))
    assert rt.store.get_bytes(key, verify=True) == (project.root / "m.json").read_bytes()

    latest = registry.resolve_index(rt, registry.MANIFEST, "")
    assert (latest.content_hash, latest.doc) == (two.content_hash, _manifest(2))
    assert registry.resolve_index(rt, registry.MANIFEST, one.content_hash[:8]).doc == _manifest(1)
    assert registry.resolve_index(rt, registry.MANIFEST, "").content_hash == two.content_hash  # reading changes nothing
    # writing an older version again makes it the latest (what the next step with an empty reference reads)
    registry.register(rt, registry.MANIFEST, _manifest(1))
    assert registry.resolve_index(rt, registry.MANIFEST, "").content_hash == one.content_hash
    registry.register(rt, registry.MANIFEST, _manifest(2))
    # a local file, relative to the working folder, as it is
    from_file = registry.resolve_index(rt, registry.MANIFEST, "m.json")
    assert from_file.content_hash == two.content_hash and from_file.source == str(project.root / "m.json")

    with pytest.raises(DatasetError, match=r"manifest index .*nope\.json does not exist \(relative paths resolve"):
        registry.resolve_index(rt, registry.MANIFEST, "nope.json")
    with pytest.raises(DatasetError, match="manifest index 'abcdef12' is not registered"):
        registry.resolve_index(rt, registry.MANIFEST, "abcdef12")
    (project.root / "bad.json").write_text('{"videos": [')
    with pytest.raises(DatasetError, match="manifest index .*bad.json cannot be read"):
        registry.resolve_index(rt, registry.MANIFEST, "bad.json")
    (project.root / "other.json").write_text('{"codebook": "x"}')
    with pytest.raises(DatasetError, match="cannot be read: 'videos'"):
        registry.resolve_index(rt, registry.MANIFEST, "other.json")

    # scoped by manifest: the sentences index of the manifest asked for, not the latest of another
    registry.register(rt, registry.SENTENCES, {"videos": {}, "manifest": one.content_hash},
                      manifest_hash=one.content_hash)
    registry.register(rt, registry.SENTENCES, {"videos": {"v0": {}}, "manifest": two.content_hash},
                      manifest_hash=two.content_hash)
    found = registry.resolve_index(rt, registry.SENTENCES, "", one.content_hash)
    assert found.doc["manifest"] == one.content_hash and found.manifest_hash == one.content_hash

    # the store's copy is checked against its hash
    rt.store.put_bytes(key, b'{"videos": [], "dim": 8}\n')
    with pytest.raises(DatasetError, match="does not match its hash"):
        registry.resolve_index(rt, registry.MANIFEST, two.content_hash)


def test_a_local_copy_of_a_registered_index_has_the_stored_bytes(project: Project) -> None:
    rt = project.runtime()
    reg = registry.register(rt, registry.TOKENS_INDEX, {"codebook": "c" * 64, "videos": {}, "manifest": "m" * 64})
    path = registry.local_file(rt, registry.resolve_index(rt, registry.TOKENS_INDEX, ""))
    assert path.read_bytes() == rt.store.get_bytes(f"tokens-indexes/{reg.content_hash}/tokens.json")


@pytest.fixture
def ingested(project: Project) -> Project:
    ingest_three_videos(project.runtime(), project.root, project.write_params(SMALL))
    return project


def test_a_codebook_of_the_same_manifest_and_params_is_reused_and_found_by_reference(ingested: Project) -> None:
    rt = ingested.runtime()
    manifest = build_manifest(rt, PARAMS)
    assert reusable_codebook(rt, manifest, PARAMS) is None  # nothing fitted yet
    with pytest.raises(SettingsError, match="no codebook is registered: fit one first"):
        load_codebook(rt, "")
    book, metrics = build_codebook(rt, manifest, PARAMS, ingested.root / "cb")

    found = reusable_codebook(rt, manifest, PARAMS)
    assert found is not None and found["content_hash"] == book.content_hash()
    assert found["manifest_hash"] == registry.content_hash(manifest)
    # any change of the manifest or of a codebook parameter is another fit
    other = Params(features=PARAMS.features, codebook=PARAMS.codebook.model_copy(update={"seed": 7}))
    assert reusable_codebook(rt, manifest, other) is None
    assert reusable_codebook(rt, {**manifest, "videos": manifest["videos"][:2]}, PARAMS) is None
    assert fit_key("m", PARAMS.codebook) != fit_key("m", other.codebook)
    # a codebook whose files left the store is not reused
    rt.store.delete(f"codebooks/{book.content_hash()}/config.json")
    assert reusable_codebook(rt, manifest, PARAMS) is None
    build_codebook(rt, manifest, PARAMS, ingested.root / "cb")  # fitted again: the same codebook

    # reused: every file of the folder, byte for byte, from the store
    assert fetch_codebook(rt, book.content_hash(), ingested.root / "copy") == metrics
    for f in (ingested.root / "cb").iterdir():
        assert (ingested.root / "copy" / f.name).read_bytes() == f.read_bytes(), f.name

    # by reference: the latest (of a manifest), a prefix, a full hash; a wrong one says what it is not
    assert load_codebook(rt, "").content_hash() == book.content_hash()
    assert load_codebook(rt, "", registry.content_hash(manifest)).content_hash() == book.content_hash()
    with pytest.raises(SettingsError, match="no codebook fitted on manifest 0000000000000000 is registered"):
        load_codebook(rt, "", "0" * 64)
    assert load_codebook(rt, book.content_hash()[:10]).content_hash() == book.content_hash()
    with pytest.raises(SettingsError, match="codebook 'fedcba98' is not registered"):
        load_codebook(rt, "fedcba98")
    with pytest.raises(SettingsError, match=r"missing-folder is not a folder \(relative paths resolve against"):
        load_codebook(rt, "missing-folder")
    assert json.loads((ingested.root / "copy" / "config.json").read_text())["content_hash"] == book.content_hash()
