"""Where Prefect keeps its files and which API it talks to, set before Prefect is imported."""

from __future__ import annotations

import os
from pathlib import Path

from videobert.core.settings import Settings

# Prefect's own local server migrates its SQLite database on first start: give it time on small machines.
EPHEMERAL_STARTUP_TIMEOUT_S = 120


def configure_prefect(settings: Settings) -> None:
    """Point Prefect at the configured API (or its own local server) and keep its files in the data folder."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the progress bar and summary say enough
    os.environ.setdefault("PREFECT_HOME", str(settings.resolved_data_dir / "prefect"))
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)  # Prefect does not create it
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_TIMEOUT_S))
    if settings.prefect_api_url:
        os.environ["PREFECT_API_URL"] = settings.prefect_api_url
