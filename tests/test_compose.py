"""docker-compose.yml, the Dockerfile and the README's walk-through agree (no Docker engine here: checked by reading)."""

from __future__ import annotations

import re
import shlex
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _services() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _option(command: str, name: str) -> str:
    words = shlex.split(command.replace('"', " "))
    return words[words.index(name) + 1]


def test_the_workers_drain_the_pool_the_deployments_go_to_and_start_runs_in_the_users_folder() -> None:
    services = _services()
    deploy, worker = services["deployments"]["command"], services["worker"]["command"]
    assert "videobert deploy" in deploy and worker.startswith("prefect worker start")
    assert _option(deploy, "--pool") == _option(worker, "--pool")
    assert _option(worker, "--type") == "process"
    work_dir = _option(deploy, "--working-dir")
    for name in ("deployments", "worker"):
        service = services[name]
        assert service["working_dir"] == work_dir
        assert any(volume.endswith(f":{work_dir}") for volume in service["volumes"])  # the users' folder
        env = service["environment"]
        assert env["PREFECT_API_URL"] == env["VIDEOBERT_PREFECT_API_URL"]  # Prefect's worker and our code: one API
        assert env["VIDEOBERT_MINIO_ENDPOINT"].split(":")[0] in services
        assert "@postgres:" in env["VIDEOBERT_DATABASE_URL"]
    # the project's params.yaml from the image, when the users' folder has none
    assert "cp /app/params.yaml params.yaml" in deploy


def test_the_image_holds_the_installed_project_and_its_params() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {src for line in dockerfile.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]}
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and any(fnmatch(p.name, i) for i in include)}
    assert packages | {"params.yaml", "pyproject.toml", "constraints.txt"} <= copied
    kept = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert copied <= kept  # nothing the Dockerfile copies is left out of the build context


def test_the_readme_walk_through_names_every_service() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Running on PostgreSQL \+ MinIO \+ a Prefect server\n(.*?)^## ", readme, re.S | re.M)
    assert section, "the README's docker-compose section"
    for name in _services():
        assert f"`{name}`" in section.group(1), name
