"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by selenium, and the app served over
real HTTP with a test-only page that holds a graph div: what the graph's browser test and bench share."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Blueprint, Flask
from werkzeug.serving import make_server

from tests.databases import in_ci

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
STATIC_DIR = Path(__file__).resolve().parents[2] / "kfp_backend" / "ui" / "static"
PAGE_PREFIX = "/test-graph"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>graph</title></head>
<body>
<div class="kfp-graph" data-graph-url="{url}"></div>
<script>
  window.kfpEvents = [];
  document.addEventListener('kfp-node-select', function (event) {{ window.kfpEvents.push(event.detail); }});
</script>
<script src="{prefix}/static/vendor/dagre/dagre.min.js"></script>
<script src="{prefix}/static/graph.js"></script>
</body></html>
"""


def browser_missing() -> str | None:
    """Why no browser can run here (None: one can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{path} is not installed (Debian packages chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    return None


def require_browser() -> None:
    """Skip the test without a browser, with the reason; under CI=true fail instead."""
    reason = browser_missing()
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI=true but no browser: {reason}")
        pytest.skip(f"no browser: {reason}")


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium") or CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--no-proxy-server"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER if Path(CHROMEDRIVER).exists()
                                              else shutil.which("chromedriver") or CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def add_graph_page(app: Flask) -> None:
    """GET /test-graph/runs/<id> and /test-graph/versions/<id>: a page with the graph of that run or version;
    /test-graph/static/...: the UI's static files (the UI blueprint's own page is not needed for the graph)."""
    page = Blueprint("graph_test_page", __name__, static_folder=str(STATIC_DIR),
                     static_url_path=f"{PAGE_PREFIX}/static")

    @page.get(f"{PAGE_PREFIX}/runs/<run_id>")
    def run_page(run_id: str) -> str:
        return PAGE.format(url=f"/ui/api/runs/{run_id}/graph", prefix=PAGE_PREFIX)

    @page.get(f"{PAGE_PREFIX}/versions/<version_id>")
    def version_page(version_id: str) -> str:
        return PAGE.format(url=f"/ui/api/pipeline-versions/{version_id}/graph", prefix=PAGE_PREFIX)

    app.register_blueprint(page)


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app over real HTTP on 127.0.0.1 (a thread per request); its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
