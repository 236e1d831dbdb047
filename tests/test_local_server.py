"""The shared local Prefect server's rules that need no server: when it stops by itself, which runs keep it up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from videobert.core.processes import owner_id
from videobert_cli import local_server as ls

STARTS = 50  # processes started to catch the empty command-line window (seen on about 1 in 10 starts here)


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


def test_a_server_just_spawned_is_known_before_its_command_line_can_be_read(tmp_path: Path) -> None:
    """For some milliseconds after Popen returns, /proc/<pid>/cmdline reads empty: a second command that looked
    then thought no server ran and started another (CI saw two). A just-started process counts as the server;
    a zombie, whose command line is empty too, does not."""
    home = (tmp_path / "prefect").resolve()
    home.mkdir()
    polls = 0
    for _ in range(STARTS):  # the empty window is not hit on every try: look at once after each start
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", ls.MODULE, str(home)],
                             stdin=subprocess.DEVNULL)
        try:
            empty = Path(f"/proc/{p.pid}/cmdline").read_bytes() == b""
            assert ls.is_server_process(p.pid, home)
            polls += empty
        finally:
            p.kill()
            p.wait()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"], stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # its command line is readable by now: another program is not the server
        assert not ls.is_server_process(other.pid, home)
    finally:
        other.kill()
        other.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not ls.is_server_process(zombie.pid, home)  # exited, not yet reaped
    zombie.wait()
    print(f"empty command line seen on {polls} of {STARTS} starts")


def test_two_commands_starting_together_share_one_server(tmp_path: Path) -> None:
    """`configure_prefect` in two processes at once on a new data folder: one server, the same API for both."""
    script = ("import os; from videobert.core.settings import Settings; from videobert_cli.prefect_config import "
              "configure_prefect; configure_prefect(Settings()); print(os.environ['PREFECT_API_URL'])")
    from tests.helpers.prefect_servers import prefect_servers, stop_prefect_servers

    try:
        for i in range(3):
            data = tmp_path / f"data{i}"
            env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
            env["VIDEOBERT_DATA_DIR"] = str(data)
            procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True,
                                      cwd=tmp_path) for _ in range(2)]
            urls = {p.communicate(timeout=180)[0].strip() for p in procs}
            assert len(urls) == 1 and all(p.returncode == 0 for p in procs), urls
            assert len(prefect_servers([data])) == 1
    finally:
        stop_prefect_servers([tmp_path])


def test_asking_for_the_ui_does_not_replace_a_plain_server_that_runs_use(tmp_path: Path) -> None:
    home = (tmp_path / "prefect").resolve()
    (home / ls.CLIENTS).mkdir(parents=True)
    # a process that the record's checks take for this home's server (its argv names the module and the home)
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", ls.MODULE, str(home)])
    try:
        rec = ls.ServerRecord(fake.pid, 9, str(home), time.time(), ls.IDLE_STOP_S, ls._runtime(), ui=False)
        (home / ls.RECORD).write_text(json.dumps(asdict(rec)))
        assert ls.ensure_server(home) == (rec, False)  # no UI asked: the running one is reused
        (home / ls.CLIENTS / str(os.getpid())).write_text(owner_id())  # a live run uses it
        with pytest.raises(ls.ServerStartError, match="has no UI or another port, and 1 running commands use it"):
            ls.ensure_server(home, ui=True)
        with pytest.raises(ls.ServerStartError, match="has no UI or another port"):
            ls.ensure_server(home, port=rec.port + 1)
        assert fake.poll() is None  # left running
    finally:
        fake.kill()
        fake.wait()


def test_a_port_in_use_is_refused_before_a_server_is_spawned(tmp_path: Path) -> None:
    home = (tmp_path / "prefect").resolve()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not ls.port_is_free(port)
        with pytest.raises(ls.ServerStartError, match=f"port {port} of 127.0.0.1 is in use"):
            ls.ensure_server(home, ui=True, port=port)
    assert ls.read_record(home) is None  # nothing started, nothing recorded
