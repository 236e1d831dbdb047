"""Where Prefect keeps its files and which API it talks to, set before Prefect is imported."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from videobert.core.settings import Settings

# Prefect's local server migrates its SQLite database on first start: give it time on small machines.
EPHEMERAL_STARTUP_TIMEOUT_S = 120


def prefect_home(settings: Settings) -> Path:
    """Prefect's folder (its database, and the shared local server's record and log): `<data>/prefect`."""
    return Path(os.environ.get("PREFECT_HOME") or settings.resolved_data_dir / "prefect").expanduser()


def configure_prefect(settings: Settings, say: Callable[[str], None] | None = None) -> None:
    """Point Prefect at the configured API, or else at the data folder's shared local server (started when none
    runs: `videobert_cli.local_server`), keep Prefect's files in the data folder and its error records off the
    console (`videobert_cli.noise`). `say` hears about a server start."""
    from videobert_cli.noise import quiet_prefect_console

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Flow and task runs log at INFO to the API (the UI's Logs tab shows the plan and the outcome); the console
    # shows warnings only: the progress bar and the summary say enough there.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_HOME", str(settings.resolved_data_dir / "prefect"))
    home = prefect_home(settings)
    home.mkdir(parents=True, exist_ok=True)  # Prefect does not create it
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_TIMEOUT_S))
    if settings.prefect_api_url:
        os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    if os.environ.get("PREFECT_API_URL"):
        quiet_prefect_console()
        return
    from videobert_cli.local_server import ensure_server, register_client, wait_ready

    register_client(home)  # first: keeps the server from stopping for idleness while this process runs
    server, started = ensure_server(home)
    os.environ["PREFECT_API_URL"] = server.api_url
    quiet_prefect_console()  # imports Prefect while a new server starts
    wait_ready(server, EPHEMERAL_STARTUP_TIMEOUT_S)
    if started and say:
        say(f"started the local Prefect server for this data folder (pid {server.pid}, {server.api_url}); later runs "
            f"reuse it; `videobert prefect-server stop` stops it, else it stops after {server.idle_stop_s // 60} idle "
            "minutes")
