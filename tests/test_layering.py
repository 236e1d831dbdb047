"""The import graph runs one way: videobert_cli -> flows -> tasks -> videobert -> videobert_model.

Every import statement is read with `ast` (module level and inside functions, since lazy imports count too),
so a layer that reaches above itself fails here before it reaches a user.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["videobert_cli", "flows", "tasks", "videobert", "videobert_model"]  # each may import only those after it
OURS = set(LAYERS)


def _imports(path: Path) -> set[str]:
    """Top-level package names of our own that a file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


def test_layers_cover_the_packages() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == OURS, "a new top-level package needs its place in LAYERS"


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    above = set(LAYERS[: LAYERS.index(layer)])
    bad = {str(f.relative_to(REPO)): sorted(_imports(f) & above) for f in (REPO / layer).rglob("*.py")}
    assert {f: pkgs for f, pkgs in bad.items() if pkgs} == {}


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from flows.ingest import ingest\n    import videobert_cli.cli\n")
    assert _imports(f) == {"flows", "videobert_cli"}
