"""The ingest flow started from the Prefect UI's run form, in a real browser, as a user starts it.

Headless Chromium opens the UI of a Prefect server, finds the ingest deployment that `videobert serve` registered,
fills the run form, submits it and waits until the run page says Completed; then it starts the same run with one
changed parameter and checks that only the stage reading it ran.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.conftest import Project
from tests.helpers.media import make_video
from tests.ui.conftest import PrefectUI, Served, save_screenshot

pytestmark = pytest.mark.slow

FINAL_STATES = re.compile(r"^(Completed|Failed|Crashed|Cancelled)$")
LIST_RELOADS = 6  # times the deployment's run list is reloaded while waiting for a new run to show
RUN_TIMEOUT_MS = 180_000  # a flow run of two 2-second videos takes a few seconds; the machine may be busy
TASK_RUNS_TIMEOUT_MS = 30_000  # the server records task runs from their events, a moment after they end
SUBMIT_TIMEOUT_S = 90  # a write may wait on SQLite's lock (the busy timeout) before the server answers


def _field(scope, label: str):  # noqa: ANN001, ANN202
    """The run form's input block for the parameter shown as `label` (e.g. "Local Dir (Optional)") inside `scope`
    (the page, or a section's block: several sections have e.g. a "Batch Size")."""
    return scope.locator(
        f"xpath=.//span[contains(@class, 'schema-form-property__label') and normalize-space()='{label}']"
        "/ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' schema-form-property ')][1]"
    )


def _fill(scope, label: str, value: str, kind: str = "str") -> None:  # noqa: ANN001
    """Type `value` into a text or number parameter; a nullable one is first switched from None to `kind`."""
    field = _field(scope, label)
    toggle = field.get_by_role("button", name=kind, exact=True)
    if toggle.count():
        toggle.click()
    field.locator("input, textarea").first.fill(value)


def _pick(page, scope, label: str, option: str) -> None:  # noqa: ANN001
    """Choose `option` in a nullable choice parameter (switched from None to str first). The picker opens from the
    keyboard: in headless Chromium a click focuses it without opening its list."""
    field = _field(scope, label)
    field.get_by_role("button", name="str", exact=True).click()
    field.locator(".p-select-button__control").focus()
    page.keyboard.press("ArrowDown")
    page.get_by_role("option", name=option, exact=True).click()
    expect(field.locator(".p-select-button__value")).to_have_text(option)


def _retry_click(trigger, until, attempts: int = 5, wait_ms: int = 5000) -> None:  # noqa: ANN001
    """Click `trigger` until `until` (a locator) is visible: a click that lands while the page is still wiring up
    its handlers does nothing."""
    for _ in range(attempts - 1):
        trigger.click()
        try:
            until.wait_for(timeout=wait_ms)
            return
        except PlaywrightTimeout:
            continue
    trigger.click()
    until.wait_for(timeout=wait_ms)


def _open_run_form(page, ui: PrefectUI) -> None:  # noqa: ANN001
    """From the deployments list to the ingest deployment's custom run form, by clicking."""
    page.goto(f"{ui.url}/deployments")
    page.get_by_role("link", name="ingest", exact=True).first.click()
    page.wait_for_url(re.compile(r".*/deployments/deployment/[0-9a-f-]+(\?.*)?$"))
    custom_run = page.get_by_text("Custom run", exact=True)
    _retry_click(page.get_by_role("button", name="Run", exact=True), custom_run)
    custom_run.click()
    page.wait_for_url(re.compile(r".*/deployments/deployment/[0-9a-f-]+/run(\?.*)?$"))
    _field(page, "Local Dir (Optional)").wait_for()


def _submit_and_wait(page, run_name: str) -> tuple[str, str]:  # noqa: ANN001
    """Name the run, submit the form, open the run's page from the deployment's run list and wait for its final
    state. Returns (flow run id, final state name)."""
    page.locator(".flow-run-name-input input").fill(run_name)
    deployment_page = re.compile(r".*/deployments/deployment/[0-9a-f-]+(\?.*)?$")
    # A refusal (the server's 503, which SQLite's lock conflicts caused before the project's server began every
    # transaction with the write lock) shows this toast and leaves the page on the form: it fails the test.
    refused = page.get_by_text("Something went wrong trying to create a flow run")
    page.get_by_role("button", name="Submit", exact=True).click()
    deadline = time.monotonic() + SUBMIT_TIMEOUT_S
    while not deployment_page.match(page.url):
        assert not refused.count(), "the server refused the run (the UI says 'Something went wrong')"
        assert time.monotonic() < deadline, f"the run form did not submit in {SUBMIT_TIMEOUT_S} s"
        page.wait_for_timeout(250)
    page.wait_for_url(deployment_page)
    run_link = page.get_by_role("link", name=run_name, exact=True).first
    for _ in range(LIST_RELOADS):  # the run list refreshes on its own schedule: reload it as a user would
        try:
            run_link.wait_for(timeout=5000)
            break
        except PlaywrightTimeout:
            page.reload()
    run_link.click()
    page.wait_for_url(re.compile(r".*/runs/flow-run/[0-9a-f-]+"))
    flow_run_id = re.search(r"/runs/flow-run/([0-9a-f-]+)", page.url).group(1)
    badge = page.locator(".page-heading-flow-run__meta .state-badge").first
    expect(badge).to_have_text(FINAL_STATES, timeout=RUN_TIMEOUT_MS)
    return flow_run_id, badge.inner_text().strip()


def _summary_rows(page) -> list[dict[str, str]]:  # noqa: ANN001
    """The run's `ingest-summary` table artifact as shown in the UI: Artifacts tab, then the artifact's page."""
    page.locator("li.p-tab", has_text="Artifacts").click()
    page.locator(".artifact-card", has=page.locator(".artifact-card__title", has_text=re.compile(r"^ingest-summary$"))
                 ).click()
    page.wait_for_url(re.compile(r".*/artifacts/artifact/[0-9a-f-]+"))
    table = page.locator("table.p-table__table")
    table.locator("tbody tr").first.wait_for()
    header = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    return [dict(zip(header, (c.strip() for c in row.locator("td").all_inner_texts()), strict=True))
            for row in table.locator("tbody tr").all()]


def _task_run_names(page, expected: int) -> list[str]:  # noqa: ANN001
    """Names in the run page's Task Runs tab, once it lists `expected` of them (the server records task runs from
    events, a moment after they end)."""
    page.locator("li.p-tab", has_text="Task Runs").click()
    names = page.locator(".task-run-list-item .state-list-item__name a")
    expect(names).to_have_count(expected, timeout=TASK_RUNS_TIMEOUT_MS)
    return sorted(names.all_inner_texts())


def test_ingest_started_from_the_run_form_completes_and_a_changed_parameter_reruns_only_its_stage(
    project: Project, served: Served, prefect_ui: PrefectUI, page  # noqa: ANN001
) -> None:
    videos = project.root / "videos"  # a new local folder of two short videos; no params.yaml: the paper's values
    for name in ("alpha", "bravo"):
        make_video(videos / f"{name}.mp4", seconds=2)

    # the folder and the baseline extractor, from the form
    _open_run_form(page, prefect_ui)
    _fill(page, "Local Dir (Optional)", str(videos))
    features = _field(_field(page, "overrides (Optional)"), "Features (Optional)")
    _pick(page, features, "Extractor (Optional)", "baseline")
    _field(page, "Local Dir (Optional)").scroll_into_view_if_needed()
    save_screenshot(page, "ui-run-form")
    run1, state1 = _submit_and_wait(page, "first-folder")
    assert state1 == "Completed", f"flow run {run1}: {state1}"
    assert _task_run_names(page, 8) == sorted(
        f"{stage}-{v}" for v in ("alpha", "bravo") for stage in ("download", "transcript", "punctuate", "features"))
    save_screenshot(page, "ui-run-completed")
    assert _summary_rows(page) == [{"stage": stage, "status": "done", "count": "2"}
                                   for stage in ("download", "transcript", "punctuate", "features")]
    save_screenshot(page, "ui-run-summary")

    # the same folder with one features value changed: download, transcript and punctuate are up to date and
    # skipped before submitting; features runs again for both videos
    _open_run_form(page, prefect_ui)
    _fill(page, "Local Dir (Optional)", str(videos))
    features = _field(_field(page, "overrides (Optional)"), "Features (Optional)")
    _pick(page, features, "Extractor (Optional)", "baseline")
    _fill(features, "Fps (Optional)", "10", kind="float")
    run2, state2 = _submit_and_wait(page, "features-fps-changed")
    assert state2 == "Completed", f"flow run {run2}: {state2}"
    assert _task_run_names(page, 2) == ["features-alpha", "features-bravo"]
    assert _summary_rows(page) == [
        {"stage": "download", "status": "skipped before submit: up to date", "count": "2"},
        {"stage": "transcript", "status": "skipped before submit: up to date", "count": "2"},
        {"stage": "punctuate", "status": "skipped before submit: up to date", "count": "2"},
        {"stage": "features", "status": "done", "count": "2"},
    ]
    save_screenshot(page, "ui-rerun-summary")
