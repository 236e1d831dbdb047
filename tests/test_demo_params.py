"""The demo's params file is complete: `dvc repro` reads every stage's section from it."""

from __future__ import annotations

from pathlib import Path

import yaml

from videobert.core.params import Params
from videobert_cli.demo import DEMO_PARAMS, demo_params_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_demo_params_name_every_section_dvc_reads_and_change_only_the_demo_s_overrides() -> None:
    written = yaml.safe_load(demo_params_yaml())
    dvc_sections = {p for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()
                    for p in stage.get("params", [])}
    assert dvc_sections <= set(written)
    assert set(written) == set(Params.model_fields)
    overrides = yaml.safe_load(DEMO_PARAMS)
    paper = Params().model_dump(mode="json")
    for section, values in written.items():
        expected = {**paper[section], **overrides.get(section, {})}
        assert values == expected, section
    assert Params.model_validate(written).codebook.k == overrides["codebook"]["k"]
