"""A damaged model folder gets one line naming the folder and what is missing or damaged (before torch or
transformers read it), in `check_model_folder` and through `videobert evaluate`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_cli import run_cli
from videobert.core.errors import ModelFolderError
from videobert.core.model_folder import check_model_folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tiny_model import train_tiny_model

    folder = tmp_path_factory.mktemp("model") / "good"
    inference = train_tiny_model(codebook_hash="c" * 64)
    inference.model.save_pretrained(folder)
    inference.tokenizer.save_pretrained(folder)
    return folder


def _damaged(model_dir: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Copies of the good folder, each damaged one way, with the words its error must say."""
    out = {}
    for name in ("no-weights", "no-tokenizer", "truncated", "overwritten"):
        out[name] = (shutil.copytree(model_dir, tmp_path / name), "")
    (out["no-weights"][0] / "model.safetensors").unlink()
    for f in ("vocab.txt", "tokenizer.json"):
        (out["no-tokenizer"][0] / f).unlink(missing_ok=True)
    weights = out["truncated"][0] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4096])
    weights = out["overwritten"][0] / "model.safetensors"
    weights.write_bytes(b"\xff" * 4096 + weights.read_bytes()[4096:])  # 4 KB overwritten at the start
    return {"no-weights": (out["no-weights"][0], "has no model.safetensors"),
            "no-tokenizer": (out["no-tokenizer"][0], "has no tokenizer"),
            "truncated": (out["truncated"][0], "is damaged"),
            "overwritten": (out["overwritten"][0], "is damaged")}


def test_a_good_folder_passes_and_each_damage_is_named(model_dir: Path, tmp_path: Path) -> None:
    check_model_folder(model_dir)
    for name, (folder, words) in _damaged(model_dir, tmp_path).items():
        with pytest.raises(ModelFolderError, match=words) as err:
            check_model_folder(folder)
        assert str(folder) in str(err.value), name
    with pytest.raises(ModelFolderError, match="no such folder"):
        check_model_folder(tmp_path / "nothing")


@pytest.mark.slow
def test_evaluate_on_a_damaged_folder_says_it_in_one_line(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "annotations.json").write_text('{"database": {}}')
    (tmp_path / "tokens.json").write_text('{"codebook": "' + "c" * 64 + '", "videos": {}}')
    env = {"VIDEOBERT_DATA_DIR": str(tmp_path / "data")}
    for name, (folder, words) in _damaged(model_dir, tmp_path).items():
        r = run_cli("evaluate", "--checkpoint", str(folder), "--annotations", "annotations.json", "--tokens",
                    "tokens.json", cwd=tmp_path, env=env)
        err = [line for line in r.stderr.splitlines() if line.startswith("error")]
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert len(err) == 1 and "ModelFolderError" in err[0] and str(folder) in err[0] and words in err[0], (name, err)
        assert "Traceback" not in r.stdout + r.stderr
