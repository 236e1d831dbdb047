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
