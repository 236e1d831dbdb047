"""The demo: the pipeline on embedded defaults (SQLite, local artifact folder), no network needed.

It grows with the pipeline; today it sets up the database and the store, records a stage for a generated
sample file, and prints where everything lives.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from videobert.db import repository as repo
from videobert.db.engine import open_database
from videobert.fingerprint import stage_fingerprint
from videobert.settings import load_settings
from videobert.stages import StageOutput, StageSpec, execute_stage
from videobert.storage import keys, open_store

DEMO_STAGE = StageSpec("demo-hello", "1")


def run_demo(console: Console) -> None:
    """Run the demo and print where its database and artifacts are."""
    settings = load_settings()
    db = open_database(settings)
    store = open_store(settings)
    console.print(f"database:  {db.describe()}")
    console.print(f"artifacts: {store.describe()}")

    repo.register_videos(db, [repo.NewVideo(id="demo-hello", source="local", source_id="generated")])
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "hello.txt"
        sample.write_text("hello from the VideoBERT pipeline demo\n")
        fp = stage_fingerprint(DEMO_STAGE.name, DEMO_STAGE.version, {}, {})

        def body(_claim: repo.Claim) -> StageOutput:
            info = store.put_file(keys.video_artifact("demo-hello", DEMO_STAGE.name, "hello.txt"), sample)
            return StageOutput({"hello": info})

        result = execute_stage(db, store, "demo-hello", DEMO_STAGE, fp, body, settings.claim_lease_s)
    console.print(f"stage {result.stage} of {result.video_id}: {result.status} {result.reason}".rstrip())
    for stage, status, n in repo.status_counts(db):
        console.print(f"  {stage:<16} {status:<8} {n}")
