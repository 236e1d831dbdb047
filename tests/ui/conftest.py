"""Fixtures of the browser tests: a Prefect server with its UI, `videobert serve` on it, and headless Chromium.

* The Prefect server is the README's: `videobert prefect-server start --ui` for a data folder of its own (the
  suite's `prefect_api` harness serves the API only).
* `videobert serve` registers the deployments with it and runs the flow runs the UI starts, in the project folder.
* The browser is Debian's `chromium` (scripts/bootstrap.sh installs it), driven by Playwright; Playwright's own
  browser download is never used. A missing browser is a set-up error, like a missing PostgreSQL.

Screenshots go to test-artifacts/ui/ in the repository (gitignored); the run prints where.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Project, free_port
from tests.flows.prefect_api import stop_session

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright drives it through `executable_path`
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
SERVER_START_S = 120  # first start migrates the server's SQLite database: slow on a busy small machine
SERVE_REGISTER_S = 120
VIEWPORT = {"width": 1280, "height": 800}
SETTLE_MS = 500  # a page fades in after navigating: let it finish before a screenshot
_SAVED: list[Path] = []


def save_screenshot(page, name: str) -> Path:  # noqa: ANN001
    """Screenshot of the page's viewport as test-artifacts/ui/<name>.png; its path is listed after the run."""
    if not _SAVED:  # the first of this run: drop the last run's pictures
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.wait_for_timeout(SETTLE_MS)
    page.screenshot(path=str(path))
    _SAVED.append(path)
    return path


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if _SAVED:
        terminalreporter.write_sep("-", "Prefect UI screenshots")
        for path in _SAVED:
            terminalreporter.write_line(str(path))


stop_group = stop_session  # the suite's: stop a process started in its own session, and its children


@dataclass(frozen=True)
class PrefectUI:
    """A running Prefect server with its UI."""

    url: str  # the UI, e.g. http://127.0.0.1:PORT

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


@pytest.fixture(scope="module")
def prefect_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectUI]:
    """The README's recipe: `videobert prefect-server start --ui` for a data folder of its own, on a free port of
    127.0.0.1 (Prefect's server with its UI, on SQLite, every transaction taking the write lock first)."""
    port = free_port()
    server = PrefectUI(f"http://127.0.0.1:{port}")
    data = tmp_path_factory.mktemp("prefect-ui-data")
    env = {**os.environ, "VIDEOBERT_DATA_DIR": str(data),
           "PREFECT_API_LOG_RETRYABLE_ERRORS": "true"}  # why a request was answered 503, in the server's log
    for name in ("PREFECT_API_URL", "VIDEOBERT_PREFECT_API_URL", "PREFECT_HOME"):
        env.pop(name, None)
    cli = [sys.executable, "-m", "videobert_cli.cli", "prefect-server"]
    started = subprocess.run([*cli, "start", "--ui", "--port", str(port)], env=env, text=True, capture_output=True,
                             timeout=SERVER_START_S + 30)
    log = data / "prefect" / "server.log"
    print(f"Prefect server log: {log}")
    try:
        assert started.returncode == 0, f"prefect-server start --ui: {started.stdout}{started.stderr}"
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=5) as answer:
            assert answer.status == 200
        yield server
    finally:
        subprocess.run([*cli, "stop", "--force"], env=env, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Served:
    """`videobert serve` running for a project, and the deployments it registered (name -> id)."""

    proc: subprocess.Popen[str]
    deployments: dict[str, str]


@pytest.fixture
def served(project: Project, prefect_ui: PrefectUI) -> Iterator[Served]:
    """`videobert serve` in the project folder, on the UI's server; waits until the ingest and train deployments
    are there."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env = {**os.environ, "VIDEOBERT_PREFECT_API_URL": prefect_ui.api_url, "VIDEOBERT_DATA_DIR": str(project.data),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    # one flow run at a time: what users start waits its turn instead of loading the machine; its output to a file
    # (a pipe nobody reads while the test runs would fill up and stop it)
    log = project.root / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "videobert_cli.cli", "serve", "--limit", "1"],
                                cwd=project.root, env=env, text=True, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + SERVE_REGISTER_S
        with temporary_settings({PREFECT_API_URL: prefect_ui.api_url}), get_client(sync_client=True) as client:
            while True:
                deployments = {d.name: str(d.id) for d in client.read_deployments() if "videobert" in (d.tags or [])}
                if {"ingest", "train"} <= set(deployments):
                    break
                assert proc.poll() is None, f"videobert serve stopped: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no ingest and train deployments after {SERVE_REGISTER_S} s"
                time.sleep(0.5)
        yield Served(proc, deployments)
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium under Playwright."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run the README's test command (make test), whose set-up script installs "
                    "Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):  # noqa: ANN001, ANN201
    """A new browser page (its own context) at the suite's screenshot size; a failed test leaves a screenshot of
    where the page was."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    events: list[str] = []  # what the browser saw go wrong: console errors, failed API calls
    page.on("console", lambda msg: events.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("response", lambda r: events.append(f"HTTP {r.status} {r.request.method} {r.url}") if r.status >= 400
            else None)
    page.on("requestfailed", lambda r: events.append(f"failed {r.method} {r.url}: {r.failure}"))
    yield page
    if request.node.stash.get(_CALL_FAILED, False):
        shot = save_screenshot(page, f"{request.node.name}-failed")
        shot.with_suffix(".log").write_text("\n".join(events) + "\n")
    context.close()
