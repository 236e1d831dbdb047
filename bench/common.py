"""Helpers shared by the benchmarks: machine description, timing, isolated project folders."""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


class Timer:
    """`with Timer() as t: ...; t.s` gives the elapsed wall time in seconds."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self._t0


@contextlib.contextmanager
def project_dir(prefix: str) -> Iterator[Path]:
    """A temporary project folder used as the working directory and data folder."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chdir(tmp)
        os.environ["VIDEOBERT_DATA_DIR"] = str(Path(tmp) / "data")
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def quiet_env() -> None:
    """Keep tools offline and quiet, as the test suite does."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = Path(tempfile.gettempdir()) / "videobert-bench-prefect"
    home.mkdir(exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home))
