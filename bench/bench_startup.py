"""Start-up of a small command-line run: where the seconds of a no-op `videobert ingest` go.

A project of 6 small local videos whose stages are all done; every figure is the median wall time of a fresh
`python` process (as a user runs it), measured in the same run as the baseline, `videobert status` (settings,
database, one query: the least a command does).

1. The baseline and the no-op `videobert ingest --local videos` as shipped (the plan is read first, without
   Prefect; nothing to run: no flow run, no server).
2. The same no-op forced through the `ingest` Prefect flow: with the data folder's shared local Prefect server
   already running, and with a temporary server that Prefect starts (and stops) inside the process, which is
   what every command did before.
3. Parts: the interpreter alone, importing Prefect, importing the flow module, importing the prefect-free plan.
4. Which heavy libraries the no-op command imports (`python -X importtime`).

Run: .venv/bin/python bench/bench_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, project_dir, quiet_env  # noqa: E402

quiet_env()
HEAVY = ("torch", "tensorflow", "transformers", "sklearn", "faiss", "cv2", "pyarrow", "prefect")
FLOW_RUN = """
import sys
from videobert.core.settings import load_settings
from videobert_cli.prefect_config import configure_prefect
if sys.argv[1] == "shared":
    configure_prefect(load_settings())
from flows.ingest import IngestRequest, run_ingest
s = run_ingest(IngestRequest(local_dir="videos"), "params.yaml")
assert not s.results, s.results  # a no-op
"""


def _wall(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    """Median wall seconds of `cmd` (run `repeat` times; each must succeed)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return statistics.median(times)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "videobert_cli.cli", *args]


def _py(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def _imported(cmd: list[str], env: dict[str, str]) -> list[str]:
    r = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True, check=True)
    top = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in r.stderr.splitlines() if line.startswith("import time:")}
    return [m for m in HEAVY if m in top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")

    from videobert_cli.demo import add_real_samples
    from videobert_cli.samples import make_samples

    with project_dir("bench-startup-") as root:
        env = {**os.environ, "COLUMNS": "120"}
        env.pop("PREFECT_API_URL", None)
        env.pop("PREFECT_HOME", None)  # the data folder's, as for a user
        videos = root / "videos"
        make_samples(videos)
        add_real_samples(videos)
        for src in sorted(videos.glob("*.mp4")):
            if len(list(videos.glob("*.mp4"))) >= 6:
                break
            shutil.copy(src, videos / f"{src.stem}_copy.mp4")
        (root / "params.yaml").write_text("features:\n  extractor: baseline\n")
        n = len(list(videos.glob("*.mp4")))
        t0 = time.perf_counter()
        subprocess.run(_cli("ingest", "--local", "videos", "--quiet"), env=env, check=True, capture_output=True)
        first = time.perf_counter() - t0
        try:
            rows = _measure(env, root, args.repeat)
        finally:
            subprocess.run(_cli("prefect-server", "stop", "--force"), env=env, capture_output=True)
        heavy = _imported(_cli("ingest", "--local", "videos", "--quiet"), env)

    base = rows[0][1]
    print(f"\n{n} local videos, every stage done; first run (does the work, starts the local server): {first:.1f} s")
    print(f"median of {args.repeat} fresh processes each; ratio to the baseline measured in this run\n")
    print(f"| {'measurement':<84} | {'wall':>7} | {'x status':>8} |")
    print(f"| {'-' * 84} | {'-' * 7} | {'-' * 8} |")
    for label, s in rows:
        print(f"| {label:<84} | {s:6.2f}s | {s / base:7.2f}x |")
    print(f"\nheavy libraries the no-op `videobert ingest` imports: {', '.join(heavy) or 'none'} "
          f"(checked: {', '.join(HEAVY)})")


def _measure(env: dict[str, str], root: Path, repeat: int) -> list[tuple[str, float]]:
    rows = [("baseline: `videobert status`", _wall(_cli("status"), env, repeat)),
            ("no-op `videobert ingest --local videos` (as shipped: plan first, no flow run)",
             _wall(_cli("ingest", "--local", "videos", "--quiet"), env, repeat))]
    subprocess.run(_cli("prefect-server", "start"), env=env, check=True, capture_output=True)
    rows.append(("the no-op as a Prefect flow run, shared local server already running",
                 _wall(_py(FLOW_RUN, "shared"), env, repeat)))
    own = {**env, "PREFECT_HOME": str(root / "data" / "prefect-temporary"),  # Prefect's own server, own database
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    Path(own["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    _wall(_py(FLOW_RUN, "temporary"), own, 1)  # its first start migrates a new database: not counted
    rows.append(("the no-op as a Prefect flow run, Prefect's temporary server per process (before)",
                 _wall(_py(FLOW_RUN, "temporary"), own, repeat)))
    rows += [
        ("part: the interpreter alone (`python -c pass`)", _wall(_py("pass"), env, repeat)),
        ("part: `import prefect.main`", _wall(_py("import prefect.main"), env, repeat)),
        ("part: `import flows.ingest` (Prefect, tasks, stages)", _wall(_py("import flows.ingest"), env, repeat)),
        ("part: `import flows.ingest_plan` (what the no-op command imports to plan)",
         _wall(_py("import flows.ingest_plan"), env, repeat)),
    ]
    return rows


if __name__ == "__main__":
    main()
