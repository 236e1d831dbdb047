"""The demo: the pipeline on embedded defaults (SQLite, local artifact folder, Prefect's local server).

No network is needed: it makes a few sample videos with ffmpeg (`videobert.samples`) and runs every flow
that exists on them, then prints where the database and the artifacts are.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from videobert.settings import load_settings

# The paper's parameters (params.yaml) except the clip extractor: S3D's weights need a download, so the demo
# uses the weight-free baseline extractor.
DEMO_PARAMS = """features:
  extractor: baseline
"""


def run_demo(console: Console) -> None:
    """Run the demo and print where its database and artifacts are."""
    from videobert.cli import configure_prefect

    settings = load_settings()
    configure_prefect(settings)
    from flows.ingest import IngestRequest, run_ingest
    from flows.progress import RichReporter, use_reporter
    from videobert.db import repository as repo
    from videobert.runtime import get_runtime
    from videobert.samples import make_samples

    rt = get_runtime(settings)
    folder = settings.resolved_data_dir / "demo" / "videos"
    console.print(f"[bold]1. sample videos[/] (synthetic, made with ffmpeg) in {folder}")
    make_samples(folder)

    params_file = settings.resolved_data_dir / "demo" / "params.yaml"
    params_file.write_text(DEMO_PARAMS)
    console.print(f"[bold]2. ingest flow[/] with {params_file}: download (copy in), transcript (subtitle files), "
                  "punctuation, clip features (the weight-free baseline extractor: no model download needed)")
    with use_reporter(RichReporter(console)):
        summary = run_ingest(IngestRequest(local_dir=str(folder)), str(params_file))
    table = Table("stage", "status", "count", title="ingest")
    for key, n in summary["results"].items():
        table.add_row(*key.split(":", 1), str(n))
    for stage, reasons in summary["skipped_before_submit"].items():
        for reason, n in reasons.items():
            table.add_row(stage, f"skipped ({reason})", str(n))
    console.print(table)

    views = repo.stage_views(rt.db, ["punctuate"])
    for (vid, _), view in sorted(views.items()):
        if view.status == "done":
            doc = json.loads(rt.store.get_bytes(view.artifact("sentences").key))
            first = doc["sentences"][0] if doc["sentences"] else None
            if first:
                console.print(f"  {vid}: {len(doc['sentences'])} sentences ({doc['method']}), "
                              f"first [{first['start']:.2f}-{first['end']:.2f} s] {first['text']!r}")

    console.print(f"\ndatabase:  {rt.db.describe()}")
    console.print(f"artifacts: {rt.store.describe()}")
    console.print("see also: videobert status")
