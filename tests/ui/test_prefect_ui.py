"""The ingest flow started from the Prefect UI's run form, in a real browser, as a user starts it.

Headless Chromium opens the UI of a Prefect server, finds the ingest deployment that `videobert serve` registered,
fills the run form, submits it and waits until the run page says Completed; then it starts the same run with one
changed parameter and checks that only the stage reading it ran.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import Project
from tests.helpers.media import make_video
from tests.ui.conftest import PrefectUI, Served, save_screenshot

pytestmark = pytest.mark.slow

FINAL_STATES = re.compile(r"^(Completed|Failed|Crashed|Cancelled)$")
LIST_RELOADS = 6  # times the deployment's run list is reloaded while waiting for a new run to show
RUN_TIMEOUT_MS = 180_000  # a flow run of two 2-second videos takes a few seconds; the machine may be busy


def _field(page, label: str):  # noqa: ANN001, ANN202
    """The run form's input block for the parameter shown as `label` (e.g. "Local Dir (Optional)")."""
    return page.locator(
        f"xpath=//span[contains(@class, 'schema-form-property__label') and normalize-space()='{label}']"
        "/ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' schema-form-property ')][1]"
    )


def _fill_text(page, label: str, value: str) -> None:  # noqa: ANN001
    """Type `value` into a text parameter; a nullable one is first switched from None to str."""
    field = _field(page, label)
    toggle = field.get_by_role("button", name="str", exact=True)
    if toggle.count():
        toggle.click()
    field.locator("input, textarea").first.fill(value)


def _retry_click(trigger, until, attempts: int = 5, wait_ms: int = 5000) -> None:  # noqa: ANN001
    """Click `trigger` until `until` (a locator) is visible: a click that lands while the page is still wiring up
    its handlers does nothing."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

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
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    page.locator(".flow-run-name-input input").fill(run_name)
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_url(re.compile(r".*/deployments/deployment/[0-9a-f-]+(\?.*)?$"))  # back on the deployment
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


def _task_run_names(page, expected: int) -> list[str]:  # noqa: ANN001
    """Names in the run page's Task Runs tab, once it lists `expected` of them (the server records task runs from
    events, a moment after they end)."""
    from playwright.sync_api import expect

    page.locator("li.p-tab", has_text="Task Runs").click()
    names = page.locator(".task-run-list-item .state-list-item__name a")
    expect(names).to_have_count(expected)
    return sorted(names.all_inner_texts())


def test_ingest_started_from_the_run_form_completes_and_a_changed_parameter_reruns_only_its_stage(
    project: Project, served: Served, prefect_ui: PrefectUI, page  # noqa: ANN001
) -> None:
    videos = project.root / "videos"
    for name in ("alpha", "bravo"):
        make_video(videos / f"{name}.mp4", seconds=2)
    project.write_params("features:\n  extractor: baseline\n")
    (project.root / "params-fps.yaml").write_text("features:\n  extractor: baseline\n  fps: 10.0\n")

    # a new local folder, from the form
    _open_run_form(page, prefect_ui)
    _fill_text(page, "Local Dir (Optional)", str(videos))
    _field(page, "Local Dir (Optional)").scroll_into_view_if_needed()
    save_screenshot(page, "ui-run-form")
    run1, state1 = _submit_and_wait(page, "first-folder")
    assert state1 == "Completed", f"flow run {run1}: {state1}"
    save_screenshot(page, "ui-run-completed")
    assert _task_run_names(page, 8) == sorted(
        f"{stage}-{v}" for v in ("alpha", "bravo") for stage in ("download", "transcript", "punctuate", "features"))

    # the same folder with one features parameter changed: only features runs
    _open_run_form(page, prefect_ui)
    _fill_text(page, "Local Dir (Optional)", str(videos))
    _field(page, "params_file (Optional)").locator("input, textarea").first.fill("params-fps.yaml")
    run2, state2 = _submit_and_wait(page, "features-fps-changed")
    assert state2 == "Completed", f"flow run {run2}: {state2}"
    assert _task_run_names(page, 2) == ["features-alpha", "features-bravo"]
