"""params.yaml: the paper's defaults, and clear errors on wrong values."""

from __future__ import annotations

from pathlib import Path

import pytest

from videobert.core.errors import SettingsError
from videobert.core.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_file_holds_the_paper_defaults() -> None:
    assert load_params(REPO / "params.yaml") == Params()


def test_only_the_default_file_here_may_be_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_params() == Params() and load_params("params.yaml") == Params() == load_params(Path("./params.yaml"))
    assert load_params(None) == Params()
    for named in (tmp_path / "custom.yaml", tmp_path / "nope" / "params.yaml", "/tmp/nope/params.yaml"):
        with pytest.raises(SettingsError, match=f"params file {named} does not exist"):
            load_params(named)
    (tmp_path / "params.yaml").mkdir()  # there, but not a file
    with pytest.raises(SettingsError, match="is not a file"):
        load_params()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("download:\n  max_duration_s: -5\n", "download.max_duration_s=-5"),
        ("punctuate:\n  method: magic\n", "punctuate.method='magic'"),
        ("downlaod:\n  min_height: 10\n", "downlaod"),
        ("transcript:\n  sources: [youtube, tiktok]\n", "transcript.sources.1='tiktok'"),
        ("- a\n- b\n", "must hold a mapping"),
        ("download: [\n", "not valid YAML"),
    ],
)
def test_wrong_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        load_params(path)
    assert expected in str(err.value)


def test_the_override_model_has_every_section_and_field_of_params_all_optional() -> None:
    from videobert.core.params import ParamsOverride

    assert set(ParamsOverride.model_fields) == set(Params.model_fields)
    for section, info in Params.model_fields.items():
        sub = ParamsOverride.model_fields[section].annotation
        assert set(sub.model_fields) == set(info.annotation.model_fields), section
        assert all(not f.is_required() and f.default is None and f.description for f in sub.model_fields.values())
    assert ParamsOverride().model_dump(exclude_none=True) == {s: {} for s in Params.model_fields}
    # the types and constraints are the params file's: a form shows pickers, and a wrong value is refused early
    schema = ParamsOverride.model_json_schema()["$defs"]
    assert schema["FeaturesOverride"]["properties"]["extractor"]["anyOf"][0]["enum"] == ["s3d", "i3d", "efficientnet", "baseline"]
    assert schema["FeaturesOverride"]["properties"]["fps"]["anyOf"][0]["exclusiveMinimum"] == 0


def test_an_override_changes_the_values_it_sets_and_nothing_else() -> None:
    from videobert.core.params import apply_override, override_from_assignments, override_items

    base = load_params(REPO / "params.yaml")
    over = override_from_assignments(["features.extractor=baseline", "transcript.sources=[whisper]",
                                      "train.max_steps=100"])
    assert override_items(over) == {"features.extractor": "baseline", "transcript.sources": ["whisper"],
                                    "train.max_steps": 100}
    params = apply_override(base, over)
    assert (params.features.extractor, params.transcript.sources, params.train.max_steps) == ("baseline", ["whisper"], 100)
    assert params.model_copy(update={"features": base.features, "transcript": base.transcript,
                                     "train": base.train}) == base
    assert apply_override(base, None) == base == apply_override(base, {"features": {"fps": None}})
    assert apply_override(base, {"features": {"fps": 10}}).features.fps == 10  # a form's JSON works the same


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"features": {"extractor": "s4d"}}, "invalid override: features.extractor='s4d': Input should be 's3d'"),
        ({"features": {"fps": 0}}, "features.fps=0: Input should be greater than 0"),
        ({"featurs": {"fps": 10}}, "featurs="),
        ({"features": {"fsp": 10}}, "features.fsp=10: Extra inputs are not permitted"),
        ({"train": {"max_steps": "many"}}, "train.max_steps='many'"),
    ],
)
def test_a_wrong_override_is_refused_naming_its_key(override: dict, expected: str) -> None:
    from videobert.core.params import apply_override

    with pytest.raises(SettingsError) as err:
        apply_override(Params(), override)
    assert expected in str(err.value)


@pytest.mark.parametrize("text", ["features", "extractor=baseline", "features.=1", "features.fps=[1"])
def test_a_malformed_assignment_is_refused(text: str) -> None:
    from videobert.core.params import override_from_assignments

    with pytest.raises(SettingsError, match="--set"):
        override_from_assignments([text])


def test_written_params_read_back_equal(tmp_path: Path) -> None:
    from videobert.core.params import apply_override, write_params

    params = apply_override(Params(), {"transcript": {"sources": ["whisper"]}, "model": {"layers": 2},
                                       "train": {"learning_rate": 3e-4}})
    assert load_params(write_params(params, tmp_path / "p.yaml")) == params != Params()
