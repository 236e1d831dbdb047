"""What the command line prints of Prefect's own log: warnings, but not its error records, tracebacks and
exit-drain notices.

An expected failure (an unreachable database, a corrupt file) is one line from `videobert_cli.cli.main`, and a
stage that fails is counted in the summary table; Prefect's engine logs the same failure again, with a
traceback, before that line. Its error records and any Prefect record carrying a traceback are kept off the
console unless `--debug` is given; they still reach the Prefect server (its UI shows them with the run).
"""

from __future__ import annotations

import logging
from pathlib import Path

DEBUG = False  # set by the global --debug option
_hidden = 0


def hidden() -> int:
    """How many of Prefect's records were kept off the console in this process."""
    return _hidden


# Prefect's background services (EventsWorker, APILogWorker) log under their class names, not under `prefect`:
# they are known by the module that logs. At exit they warn while they drain ("Still processing items: 1 items
# remaining..."), which says nothing to a user of the command line.
_SERVICES_MODULE = "services"
_DRAIN_NOTICE = "Still processing items"


def _is_prefect(record: logging.LogRecord) -> bool:
    return record.name.startswith(("prefect", "uvicorn")) or (
        record.module == _SERVICES_MODULE and "prefect" in Path(record.pathname).parts)


class QuietPrefect(logging.Filter):
    """Drops Prefect's (and its server's) error records, tracebacks and exit-drain notices, unless --debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        global _hidden
        if DEBUG or not _is_prefect(record):
            return True
        if record.levelno >= logging.ERROR or record.exc_info or str(record.msg).startswith(_DRAIN_NOTICE):
            _hidden += 1
            return False
        return True


def quiet_prefect_console() -> None:
    """Set up Prefect's logging now (importing `prefect.main` would; later set-ups only change levels) and put the
    filter on the console handlers it installed."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()
    handlers = [h for name in ("", "prefect", "uvicorn", "fastapi") for h in logging.getLogger(name).handlers]
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and not any(isinstance(f, QuietPrefect) for f in handler.filters):
            handler.addFilter(QuietPrefect())
