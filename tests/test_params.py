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


# --- bounds at load time (issue 21, item 8) -----------------------------------------------------------------------

def _numeric_fields(*kinds: type) -> list[tuple[str, str]]:
    """(section, field) of every field of Params whose type is one of `kinds` (optional or not)."""
    import typing

    out = []
    for section, info in Params.model_fields.items():
        for name, field in info.annotation.model_fields.items():
            if set(typing.get_args(field.annotation) or (field.annotation,)) & set(kinds):
                out.append((section, name))
    return out


# The efficientnet fields are another change's (issue 21 item 8 left them as they were): not bounded here.
NOT_BOUNDED_HERE: set[tuple[str, str]] = set()
_LEFT = pytest.mark.xfail(reason="an efficientnet field, not bounded by this change", strict=False)


def _cases(fields: list[tuple[str, str]]) -> list:
    return [pytest.param(s, n, marks=_LEFT) if (s, n) in NOT_BOUNDED_HERE else (s, n) for s, n in fields]


def test_the_float_fields_are_found() -> None:
    floats = _numeric_fields(float)
    assert ("features", "fps") in floats and ("train", "learning_rate") in floats and len(floats) >= 25


@pytest.mark.parametrize(("section", "name"), _cases(_numeric_fields(float)))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_for_every_float_field(section: str, name: str, value: float) -> None:
    from pydantic import ValidationError

    from videobert.core.params import apply_override

    with pytest.raises(ValidationError):
        Params.model_validate({section: {name: value}})
    with pytest.raises(SettingsError) as err:  # --set and a form's override: the key and the value named
        apply_override(Params(), {section: {name: value}})
    assert f"{section}.{name}={value!r}: Input should be a finite number" in str(err.value)


@pytest.mark.parametrize(("section", "name"), _cases(_numeric_fields(int, float)))
def test_every_number_has_an_upper_bound(section: str, name: str) -> None:
    import annotated_types

    if (section, name) == ("caption", "train_videos"):
        pytest.skip("the first N videos: a larger N only means all of them")
    field = Params.model_fields[section].annotation.model_fields[name]
    assert any(isinstance(m, annotated_types.Le | annotated_types.Lt) for m in field.metadata), (section, name)
    assert field.description, (section, name)  # where the bound's reason is written


@pytest.mark.parametrize(("section", "name", "top", "over"), [
    ("features", "fps", 240, 240.5),
    ("features", "frame_size", 1024, 1025),
    ("features", "frames_per_clip", 512, 513),
    ("features", "batch_size", 256, 257),
    ("download", "max_duration_s", 86_400, 86_401),
    ("train", "learning_rate", 1.0, 1.5),
    ("train", "per_device_batch_size", 4096, 4097),
    ("codebook", "seed", 2**32 - 1, 2**32),
    ("codebook", "seed", 0, -1),
    ("caption", "length_penalty", -10, -10.5),
])
def test_the_limit_passes_and_past_it_is_refused_naming_the_key(section: str, name: str, top: float,
                                                                 over: float) -> None:
    from videobert.core.params import apply_override, override_from_assignments

    assert getattr(getattr(apply_override(Params(), {section: {name: top}}), section), name) == top
    with pytest.raises(SettingsError, match=rf"{section}\.{name}={over!r}: Input should be"):
        apply_override(Params(), override_from_assignments([f"{section}.{name}={over}"]))


@pytest.mark.parametrize(("text", "expected"), [
    ("features:\n  fps: .inf\n", "features.fps=inf: Input should be a finite number"),
    ("features:\n  fps: .nan\n", "features.fps=nan: Input should be a finite number"),
    ("features:\n  fps: 1.0e+9\n", "features.fps=1000000000.0: Input should be less than or equal to 240"),
    ("features:\n  frame_size: 100000\n", "features.frame_size=100000: Input should be less than or equal to 1024"),
    ("train:\n  learning_rate: .inf\n", "train.learning_rate=inf: Input should be a finite number"),
    ("train:\n  learning_rate: 0\n", "train.learning_rate=0: Input should be greater than 0"),
    ("download:\n  max_duration_s: -.inf\n", "download.max_duration_s=-inf: Input should be a finite number"),
])
def test_absurd_values_in_a_params_file_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        load_params(path)
    assert expected in str(err.value)


def _module_params_texts() -> list:
    """Every module-level string constant of the project's own code and tests that is a params file (DEMO_PARAMS,
    the tests' TINY and SMALL ...): `name: {section: {...}}` with only Params' sections."""
    import ast

    import yaml

    found = []
    for path in sorted([*(REPO / "tests").rglob("*.py"), *(REPO / "videobert_cli").rglob("*.py")]):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                try:
                    raw = yaml.safe_load(node.value.value)
                except yaml.YAMLError:
                    continue
                if isinstance(raw, dict) and raw and set(raw) <= set(Params.model_fields):
                    name = f"{path.relative_to(REPO)}:{node.targets[0].id}"  # type: ignore[attr-defined]
                    found.append(pytest.param(raw, id=name))
    return found


def test_the_project_s_own_params_files_are_found() -> None:
    ids = {p.id for p in _module_params_texts()}
    assert "videobert_cli/demo.py:DEMO_PARAMS" in ids and "tests/test_dvc.py:SMALL" in ids


@pytest.mark.parametrize("raw", _module_params_texts())
def test_the_project_s_own_params_still_validate(raw: dict) -> None:
    Params.model_validate(raw)


def test_the_defaults_the_repository_file_and_the_demo_s_file_validate() -> None:
    import yaml

    from videobert_cli.demo import demo_params_yaml

    assert Params.model_validate(Params().model_dump()) == Params() == load_params(REPO / "params.yaml")
    Params.model_validate(yaml.safe_load(demo_params_yaml(Path("annotations.json"))))
