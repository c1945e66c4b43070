"""The run graph drawn by graph.js in a real headless Chromium, against the app served over HTTP with real
runs executed by the in-process executor: every node of a finished run with its phase as text, retries shown,
groups drawn, a click and the Enter key firing `kfp-node-select`; a live run whose phases change in place
until the page stops polling. Skips without a browser (fails under CI=true)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests.exit_retry_pipelines import remove_traces
from tests.ui import graph_pipelines as pipelines
from tests.ui.browser import add_graph_page, chromium, require_browser, served
from tests.ui.test_run_graph import create_run, finished_graph

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the browser side is the subject


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    require_browser()
    application = create_app(settings.replace(executor_enabled=True))
    add_graph_page(application)
    yield application
    shutdown(application)


@pytest.fixture
def browser(app: Flask) -> Iterator[tuple[Any, str]]:
    with served(app) as base_url, chromium() as driver:
        yield driver, base_url


@pytest.fixture
def marker() -> Iterator[str]:
    marker = f"ui-graph-browser-{uuid.uuid4().hex[:12]}"
    yield marker
    remove_traces(marker)


def wait_for(driver: Any, script: str, timeout: float = 30) -> Any:
    """The value of `script` (JS returning a value) once truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for: {script}"
        time.sleep(0.05)


DRAWN_NODES = """
return Array.from(document.querySelectorAll('.kfp-graph g.kfp-node')).map(function (node) {
  return {id: node.getAttribute('data-node-id'), name: node.querySelector('.kfp-node-name').textContent,
          state: node.querySelector('.kfp-node-phase').textContent, phase: node.getAttribute('data-phase'),
          tabindex: node.getAttribute('tabindex'), label: node.getAttribute('aria-label')};
});
"""


def test_a_finished_run_is_drawn_with_phases_retries_groups_and_selectable_nodes(
    client: FlaskClient, browser: tuple[Any, str], marker: str, tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, base_url = browser
    run_id = create_run(client, pipelines.argo_manifest(marker))
    graph = finished_graph(client, run_id)
    driver.get(f"{base_url}/test-graph/runs/{run_id}")
    wait_for(driver, "return document.querySelector('.kfp-graph').getAttribute('data-graph-state') === 'final'")
    drawn = {node["id"]: node for node in driver.execute_script(DRAWN_NODES)}
    steps = {node["id"]: node for node in graph["nodes"] if node["type"] != "junction"}
    assert set(drawn) == set(steps)
    for node_id, node in steps.items():
        shown = drawn[node_id]
        assert shown["state"].startswith(node["phase"]), (shown, node)  # the phase in words, not only colour
        assert shown["phase"] == node["phase"] and shown["tabindex"] == "0"
        assert node["display_name"][:20] in shown["name"]
    flaky = next(node for node in drawn.values() if node["name"] == "flaky")
    assert flaky["state"] == "Succeeded \u00b7 attempt 2/3"
    # Groups are boxes (loop, its three iterations, the condition taken, the exit handler's body), and edges
    # have arrows.
    kinds = driver.execute_script(
        "return Array.from(document.querySelectorAll('.kfp-graph g.kfp-group')).map(g => g.getAttribute('class'))")
    assert sorted(kinds) == sorted(f"kfp-group kfp-group-{group['kind']}" for group in graph["groups"])
    assert len(driver.find_elements(By.CSS_SELECTOR, ".kfp-graph path.kfp-edge")) == len(graph["edges"])
    assert "Run succeeded" in driver.find_element(By.CSS_SELECTOR, ".kfp-graph-status").text
    # A click selects a node and fires the event with its ids; so does Enter on a focused node.
    first = next(node for node in graph["nodes"] if node["display_name"] == "first")
    driver.find_element(By.CSS_SELECTOR, f'g.kfp-node[data-node-id="{first["id"]}"]').click()
    events = wait_for(driver, "return window.kfpEvents.length && window.kfpEvents")
    assert events == [{"run_id": run_id, "version_id": None, "node_id": first["id"], "pod_id": first["pod_id"]}]
    flaky_node = next(node for node in graph["nodes"] if node["display_name"] == "flaky")
    element = driver.find_element(By.CSS_SELECTOR, f'g.kfp-node[data-node-id="{flaky_node["id"]}"]')
    element.send_keys(Keys.ENTER)
    events = wait_for(driver, "return window.kfpEvents.length === 2 && window.kfpEvents")
    assert events[1]["node_id"] == flaky_node["id"] and events[1]["pod_id"] == flaky_node["attempts"][-1]["id"]
    assert "kfp-selected" in element.get_attribute("class")
    driver.save_screenshot(str(tmp_path / "run-graph.png"))  # under the test output, for a look


def test_a_live_run_updates_in_place_and_polling_stops_when_it_ends(
    client: FlaskClient, browser: tuple[Any, str],
) -> None:
    driver, base_url = browser
    run_id = create_run(client, pipelines.chain_manifest(3, sleep=4))
    driver.get(f"{base_url}/test-graph/runs/{run_id}")
    wait_for(driver, "return document.querySelector('.kfp-graph').getAttribute('data-graph-state') === 'live'")
    # Every step is drawn from the start, the ones not started yet as planned.
    assert len(driver.execute_script(DRAWN_NODES)) == 3
    driver.execute_script("document.querySelector('.kfp-graph svg').kfpMark = 'first drawing'")
    running = wait_for(driver, """
        var node = Array.from(document.querySelectorAll('.kfp-graph g.kfp-node'))
          .find(n => n.querySelector('.kfp-node-name').textContent === 'step-1');
        return node && node.getAttribute('data-phase') === 'Running'
          && node.querySelector('.kfp-node-phase').textContent;
    """)
    assert running == "Running"
    wait_for(driver, "return document.querySelector('.kfp-graph').getAttribute('data-graph-state') === 'final'",
             timeout=60)
    phases = {node["name"]: node["state"] for node in driver.execute_script(DRAWN_NODES)}
    assert phases == {"step-0": "Succeeded", "step-1": "Succeeded", "step-2": "Succeeded"}
    # Same structure: phases changed in the first drawing, no new one.
    assert driver.execute_script("return document.querySelector('.kfp-graph svg').kfpMark") == "first drawing"
    updated = driver.execute_script("return document.querySelector('.kfp-graph').getAttribute('data-graph-updated')")
    time.sleep(2.5)  # longer than the poll interval: a finished run is not asked for again
    assert driver.execute_script(
        "return document.querySelector('.kfp-graph').getAttribute('data-graph-updated')") == updated


def test_nodes_that_appear_are_laid_out_again_and_the_selection_is_kept(
    client: FlaskClient, browser: tuple[Any, str],
) -> None:
    from selenium.webdriver.common.by import By

    driver, base_url = browser
    run_id = create_run(client, pipelines.items_later_manifest(sleep=4))
    driver.get(f"{base_url}/test-graph/runs/{run_id}")
    wait_for(driver, "return document.querySelector('.kfp-graph').getAttribute('data-graph-state') === 'live'")
    # Before its items are known, the loop is one node.
    drawn = {node["name"]: node for node in driver.execute_script(DRAWN_NODES)}
    assert set(drawn) == {"make-items", "for-loop-1"}, drawn
    assert drawn["for-loop-1"]["state"] == "Pending \u00b7 loop"
    driver.execute_script("document.querySelector('.kfp-graph svg').kfpMark = 'first drawing'")
    driver.find_element(By.CSS_SELECTOR, f'g.kfp-node[data-node-id="{drawn["make-items"]["id"]}"]').click()
    wait_for(driver, "return document.querySelector('.kfp-graph').getAttribute('data-graph-state') === 'final'",
             timeout=60)
    drawn = {node["name"]: node for node in driver.execute_script(DRAWN_NODES)}
    assert set(drawn) == {"make-items", "use-item(0:1)", "use-item(1:2)"}, drawn
    assert {node["state"] for node in drawn.values()} == {"Succeeded"}
    assert driver.execute_script("return document.querySelector('.kfp-graph svg').kfpMark") is None
    selected = driver.find_element(By.CSS_SELECTOR, f'g.kfp-node[data-node-id="{drawn["make-items"]["id"]}"]')
    assert "kfp-selected" in selected.get_attribute("class")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".kfp-graph g.kfp-group-loop")) == 1
