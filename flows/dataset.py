"""Dataset flows: the manifest of finished videos, the visual codebook, and every video's tokens.

`dvc repro` runs the same steps through the CLI (`videobert dataset manifest|codebook|tokens`), one DVC stage
each; the `dataset` flow runs them all for the Prefect UI.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.futures import next_finished
from flows.progress import reporter
from tasks.dataset import codebook_task, tokens_task
from videobert.dataset import build_manifest, read_manifest, tokens_index, tokens_todo, write_json
from videobert.params import load_params
from videobert.runtime import get_runtime


@flow(name="manifest")
def manifest_flow(out: str = "dataset/manifest.json", params_file: str = "params.yaml") -> dict[str, Any]:
    """Write the manifest of videos whose features are done with the current parameters."""
    logger = get_run_logger()
    manifest = build_manifest(get_runtime(), load_params(params_file))
    write_json(Path(out), manifest)
    logger.info("manifest: %d videos, %d clips (%d stale, left out)", len(manifest["videos"]), manifest["clips"],
                len(manifest["stale"]))
    return {"videos": len(manifest["videos"]), "clips": manifest["clips"], "stale": manifest["stale"]}


@flow(name="codebook")
def codebook_flow(manifest: str = "dataset/manifest.json", out: str = "dataset/codebook",
                  params_file: str = "params.yaml") -> dict[str, Any]:
    """Fit the codebook of a manifest into `out` (and the store, and the database)."""
    result = codebook_task(read_manifest(Path(manifest)), load_params(params_file), out)
    get_run_logger().info("codebook %s: %s", result["content_hash"][:12], result["metrics"])
    return result


@flow(name="tokens", task_runner=ThreadPoolTaskRunner(max_workers=16))
def tokens_flow(manifest: str = "dataset/manifest.json", codebook: str = "dataset/codebook",
                out: str = "dataset/tokens.json", concurrency: int = 4, force: bool = False) -> dict[str, Any]:
    """Label every manifest video with the codebook (one task run per video), then write the tokens index."""
    from videobert.dataset import load_codebook

    logger = get_run_logger()
    rt = get_runtime()
    m = read_manifest(Path(manifest))
    book = load_codebook(rt, codebook)
    pending = tokens_todo(rt, m, book.content_hash(), force)
    results: Counter[str] = Counter()
    if len(pending) < len(m["videos"]):
        results["skipped (up to date)"] = len(m["videos"]) - len(pending)
    progress = reporter()
    progress.start(total=len(pending), description="tokens")
    in_flight: dict[Any, str] = {}
    while pending or in_flight:
        while pending and len(in_flight) < concurrency:
            vid = pending.pop(0)
            in_flight[tokens_task.submit(vid, codebook, force)] = vid
        vid, status, _error_type = next_finished(in_flight)
        results[status] += 1
        progress.advance(f"{vid}: {status}")
    progress.stop()
    index = tokens_index(rt, m, book.content_hash())
    write_json(Path(out), index)
    logger.info("tokens: %s; %d videos indexed, %d missing", dict(results), len(index["videos"]), len(index["missing"]))
    return {"results": dict(results), "indexed": len(index["videos"]), "missing": index["missing"]}


@flow(name="dataset")
def dataset_flow(folder: str = "dataset", params_file: str = "params.yaml", concurrency: int = 4) -> dict[str, Any]:
    """Manifest, codebook and tokens, one after the other (what `dvc repro` runs as three stages)."""
    base = Path(folder)
    manifest_flow(str(base / "manifest.json"), params_file)
    cb = codebook_flow(str(base / "manifest.json"), str(base / "codebook"), params_file)
    tok = tokens_flow(str(base / "manifest.json"), str(base / "codebook"), str(base / "tokens.json"), concurrency)
    return {"codebook": cb["content_hash"], "metrics": cb["metrics"], "tokens": tok}
