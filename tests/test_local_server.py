"""The shared local Prefect server's rules that need no server: when it stops by itself, which runs keep it up."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from videobert.core.processes import owner_id
from videobert_cli import local_server as ls


def _dead_owner() -> str:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = owner_id(p.pid)
    p.wait()
    return owner


def test_it_stops_once_idle_and_no_live_run_is_registered(tmp_path: Path) -> None:
    home = tmp_path / "prefect"
    (home / ls.CLIENTS).mkdir(parents=True)
    watch = ls._IdleWatch(app=None)
    watch.last = time.monotonic() - 100  # the last request ended 100 s ago

    (home / ls.CLIENTS / "1").write_text(owner_id())  # this process: a live run keeps it up
    assert ls.stop_reason(home, watch, idle_stop_s=10) is None
    assert time.monotonic() - watch.last < 5  # and restarts the idle clock

    (home / ls.CLIENTS / "1").write_text(_dead_owner())  # a run that was killed does not
    watch.last = time.monotonic() - 100
    assert ls.stop_reason(home, watch, idle_stop_s=10) == "idle for 10 s"
    assert not (home / ls.CLIENTS / "1").exists()  # and its file is removed
    assert ls.stop_reason(home, watch, idle_stop_s=0) is None  # 0: never for idleness

    watch.open = 1  # a request or websocket open
    assert ls.stop_reason(home, watch, idle_stop_s=10) is None
    home.rename(tmp_path / "gone")
    assert ls.stop_reason(home, watch, idle_stop_s=10) == f"{home} was removed"


def test_a_record_of_a_process_that_is_not_the_server_is_not_trusted(tmp_path: Path) -> None:
    home = (tmp_path / "prefect").resolve()
    home.mkdir()
    rec = ls.ServerRecord(pid=1, port=9, home=str(home), started_at=0.0, idle_stop_s=10)  # pid 1: not our server
    ls._write_record(home, rec)
    assert ls.read_record(home) == rec
    assert not ls.is_server_process(rec.pid, home) and ls.running_server(home) is None
    assert ls.stop_server(home) is None and ls.read_record(home) is None  # nothing signalled; the stale record goes
