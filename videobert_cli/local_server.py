"""One local Prefect server per data folder, shared by the command-line runs that use it.

Without `VIDEOBERT_PREFECT_API_URL` (or `PREFECT_API_URL`), Prefect would start a temporary server in every
process that runs a flow: several seconds of start-up per command, and a ~200 MB `uvicorn` process left
running (re-parented to PID 1) whenever the command is killed. Instead, the first run starts one server,
detached in its own session (Ctrl-C in the terminal and a kill of the run do not reach it), with its
pid and port recorded in `<data>/prefect/server.json`; later runs find it there and reuse it. It is the same
server Prefect would start (its API on SQLite in `<data>/prefect`, no UI), on 127.0.0.1 only.

It stops when told (`videobert prefect-server stop`), or by itself once no run has used it for
`IDLE_STOP_S` seconds (runs register their pid in `<data>/prefect/clients/`: a long stage that makes no
request keeps it up; a killed run's pid is gone, and no longer does).

This module imports no Prefect at the top (the command line reads it before deciding to use Prefect at all);
the server process imports Prefect itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from videobert.core.errors import VideobertError
from videobert.core.processes import owner_id, owner_is_dead, pid_is_running

RECORD = "server.json"  # pid and port of the running server, in the Prefect home folder
LOG = "server.log"  # the server's own output
CLIENTS = "clients"  # one file per run using the server: named by its pid, holding its owner id
IDLE_STOP_S = 1800  # a server no run has used for this long stops itself
START_TIMEOUT_S = 120  # first start migrates Prefect's SQLite database: slow on small machines
STOP_TIMEOUT_S = 15
WATCH_EVERY_S = 5.0
MODULE = "videobert_cli.local_server"  # how the server process is recognised on the process table


@dataclass
class ServerRecord:
    """A local server as recorded in its Prefect home."""

    pid: int
    port: int
    home: str
    started_at: float
    idle_stop_s: int
    runtime: str = ""  # the Python and Prefect it runs: a server left from before an upgrade is replaced
    ui: bool = False  # it serves Prefect's UI at `/` (`videobert prefect-server start --ui`)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _runtime() -> str:
    from importlib.metadata import version

    return f"{sys.executable} prefect {version('prefect')}"


class ServerStartError(VideobertError):
    """The local server did not answer in time (its log says why)."""


def read_record(home: Path) -> ServerRecord | None:
    try:
        return ServerRecord(**json.loads((home / RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def is_server_process(pid: int, home: Path) -> bool:
    """True when `pid` runs this module's server for `home` (a pid reused by another program is not)."""
    if not pid_is_running(pid):
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: the health check decides
    if not raw:
        # For some milliseconds after Popen returns, a new process's command line reads empty (measured: up to
        # 13 ms here); a second command that looked then started a second server (seen in CI). Empty is also
        # what a zombie shows: that one is gone.
        return not _is_zombie(pid)
    argv = raw.split(b"\0")
    return MODULE.encode() in argv and str(home).encode() in argv


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def healthy(port: int, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def running_server(home: Path) -> ServerRecord | None:
    """The recorded server when it runs and answers, else None."""
    home = home.resolve()
    rec = read_record(home)
    if rec and is_server_process(rec.pid, home) and healthy(rec.port):
        return rec
    return None


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One process at a time checks, starts or stops the server of `home`."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True when nothing listens on `port` of 127.0.0.1."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ensure_server(home: Path, idle_stop_s: int = IDLE_STOP_S, ui: bool = False,
                  port: int | None = None) -> tuple[ServerRecord, bool]:
    """The server of `home`, started when none runs; returns it and whether this call started it. It may still
    be starting: `wait_ready` before using it. `ui` asks for one that serves Prefect's UI (and `port` for its
    port): a running server without them is replaced, unless runs use it (ServerStartError)."""
    home = home.resolve()
    with _locked(home):
        rec = read_record(home)
        if rec and is_server_process(rec.pid, home):
            fits = (rec.ui or not ui) and port in (None, rec.port)
            if rec.runtime == _runtime() and fits:
                return rec, False
            users = live_clients(home)
            if not fits and users:
                raise ServerStartError(f"the local Prefect server (pid {rec.pid}, {rec.api_url}) has no UI or another "
                                       f"port, and {len(users)} running commands use it: stop them, then start it again")
            _terminate(rec.pid)  # started by another Python or Prefect version, or without the UI asked for
        if port is not None and not port_is_free(port):
            raise ServerStartError(f"port {port} of 127.0.0.1 is in use: choose another with --port")
        return _spawn(home, idle_stop_s, ui, port or _free_port()), True


_SPAWNED: list[subprocess.Popen[bytes]] = []


def _spawn(home: Path, idle_stop_s: int, ui: bool, port: int) -> ServerRecord:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONUNBUFFERED": "1"})
    argv = [sys.executable, "-m", MODULE, "--home", str(home), "--port", str(port), "--idle-stop", str(idle_stop_s)]
    with open(home / LOG, "ab") as log:
        proc = subprocess.Popen(
            argv + (["--ui"] if ui else []),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home,
            start_new_session=True,  # its own session: signals to the run's process group do not reach it
        )
    _SPAWNED.append(proc)  # held, so that Python does not warn about a child still running at exit
    rec = ServerRecord(proc.pid, port, str(home), time.time(), idle_stop_s, _runtime(), ui)
    _write_record(home, rec)
    return rec


def wait_ready(rec: ServerRecord, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until the server answers; ServerStartError when it stopped or did not answer in time."""
    home = Path(rec.home)
    deadline = time.monotonic() + timeout_s
    while not healthy(rec.port, timeout=1.0):
        _reap(rec.pid)
        if not is_server_process(rec.pid, home):
            raise ServerStartError(f"the local Prefect server stopped while starting: see {home / LOG}")
        if time.monotonic() > deadline:
            raise ServerStartError(f"the local Prefect server (pid {rec.pid}) did not answer within {timeout_s:.0f} s "
                                   f"(see {home / LOG}); `videobert prefect-server stop` stops it")
        time.sleep(0.1)


def _write_record(home: Path, rec: ServerRecord) -> None:
    tmp = home / f".{RECORD}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(rec)))
    tmp.replace(home / RECORD)


def _terminate(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_is_running(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if pid_is_running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while pid_is_running(pid):
            _reap(pid)
            time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect `pid` if it is a child of this process (a server this process started), so it does not linger."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_server(home: Path) -> ServerRecord | None:
    """Stop the recorded server of `home`; returns it, or None when none was running."""
    home = home.resolve()
    with _locked(home):
        rec = read_record(home)
        if rec is None or not is_server_process(rec.pid, home):
            (home / RECORD).unlink(missing_ok=True)
            return None
        _terminate(rec.pid)
        (home / RECORD).unlink(missing_ok=True)
        return rec


def live_clients(home: Path) -> list[str]:
    """Owner ids of the runs that use the server now (the files of runs that died are removed)."""
    alive = []
    for f in (home.resolve() / CLIENTS).glob("*"):
        try:
            owner = f.read_text().strip()
        except OSError:
            continue
        if owner_is_dead(owner):
            f.unlink(missing_ok=True)
        else:
            alive.append(owner)
    return alive


def register_client(home: Path) -> None:
    """Record this process as a user of the server until it exits (a killed process is noticed by its pid)."""
    import atexit

    folder = home / CLIENTS
    folder.mkdir(parents=True, exist_ok=True)
    mine = folder / str(os.getpid())
    mine.write_text(owner_id())
    atexit.register(mine.unlink, missing_ok=True)


# --- the server process ------------------------------------------------------------------------------------


class _IdleWatch:
    """ASGI wrapper that knows when the last request ended and how many are open (websockets included)."""

    def __init__(self, app: object) -> None:
        self.app = app
        self.open = 0
        self.last = time.monotonic()

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # type: ignore[operator]
        self.open += 1
        try:
            await self.app(scope, receive, send)  # type: ignore[operator]
        finally:
            self.open -= 1
            self.last = time.monotonic()


def stop_reason(home: Path, watch: _IdleWatch, idle_stop_s: int) -> str | None:
    """Why the server should stop now, or None. A run registered in `clients/` or an open request keeps it up
    (and restarts the idle clock); so does `idle_stop_s` 0. A removed home stops it (a test's temporary folder)."""
    if not home.is_dir():
        return f"{home} was removed"
    if live_clients(home) or watch.open:
        watch.last = time.monotonic()
        return None
    if idle_stop_s and time.monotonic() - watch.last > idle_stop_s:
        return f"idle for {idle_stop_s} s"
    return None


def immediate_sqlite_transactions() -> None:
    """Make every transaction of Prefect's SQLite database take the write lock when it begins (`BEGIN IMMEDIATE`).

    Prefect 3.8 begins most of its transactions DEFERRED: creating a flow run from a deployment reads the
    deployment, then inserts the run. When another connection (a background service, the runner of `videobert
    serve`, the event persister) commits between that read and the insert, SQLite cannot upgrade the read to a
    write (WAL's SQLITE_BUSY_SNAPSHOT) and answers "database is locked" at once, without waiting out the busy
    timeout: the server turns it into `503 Service Unavailable`, which the UI shows as a failed Run (measured
    here: 35 of 50 runs created back to back were refused). A transaction that takes the write lock first waits
    for the other writer instead (the busy timeout, 60 s) and never needs an upgrade. Prefect already begins its
    `with_for_update` transactions so; this makes it the rule. PostgreSQL servers are not concerned."""
    from prefect.server.database.configurations import AioSqliteConfiguration

    begin = AioSqliteConfiguration.begin_transaction
    if getattr(begin, "_videobert_immediate", False):
        return

    def begin_immediate(self, session, with_for_update: bool = False):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202, ARG001
        return begin(self, session, with_for_update=True)

    begin_immediate._videobert_immediate = True  # type: ignore[attr-defined]
    AioSqliteConfiguration.begin_transaction = begin_immediate  # type: ignore[method-assign]


def serve(home: Path, port: int, idle_stop_s: int, ui: bool = False) -> int:
    """Run the server until stopped, or idle for `idle_stop_s` seconds (0: never); removes its record at exit.
    With `ui`, Prefect's UI too and all of Prefect's background services (those `prefect server start` runs);
    without it, the API only, with the services of Prefect's own temporary server."""
    if ui:
        os.environ.update({"PREFECT_UI_ENABLED": "1", "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"})
    else:
        os.environ.update({"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"})
    import uvicorn
    from prefect.server.api.server import create_app

    immediate_sqlite_transactions()

    watch = _IdleWatch(create_app())
    server = uvicorn.Server(uvicorn.Config(watch, host="127.0.0.1", port=port, log_level="error", lifespan="on",
                                           timeout_graceful_shutdown=5))  # open websockets do not hold a stop

    def watchdog() -> None:
        while not server.should_exit:
            time.sleep(WATCH_EVERY_S)
            reason = stop_reason(home, watch, idle_stop_s)
            if reason:
                print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {reason}: stopping", flush=True)
                server.should_exit = True

    threading.Thread(target=watchdog, name="idle-watch", daemon=True).start()
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} serving on 127.0.0.1:{port}", flush=True)
    try:
        server.run()
    finally:
        rec = read_record(home)
        if rec and rec.pid == os.getpid():
            (home / RECORD).unlink(missing_ok=True)
    return 0 if server.started else 3  # 3: could not start (e.g. the port was taken)


def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description="The shared local Prefect server.")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-stop", type=int, default=IDLE_STOP_S)
    parser.add_argument("--ui", action="store_true", help="serve Prefect's UI too")
    args = parser.parse_args(argv)
    return serve(args.home, args.port, args.idle_stop, args.ui)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
