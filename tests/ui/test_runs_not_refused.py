"""Runs created from a deployment, as the UI's Run button creates them, are never refused by the project's server.

Prefect's server on SQLite answered `503 Service Unavailable` to 35 of 50 such runs created back to back (measured
on `prefect server start` with `videobert serve` registered): its transactions began DEFERRED, and a read that
had to become a write after another connection committed failed at once. The project's server
(`videobert prefect-server start`, also the data folder's local server) begins them IMMEDIATE
(`videobert_cli.local_server.immediate_sqlite_transactions`). This sends the same requests the UI sends, with
`videobert serve` polling and running the runs, and the server's background services at work.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.ui.conftest import PrefectUI, Served

pytestmark = pytest.mark.slow

RUNS = 50
REQUEST_TIMEOUT_S = 90  # a write may wait on SQLite's lock (the busy timeout, 60 s) before the server answers


def _create_run(ui: PrefectUI, deployment_id: str, name: str) -> tuple[int, str]:
    """POST a flow run of the deployment as the UI's Run button does; (HTTP status, body)."""
    body = {"name": name, "parameters": {}, "state": {"type": "SCHEDULED", "name": "Scheduled"}, "tags": []}
    request = urllib.request.Request(f"{ui.api_url}/deployments/{deployment_id}/create_flow_run", method="POST",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refusal:
        return refusal.code, refusal.read().decode()


def test_fifty_runs_created_back_to_back_are_all_accepted(served: Served, prefect_ui: PrefectUI) -> None:
    answers = []
    started = time.monotonic()
    for i in range(RUNS):
        deployment = ("ingest", "train")[i % 2]  # the two deployments the refusals were seen on
        answers.append((i, *_create_run(prefect_ui, served.deployments[deployment], f"back-to-back-{i}")))
    elapsed = time.monotonic() - started
    refused = [(i, status, body[:120]) for i, status, body in answers if status != 201]
    print(f"{RUNS} runs created in {elapsed:.1f} s, {len(refused)} refused")
    assert not refused, f"{len(refused)} of {RUNS} runs refused: {refused[:5]}"
