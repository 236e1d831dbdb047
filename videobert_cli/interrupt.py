"""Ctrl-C (SIGINT) and SIGTERM: stop at once, say what had finished, exit with 130 or 143.

Waiting for the stages in flight to end could take minutes (a download, a long video's features), and
Prefect would then report the run as crashed and let the command exit 0. Instead the handler prints how many
of the planned stage runs had finished, marks the Prefect flow run crashed, and ends the process. What was in
flight is safe to cut: a stage writes its artifacts before its row says `done`, and the next run takes over
the stages this process left `running` (its pid is gone) and removes its scratch folders.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
CRASH_REPORT_TIMEOUT_S = 3.0


class CountingReporter:
    """A progress reporter (see `flows.progress`) that counts finished stage runs, around an optional visible one."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.runs: list[list[Any]] = []  # [description, total, finished] per scheduler loop, in order

    def start(self, total: int, description: str) -> None:
        global _active
        _active = self
        self.runs.append([description, total, 0])
        take_back_sigterm()
        if self.inner:
            self.inner.start(total, description)

    def advance(self, message: str) -> None:
        if self.runs:
            self.runs[-1][2] += 1
        if self.inner:
            self.inner.advance(message)

    def stop(self) -> None:
        if self.inner:
            self.inner.stop()

    def finished(self) -> str:
        """'8 of 12 ingest stage runs had finished' for each loop so far, or ''."""
        return "; ".join(f"{done} of {total} {what} stage runs had finished" for what, total, done in self.runs)


_active: CountingReporter | None = None
_console: Any = None
# What the interrupted command does when run again (said after the interruption): per-video work by default
INGEST_HINT = ("The next run takes over the stages left running and skips what is done; `videobert status` shows "
               "where each video is.")
TRAINING_HINT = ("The same command resumes from the newest checkpoint; `videobert checkpoints` lists the run and its "
                 "checkpoints.")
_hint = INGEST_HINT


def set_resume_hint(text: str) -> None:
    """What to say, after an interruption, of running the command again (the default speaks of stages)."""
    global _hint
    _hint = text


def install(console: Any) -> None:
    """Handle SIGINT and SIGTERM from now on in this process (call from the main thread); `console` says it."""
    global _console
    _console = console
    for sig in EXIT_CODES:
        signal.signal(sig, _on_signal)


def restore_defaults() -> None:
    """Python's own handling again (for a long-running command that stops cleanly on KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def take_back_sigterm() -> None:
    """Prefect's flow engine puts its own SIGTERM handler in place for a flow run (it waits for the tasks in flight,
    then re-sends the signal); while our scheduler loop runs, ours answers at once, as for Ctrl-C."""
    if _console is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    for sig in EXIT_CODES:  # a second signal while this one is handled ends the process right away
        signal.signal(sig, signal.SIG_DFL)
    name = signal.Signals(signum).name
    try:
        if _active and _active.inner:
            _active.inner.stop()  # the progress bar gives the terminal back
        done = _active.finished() if _active else ""
        _console.print(f"[bold yellow]interrupted ({name})[/]" + (f": {done}" if done else "") + f". {_hint}")
        _report_crash(name)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(EXIT_CODES.get(signum, 128 + signum))


def _report_crash(name: str) -> None:
    """Mark the flow run in progress, if any, as crashed on the Prefect server (best effort, a few seconds)."""
    if "prefect.context" not in sys.modules:
        return
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    run_id = ctx.flow_run.id

    def report() -> None:
        try:
            from prefect.client.orchestration import get_client
            from prefect.states import Crashed

            with get_client(sync_client=True) as client:
                client.set_flow_run_state(run_id, Crashed(message=f"interrupted by {name} (videobert command line)"),
                                          force=True)
        except Exception:  # noqa: BLE001 - the run is ending either way
            pass

    worker = threading.Thread(target=report, daemon=True)
    worker.start()
    worker.join(CRASH_REPORT_TIMEOUT_S)
