"""The dashboard as a coach uses it: Debian's Chromium, headless, at phone and desktop widths.

Selenium drives ``/usr/bin/chromium`` through Debian's ``/usr/bin/chromedriver`` (the same
version, both from ``apt-get install chromium chromium-driver``, which .ci/run does): nothing
is downloaded. Each page must load without a console error; the roster must list the
athletes; the rebuild button must build the plan. Screenshots go to the test's folder, or to
``$STRIDEWISE_SCREENSHOTS`` when set, to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from planner.store.database import Store
from tests.web_helpers import live_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: (name, width, height): a common phone's CSS viewport and a laptop's.
SIZES = [("phone", 390, 844), ("desktop", 1366, 900)]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("STRIDEWISE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def full_page(driver: Any, path: Path, width: int) -> None:
    """A screenshot of the whole page (the window grows to the page's height)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 120, 6000))
    driver.save_screenshot(str(path))


@pytest.mark.parametrize(("name", "width", "height"), SIZES)
def test_pages_load_cleanly_and_the_roster_lists_the_athletes(
    browser: Any, roster_db: Path, tmp_path: Path, name: str, width: int, height: int
) -> None:
    folder = shots(tmp_path)
    browser.set_window_size(width, height)
    with live_server(roster_db) as base:
        browser.get(base + "/")
        browser.get_log("browser")  # start clean
        browser.get(base + "/")
        links = browser.find_elements(By.CSS_SELECTOR, "a.athlete")
        assert [a.text for a in links] == ['Ana <script>alert("x")</script> Lúcia', "Bo"]
        table = browser.find_element(By.CSS_SELECTOR, "table.roster")
        # Every column fits the screen: no sideways scrolling on a phone.
        assert table.size["width"] <= width
        scroll = browser.execute_script("return document.documentElement.scrollWidth")
        assert scroll <= width
        full_page(browser, folder / f"roster-{name}.png", width)
        assert console_errors(browser) == []

        browser.set_window_size(width, height)
        links = browser.find_elements(By.CSS_SELECTOR, "a.athlete")
        links[0].click()
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Ana")
        charts = browser.find_elements(By.CSS_SELECTOR, "img.chart")
        assert len(charts) >= 2
        for img in charts:  # each chart really loaded and was drawn
            assert browser.execute_script("return arguments[0].naturalWidth", img) > 100
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        full_page(browser, folder / f"athlete-{name}.png", width)
        assert console_errors(browser) == []


def test_the_rebuild_button_builds_the_plan(browser: Any, roster_db: Path, tmp_path: Path) -> None:
    browser.set_window_size(*SIZES[0][1:])
    with live_server(roster_db) as base:
        browser.get(base + "/athletes/ana")
        assert "No plan is stored for this week yet" in browser.page_source
        browser.find_element(By.CSS_SELECTOR, "button[value=rebuild]").click()
        notice = browser.find_element(By.CSS_SELECTOR, ".notice")
        assert re.fullmatch(r"Plan for \d{4}-W\d{2} built \(revision 1\)\.", notice.text)
        days = browser.find_elements(By.CSS_SELECTOR, ".plan .day")
        assert days  # the week's sessions are on the page
        full_page(browser, shots(tmp_path) / "athlete-rebuilt-phone.png", SIZES[0][1])
        assert console_errors(browser) == []
        browser.get(base + "/")
        row = browser.find_element(By.XPATH, "//tr[.//a[@href='/athletes/ana']]")
        assert "built" in row.text
        assert "not built" not in row.text
    with Store(roster_db) as store:
        assert store.db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] >= 1
