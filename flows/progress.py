"""Progress reporting from a flow running in this process to whoever started it (the CLI's progress bar).

Flows call `reporter()`; it is a no-op unless a caller installed one with `use_reporter`, so flows started
by a Prefect worker or the UI are unaffected (the Prefect UI shows their task runs instead).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class Reporter(Protocol):
    """Receives a flow's progress."""

    def start(self, total: int, description: str) -> None: ...
    def advance(self, message: str) -> None: ...
    def stop(self) -> None: ...


class _Silent:
    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, message: str) -> None:
        pass

    def stop(self) -> None:
        pass


_current: Reporter = _Silent()


def reporter() -> Reporter:
    """The installed reporter (a silent one by default)."""
    return _current


@contextlib.contextmanager
def use_reporter(new: Reporter) -> Iterator[None]:
    """Install `new` for the duration of the block."""
    global _current
    old, _current = _current, new
    try:
        yield
    finally:
        _current = old


class RichReporter:
    """A rich progress bar with the last finished (stage, video) as its text."""

    def __init__(self, console: object | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"), console=console, transient=False,
        )
        self._task = None

    def start(self, total: int, description: str) -> None:
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, last="")

    def advance(self, message: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=1, last=message[:60])

    def stop(self) -> None:
        self._progress.stop()
