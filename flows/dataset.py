"""Dataset flows: the manifest of finished videos, the visual codebook, and every video's tokens.

`dvc repro` runs the same steps through the CLI (`videobert dataset manifest|codebook|tokens`), one DVC stage
each; the `dataset` flow runs them all for the Prefect UI.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.futures import run_per_video
from flows.summaries import CodebookSummary, DatasetSummary, ManifestSummary, TokensSummary
from tasks.dataset import codebook_task, tokens_task
from videobert.core.params import load_params
from videobert.core.runtime import get_runtime
from videobert.core.stages import StageOptions
from videobert.dataset.codebook import load_codebook
from videobert.dataset.files import write_json
from videobert.dataset.manifest import build_manifest, read_manifest
from videobert.dataset.tokens import TOKENS, tokens_index, tokens_todo

TOKENS_TASK_THREADS = 16  # threads of the tokens flow's task runner; `concurrency` videos use them at once


@flow(name="manifest")
def manifest_flow(out: str = "dataset/manifest.json", params_file: str = "params.yaml") -> ManifestSummary:
    """Write the manifest of videos whose features are done with the current parameters."""
    manifest = build_manifest(get_runtime(), load_params(params_file))
    write_json(Path(out), manifest)
    summary = ManifestSummary(path=out, videos=len(manifest["videos"]), clips=manifest["clips"],
                              stale=manifest["stale"])
    get_run_logger().info("manifest: %d videos, %d clips (%d stale, left out)", summary.videos, summary.clips,
                          len(summary.stale))
    return summary


@flow(name="codebook")
def codebook_flow(manifest: str = "dataset/manifest.json", out: str = "dataset/codebook",
                  params_file: str = "params.yaml") -> CodebookSummary:
    """Fit the codebook of a manifest into `out` (and the store, and the database)."""
    result = codebook_task(read_manifest(Path(manifest)), load_params(params_file), out)
    get_run_logger().info("codebook %s: %s", result["content_hash"][:12], result["metrics"])
    return CodebookSummary(path=out, **result)


@flow(name="tokens", task_runner=ThreadPoolTaskRunner(max_workers=TOKENS_TASK_THREADS))
def tokens_flow(manifest: str = "dataset/manifest.json", codebook: str = "dataset/codebook",
                out: str = "dataset/tokens.json", concurrency: int = 4, force: bool = False) -> TokensSummary:
    """Label every manifest video with the codebook (one task run per video), then write the tokens index."""
    rt = get_runtime()
    m = read_manifest(Path(manifest))
    book = load_codebook(rt, codebook)
    pending, skipped = tokens_todo(rt, m, book.content_hash(), StageOptions(force=force))
    summary = TokensSummary(path=out, codebook=book.content_hash(), submitted={TOKENS.name: len(pending)},
                            skipped_before_submit={TOKENS.name: skipped} if skipped else {})
    outcomes = run_per_video({vid: [TOKENS.name] for vid in pending},
                             lambda vid, _stage: tokens_task.submit(vid, codebook, force), {}, concurrency, "tokens")
    summary.add_outcomes(outcomes)
    index = tokens_index(rt, m, book.content_hash())
    write_json(Path(out), index)
    summary.indexed, summary.missing = len(index["videos"]), index["missing"]
    get_run_logger().info("tokens: %s; %d videos indexed, %d missing", summary.results, summary.indexed,
                          len(summary.missing))
    return summary


@flow(name="dataset")
def dataset_flow(folder: str = "dataset", params_file: str = "params.yaml", concurrency: int = 4) -> DatasetSummary:
    """Manifest, codebook and tokens, one after the other (what `dvc repro` runs as three stages)."""
    base = Path(folder)
    manifest = manifest_flow(str(base / "manifest.json"), params_file)
    codebook = codebook_flow(str(base / "manifest.json"), str(base / "codebook"), params_file)
    tokens = tokens_flow(str(base / "manifest.json"), str(base / "codebook"), str(base / "tokens.json"), concurrency)
    return DatasetSummary(manifest=manifest, codebook=codebook, tokens=tokens)
