"""Without a browser the browser tests skip, saying what is missing; under CI=true they fail instead."""

from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped

from tests.ui import browser


@pytest.fixture
def no_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)


def test_without_a_browser_the_test_skips_with_the_reason(no_browser: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Skipped, match=r"no browser: /nonexistent/chromium is not installed \(Debian packages"):
        browser.require_browser()


def test_under_ci_a_missing_browser_fails(no_browser: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="CI=true but no browser"):
        browser.require_browser()
