"""A `videobert` command (a real subprocess) interrupted, killed, or failing as expected (issue 8, defects 1, 2, 8).

* Ctrl-C (SIGINT) and SIGTERM, at start-up or mid-run: exit 130 / 143 at once, with a line saying what had
  finished, and none of Prefect's crash messages.
* kill -9 of runs: no Prefect server left behind per run; the data folder's one local server is reused, and
  `videobert prefect-server stop` stops it.
* an expected failure inside a flow prints our one line, Prefect's traceback only with --debug.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.helpers.httpserver import LocalHTTPServer, Route
from tests.helpers.media import make_video
from tests.helpers.prefect_servers import prefect_servers, stop_prefect_servers

SLOW_S = 25  # a slow download takes this long: an interrupted run that waited for it would show
PROMPT_S = 10  # an interrupted run ends within this
RESULT_REACHES_FLOW_S = 2.0  # from a stage's done row to its result counted by the flow, on a loaded machine


def _env(data: Path, api: str | None = None) -> dict[str, str]:
    """The environment of a user's shell: no Prefect API unless given, Prefect's files in the data folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env.update({"VIDEOBERT_DATA_DIR": str(data), "COLUMNS": "200"})
    if api:
        env["PREFECT_API_URL"] = api
    return env


def _start(cwd: Path, env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.Popen[str]:
    """The command in its own session; its output to pipes, or to `log` (a pipe would stay open as long as any
    process it started lives)."""
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - the child holds it
    try:
        return subprocess.Popen([sys.executable, "-m", "videobert_cli.cli", *args], cwd=cwd, env=env, text=True,
                                stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE,
                                start_new_session=True)
    finally:
        if log:
            out.close()


def _rows(data: Path) -> list[tuple[str, str, str, str | None]]:
    db = data / "videobert.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT video_id, stage, status, claimed_by FROM stage_runs").fetchall()
    except sqlite3.OperationalError:
        return []


def _wait_for(what: str, condition, procs: list[subprocess.Popen[str]], timeout_s: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        for p in procs:
            assert p.poll() is None, f"exited {p.returncode} before {what}: {p.communicate()}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


def _a_video_done(data: Path) -> bool:
    """Whether one video has its four ingest stages done."""
    done = Counter(vid for vid, _stage, status, _owner in _rows(data) if status == "done")
    return any(n == 4 for n in done.values())


def _holds_a_running_stage(data: Path, pid: int) -> bool:
    return any(status == "running" and f":{pid}:" in (owner or "") for _, _, status, owner in _rows(data))


@pytest.fixture
def videos_online(tmp_path: Path) -> Iterator[tuple[Path, LocalHTTPServer]]:
    """An id file of three URLs on a local HTTP server: v0 served at once, v1 and v2 slowly (SLOW_S seconds)."""
    server = LocalHTTPServer().start()
    for i in range(3):
        body = make_video(tmp_path / "src" / f"v{i}.mp4", seconds=2, size="320x240").read_bytes()
        server.routes[f"/v{i}.mp4"] = Route(body, bytes_per_second=None if i == 0 else max(len(body) // SLOW_S, 1))
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(server.url(f"/v{i}.mp4") + "\n" for i in range(3)))
    (tmp_path / "params.yaml").write_text("features:\n  extractor: baseline\n")
    try:
        yield ids, server
    finally:
        server.stop()


@pytest.fixture
def no_servers_left(tmp_path: Path) -> Iterator[None]:
    """Stop whatever Prefect server a test's runs started under its folder, even when the test fails."""
    yield
    stop_prefect_servers([tmp_path])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_mid_run_exits_at_once_with_what_finished(
    tmp_path: Path, prefect_api: str, videos_online: tuple[Path, LocalHTTPServer], sig: signal.Signals, code: int
) -> None:
    ids, _ = videos_online
    data = tmp_path / "data"
    proc = _start(tmp_path, _env(data, prefect_api), "ingest", "--ids", str(ids), "--concurrency", "3")
    # mid-run: one video through all its stages, the slow downloads still going (a downloaded video's transcript
    # runs after its download, side by side with its features: wait for all four)
    _wait_for("a finished video", lambda: _a_video_done(data), [proc])
    # a stage's row is done a moment before its task's result reaches the flow, which counts it: give the last one
    # that moment (seen in CI on a loaded machine: 3 of v0's 4 counted); the slow downloads take SLOW_S
    time.sleep(RESULT_REACHES_FLOW_S)
    assert _holds_a_running_stage(data, proc.pid)
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent

    assert proc.returncode == code, (out, err)
    assert took < PROMPT_S, f"took {took:.1f} s: it waited for the downloads in flight"
    assert f"interrupted ({sig.name})" in err
    finished = err.split(f"interrupted ({sig.name}): ", 1)[1].split(" of 12 ingest stage runs had finished")[0]
    assert 4 <= int(finished) < 12  # v0's four stages at least, not the slow downloads
    assert "Crash detected" not in out + err and "Traceback" not in out + err
    assert any(st == "running" for _, _, st, _o in _rows(data))  # cut mid-stage: the next run takes these over
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the flow run is not left "running" in the Prefect UI
        states = [(r.state_type.value, r.state.message) for r in client.read_flow_runs() if r.state]
    assert ("CRASHED", f"interrupted by {sig.name} (videobert command line)") in states


def test_ctrl_c_at_start_up_exits_130(tmp_path: Path, no_servers_left: None,
                                      videos_online: tuple[Path, LocalHTTPServer]) -> None:
    ids, _ = videos_online
    proc = _start(tmp_path, _env(tmp_path / "data"), "ingest", "--ids", str(ids), "--quiet")
    _wait_for("a Prefect server starting", lambda: prefect_servers([tmp_path]), [proc])  # before any stage
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted (SIGINT)" in err
    assert "Crash detected" not in out + err and "Traceback" not in out + err


def test_killed_runs_leave_one_shared_server_which_stop_stops(
    tmp_path: Path, no_servers_left: None, videos_online: tuple[Path, LocalHTTPServer]
) -> None:
    ids, server = videos_online
    data = tmp_path / "data"
    # two runs started together on a new data folder (one Prefect database for both), each downloading one slow
    # video, killed mid-run
    urls = ids.read_text().splitlines()
    subprocess.run([sys.executable, "-m", "videobert_cli.cli", "db", "upgrade"], cwd=tmp_path, env=_env(data),
                   check=True, capture_output=True, timeout=60)  # (two first runs would both migrate the database)
    runs = []
    for i in (1, 2):
        (tmp_path / f"ids{i}.txt").write_text(urls[i] + "\n")
        runs.append(_start(tmp_path, _env(data), "ingest", "--ids", str(tmp_path / f"ids{i}.txt"), "--quiet",
                           log=tmp_path / f"run{i}.log"))
    _wait_for("both runs mid-stage", lambda: all(_holds_a_running_stage(data, p.pid) for p in runs), runs)
    for p in runs:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    for i in (1, 2):  # neither run met the other's server, or a Prefect database the other was creating
        assert "Traceback" not in (tmp_path / f"run{i}.log").read_text()

    servers = prefect_servers([tmp_path])
    assert len(servers) == 1, _describe(servers, data, tmp_path)
    shared = servers[0].pid

    for route in server.routes.values():
        route.bytes_per_second = None
    again = _start(tmp_path, _env(data), "ingest", "--ids", str(ids), "--quiet")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, (out, err)
    assert "started the local Prefect server" not in err  # reused
    assert [s.pid for s in prefect_servers([tmp_path])] == [shared]
    assert {st for _, _, st, _o in _rows(data)} == {"done"}

    status = subprocess.run([sys.executable, "-m", "videobert_cli.cli", "prefect-server", "status"], cwd=tmp_path,
                            env=_env(data), capture_output=True, text=True, timeout=60)
    assert f"pid {shared}" in status.stdout, status.stdout + status.stderr
    stop = subprocess.run([sys.executable, "-m", "videobert_cli.cli", "prefect-server", "stop"], cwd=tmp_path,
                          env=_env(data), capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and f"stopped the local Prefect server (pid {shared})" in stop.stdout, stop
    assert prefect_servers([tmp_path]) == []
    assert not (data / "prefect" / "server.json").exists()


def _describe(servers: list, data: Path, tmp_path: Path) -> str:
    """What tells a second server's origin apart (CI once saw two, pids in a row): each one's pid, parent, start
    time and port, the server record, the server log and the runs' logs."""
    rows = []
    for s in servers:
        try:
            rows.append(f"pid {s.pid} ppid {s.ppid()} started {s.create_time():.3f}: {' '.join(s.cmdline())}")
        except Exception as exc:  # noqa: BLE001 - gone meanwhile
            rows.append(f"pid {s.pid}: {exc}")
    files = [data / "prefect" / "server.json", data / "prefect" / "server.log", *sorted(tmp_path.glob("run*.log"))]
    rows += [f"--- {f}:\n{f.read_text()[-2000:] if f.exists() else '(none)'}" for f in files]
    return "\n".join(rows)


@pytest.mark.parametrize("case", ["corrupt file", "unreachable database"])
def test_an_expected_failure_in_a_flow_is_one_line_and_debug_shows_the_traceback(tmp_path: Path, prefect_api: str,
                                                                                  case: str) -> None:
    (tmp_path / "params.yaml").write_text("features:\n  extractor: baseline\n")
    env = _env(tmp_path / "data", prefect_api)
    if case == "corrupt file":
        (tmp_path / "manifest.json").write_text('{"videos": ')
        args, expected = ["dataset", "codebook", "--manifest", "manifest.json"], "error (DatasetError): manifest"
    else:
        env["VIDEOBERT_DATABASE_URL"] = f"postgresql://vb:pw123@127.0.0.1:{free_port()}/x"
        args, expected = ["dataset", "manifest"], "error (DatabaseUnavailableError): database postgresql"

    r = subprocess.run([sys.executable, "-m", "videobert_cli.cli", *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(expected), r.stderr  # ours alone: no Prefect log, no traceback
    assert "--debug" in lines[0]
    if case != "corrupt file":
        return  # --debug once is enough

    r = subprocess.run([sys.executable, "-m", "videobert_cli.cli", "--debug", *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r
    assert "Traceback" in r.stderr and "Encountered exception during execution" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith(expected)


def test_prefect_exit_drain_notices_stay_off_the_console_but_ours_do_not() -> None:
    """Prefect's EventsWorker warns "Still processing items" while it drains at exit, under its class name as
    logger: the command line's filter knows it by Prefect's module (CI once printed it after our one line)."""
    import logging

    import prefect._internal.concurrency.services as services

    from videobert_cli import noise

    def record(name: str, msg: str, pathname: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord(name, level, pathname, 1, msg, None, None)

    quiet = noise.QuietPrefect()
    drain = "Still processing items: 1 items remaining..."
    assert not quiet.filter(record("EventsWorker", drain, services.__file__))
    assert quiet.filter(record("EventsWorker", "a real warning", services.__file__))
    assert not quiet.filter(record("EventsWorker", "failed", services.__file__, logging.ERROR))
    assert quiet.filter(record("videobert.flows", drain, __file__))  # only Prefect's notices are dropped
    noise.DEBUG = True
    try:
        assert quiet.filter(record("EventsWorker", drain, services.__file__))
    finally:
        noise.DEBUG = False


def test_an_interrupted_training_speaks_of_checkpoints_not_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The line after Ctrl-C says what running the same command again does: for `videobert train`, resume from
    the newest checkpoint (it spoke of stages and videos before)."""
    import io

    from rich.console import Console

    from videobert_cli import interrupt

    said = io.StringIO()
    exits: list[int] = []
    monkeypatch.setattr(interrupt, "_console", Console(file=said, width=200))
    monkeypatch.setattr(interrupt.os, "_exit", exits.append)
    monkeypatch.setattr(interrupt.signal, "signal", lambda *a: None)  # the test process keeps its own handlers
    monkeypatch.setattr(interrupt, "_hint", interrupt.INGEST_HINT)
    interrupt._on_signal(signal.SIGINT, None)
    assert "stages" in said.getvalue() and exits == [130]
    interrupt.set_resume_hint(interrupt.TRAINING_HINT)
    said.seek(0)
    said.truncate(0)
    interrupt._on_signal(signal.SIGINT, None)
    assert "resumes from the newest checkpoint" in said.getvalue() and "stage" not in said.getvalue()
    assert exits == [130, 130]
