"""A real headless Chromium (Debian's `chromium` and `chromium-driver`) driven by selenium, for the web UI's
browser tests; and the folder the tests write their screenshots to (test-output/ui-screenshots, not committed).

Without a browser (or selenium) the tests are skipped, saying what is missing; under CI=true they fail
instead: CI must run them (.ci/run installs the packages).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import in_ci

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "test-output" / "ui-screenshots"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
WINDOW = (1280, 800)  # the smallest screen the UI is made for


def _first(candidates: tuple[str, ...], name: str) -> str | None:
    found = next((path for path in candidates if os.access(path, os.X_OK)), None)
    return found or shutil.which(name)


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"no browser for the UI tests: {reason} (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[test]')")
    chromium = _first(CHROMIUM_CANDIDATES, "chromium")
    driver = _first(CHROMEDRIVER_CANDIDATES, "chromedriver")
    if chromium is None:
        _unavailable("chromium is not installed")
    if driver is None:
        _unavailable("chromedriver is not installed")
    assert chromium is not None and driver is not None
    return chromium, driver


@pytest.fixture
def browser(browser_paths: tuple[str, str]) -> Iterator[Any]:
    """A fresh headless Chromium (its own profile: no cookies) at 1280x800."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
