"""A real browser on the Dagster UI: headless Chromium (selenium) opens the asset graph pages
of a running dagster-webserver and finds every asset by name.

Screenshots are kept under test-artifacts/ (gitignored). Without Chromium or its
driver (scripts/install-browser.sh installs both) the test is skipped, saying why.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_ui_e2e import (
    PROJECT,
    backfill,
    dagster_env,
    free_port,
    make_instance,
    start_service,
    stop_service,
    webserver_command,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = PROJECT / "test-artifacts"
GROUP_PAGES = {
    "ingest": "/locations/lakehouse/asset-groups/ingest",
    "model": "/locations/lakehouse/asset-groups/model",
}
ASSETS = {
    "ingest": ["raw_events", "events", "content"],
    "model": [
        "messages",
        "threads",
        "accounts",
        "rooms",
        "platform_daily",
        "account_daily",
        "unread",
        "read_markers",
        "snapshots",
        "duckdb_catalog",
    ],
}
CHROME_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,3200",  # tall enough that the graph renders every node of a group
)


def browser_missing() -> str | None:
    """Why a browser test cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path, what in ((CHROMIUM, "Chromium"), (CHROMEDRIVER, "chromedriver")):
        if not path.is_file():
            return f"{what} not found at {path}: run scripts/install-browser.sh"
    return None


@pytest.fixture(scope="module")
def chrome() -> Iterator[object]:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (*CHROME_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory) -> Iterator[str]:
    """A dagster-webserver (no daemon) over a temporary instance."""
    if browser_missing():
        pytest.skip(browser_missing())
    root = tmp_path_factory.mktemp("ui")
    home, store, lake = make_instance(root)
    port = free_port()
    service = start_service(
        "webserver", webserver_command(port), dagster_env(home, store, lake), root
    )
    url = f"http://127.0.0.1:{port}"
    try:
        backfill.wait_until_loaded(url, timeout=180)
    except Exception:
        stop_service(service)
        pytest.fail(f"webserver did not come up:\n{service.tail()}")
    yield url
    leftovers = stop_service(service)
    assert not leftovers, f"webserver group left processes {leftovers}"


def rendered_names(driver, names: list[str], timeout: float = 60) -> set[str]:
    """The ``names`` shown as node titles on the current page, once all are (or at timeout)."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            button.click()  # the "join the community" dialog of a fresh instance
        source = driver.page_source
        found = {name for name in names if f">{name}<" in source}
        if found == set(names):
            break
        time.sleep(0.5)
    return found


@pytest.mark.slow
def test_asset_graph_pages_show_every_asset(chrome, ui_url):
    ARTIFACTS.mkdir(exist_ok=True)
    for group, path in GROUP_PAGES.items():
        chrome.get(ui_url + path)
        found = rendered_names(chrome, ASSETS[group])
        screenshot = ARTIFACTS / f"asset-graph-{group}.png"
        chrome.save_screenshot(str(screenshot))
        assert found == set(ASSETS[group]), (
            f"{group}: missing {set(ASSETS[group]) - found}; see {screenshot}"
        )
        assert group in chrome.title
