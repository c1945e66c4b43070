"""The run page and the pipeline version page with their graphs, in a real headless Chromium against a live
`kfp-backend serve` with runs made by the kfp 1.8.22 client: the graph is drawn under the pages' strict
Content-Security-Policy (no inline script or style, no eval), a node clicked (or Enter) opens its pod in the
node panel (a retried step: its latest attempt, with every attempt), a running run's graph changes in place
without a reload, a loop is a group, a KFP v2 (IR) run is drawn, and a version's graph is drawn from its spec.
Screenshots go to test-output/ui-screenshots/ (run-graph.png is docs/images/ui-run.png).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.helpers import kfp_client_for
from tests.e2e.run_checks import wait_for_run
from tests.e2e.servers import live_server
from tests.ui.pipelines import compile_to, gate_path, gated_pipeline, showcase, train_pipeline
from tests.ui.test_browser import find, shot, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.ui]
WAIT_SECONDS = 30


@dataclass
class World:
    url: str
    showcase_run: str
    pipeline_id: str
    workdir: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A single-user server with a finished run of the showcase pipeline (a loop, a retried step)."""
    workdir = tmp_path_factory.mktemp("ui-run-graph")
    marker = f"ui-showcase-{uuid.uuid4().hex}"
    with live_server(workdir) as url, kfp_client_for(url, workdir) as client:
        pipeline = client.upload_pipeline(str(compile_to(train_pipeline, workdir / "train.yaml")),
                                          pipeline_name="ui-graph-train")
        run_id = client.create_run_from_pipeline_package(
            str(compile_to(showcase(marker), workdir / "showcase.yaml")), {}, run_name="nightly-training",
            experiment_name="ui-graph").run_id
        assert wait_for_run(client, run_id).run.status == "Succeeded"
        try:
            yield World(url, run_id, pipeline.id, workdir)
        finally:
            Path("/var/tmp", marker).unlink(missing_ok=True)


def until(browser: Any, script: str, *args: Any) -> Any:
    """The value of `script` (JS returning a value) once truthy."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.execute_script(script, *args), f"never true: {script}")


DRAWN = """return Array.from(document.querySelectorAll('#{graph} g.kfp-node')).map(node => ({{
  id: node.getAttribute('data-node-id'), name: node.querySelector('.kfp-node-name').textContent,
  state: node.querySelector('.kfp-node-phase').textContent, cls: node.getAttribute('class')}}));"""


def drawn(browser: Any, graph: str = "run-graph") -> dict[str, dict[str, str]]:
    return {node["name"]: node for node in browser.execute_script(DRAWN.format(graph=graph))}


def graph_final(browser: Any, graph: str = "run-graph") -> None:
    until(browser, f"return document.getElementById('{graph}').getAttribute('data-graph-state') === 'final'")


def node(browser: Any, name: str) -> Any:
    return find(browser, f'#run-graph g.kfp-node[data-node-id="{drawn(browser)[name]["id"]}"]')


def csp_violations(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser")
            if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"]


def test_the_run_page_draws_its_graph_under_a_strict_csp(browser: Any, world: World) -> None:
    policy = requests.get(world.url + f"/runs/{world.showcase_run}", timeout=10).headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy  # no unsafe-inline, no unsafe-eval
    assert "unsafe" not in policy
    browser.get(world.url + f"/runs/{world.showcase_run}")
    graph_final(browser)
    names = drawn(browser)
    assert {"prepare", "train(0:small)", "train(1:medium)", "train(2:large)", "upload", "report"} <= set(names)
    assert all(n["state"].startswith("Succeeded") for n in names.values())  # the phase as text
    # graph.css applied (a stylesheet, not an injected <style>): a succeeded node is filled green.
    fill = browser.execute_script(
        "return getComputedStyle(document.querySelector('#run-graph g.kfp-node rect.kfp-box')).fill")
    assert fill == "rgb(230, 244, 234)"
    assert csp_violations(browser) == []  # dagre lays out without eval; no style was refused
    # The manifest is loaded when its section opens, as YAML.
    find(browser, "#manifest summary").click()
    assert "kind: Workflow" in wait_for(browser, "#manifest pre", "kind: Workflow").text


def test_a_loop_is_a_group_and_a_retried_step_opens_its_latest_attempt(
    browser: Any, world: World, screenshots: Path
) -> None:
    browser.get(world.url + f"/runs/{world.showcase_run}")
    graph_final(browser)
    # The loop is a box around its three iterations.
    loop = find(browser, "#run-graph g.kfp-group-loop")
    assert "for-loop" in loop.text and "Succeeded" in loop.text
    inside = browser.execute_script("""
        const box = document.querySelector('#run-graph g.kfp-group-loop rect').getBBox();
        return Array.from(document.querySelectorAll('#run-graph g.kfp-node')).filter(n => {
          const m = n.transform.baseVal[0].matrix;
          return m.e >= box.x && m.e <= box.x + box.width && m.f >= box.y && m.f <= box.y + box.height;
        }).map(n => n.querySelector('.kfp-node-name').textContent).sort();""")
    assert inside == ["train(0:small)", "train(1:medium)", "train(2:large)"]
    # The retry is visible on the node; a click opens the latest attempt, and the panel lists every attempt.
    assert drawn(browser)["upload"]["state"] == "Succeeded \u00b7 attempt 2/3"
    node(browser, "upload").click()
    panel = wait_for(browser, "#node-panel", "Attempts of upload (2)")
    assert "Step upload(1)" in panel.text
    wait_for(browser, "#node-log", "upload attempt 2")
    assert "kfp-selected" in drawn(browser)["upload"]["cls"]
    attempts = [b.text for b in browser.find_elements("css selector", "#node-panel [data-attempt-id]")]
    assert attempts == ["Attempt 1 Failed", "Attempt 2 Succeeded"]
    assert find(browser, "#node-panel [data-attempt-id][aria-pressed=true]").text.startswith("Attempt 2")
    shot(browser, screenshots, "run-graph")  # docs/images/ui-run.png
    # The first attempt, with its own log and message; the graph keeps the retried step selected.
    find(browser, "#node-panel [data-attempt-id]").click()
    wait_for(browser, "#node-log", "the store was busy")
    assert "Step upload(0)" in find(browser, "#node-panel").text
    assert "kfp-selected" in drawn(browser)["upload"]["cls"]


def test_the_keyboard_selects_graph_nodes_and_zooms(browser: Any, world: World) -> None:
    from selenium.webdriver.common.keys import Keys

    browser.get(world.url + f"/runs/{world.showcase_run}")
    graph_final(browser)
    node(browser, "prepare").send_keys(Keys.ARROW_DOWN)  # the arrow keys move between nodes
    focused = browser.switch_to.active_element
    assert focused.get_attribute("data-node-id") != drawn(browser)["prepare"]["id"]
    assert focused.get_attribute("data-node-id") in {n["id"] for n in drawn(browser).values()}
    width = browser.execute_script("return document.querySelector('#run-graph svg').getAttribute('width')")
    focused.send_keys("+")
    until(browser, "return document.querySelector('#run-graph svg').getAttribute('width') !== arguments[0]", width)
    node(browser, "report").send_keys(Keys.ENTER)
    wait_for(browser, "#node-panel", "Step report")
    wait_for(browser, "#node-log", "all models trained")


def test_a_running_runs_graph_changes_in_place_without_a_reload(
    browser: Any, world: World, tmp_path: Path, screenshots: Path
) -> None:
    marker = f"ui-gated-{uuid.uuid4().hex}"
    try:
        with kfp_client_for(world.url, tmp_path) as client:
            run_id = client.create_run_from_pipeline_package(
                str(compile_to(gated_pipeline(marker), tmp_path / "gated.yaml")), {}, run_name="gated-run",
                experiment_name="ui-graph").run_id
            browser.get(world.url + f"/runs/{run_id}")
            until(browser, "return document.getElementById('run-graph').getAttribute('data-graph-state') === 'live'")
            wait_for(browser, "#run-graph g.kfp-node", "Running")
            assert drawn(browser)["wait-second"]["state"] == "Pending"  # planned, drawn from the spec
            assert "kfp-planned" in drawn(browser)["wait-second"]["cls"]
            # Marks on this page and this drawing: a reload or a new drawing would lose them.
            browser.execute_script("window.kfpMark = 'this page'; "
                                   "document.querySelector('#run-graph svg').kfpMark = 'first drawing';")
            node(browser, "wait-first").click()
            wait_for(browser, "#node-log", "waiting for gate 1")
            shot(browser, screenshots, "run-graph-running")
            # A keyboard user on the step list keeps the focus while the list refreshes.
            wait_for(browser, "#step-list button", "wait-first").send_keys("")
            first_id = drawn(browser)["wait-first"]["id"]
            assert browser.switch_to.active_element.get_attribute("data-node-id") == first_id
            gate_path(marker, 1).touch()
            until(browser, """const n = Array.from(document.querySelectorAll('#run-graph g.kfp-node'))
                .find(n => n.querySelector('.kfp-node-name').textContent === 'wait-second');
                return n && n.getAttribute('data-phase') === 'Running';""")
            assert drawn(browser)["wait-first"]["state"] == "Succeeded"
            assert browser.execute_script("return window.kfpMark") == "this page"
            assert browser.execute_script("return document.querySelector('#run-graph svg').kfpMark") == "first drawing"
            wait_for(browser, "#node-log", "gate 1 open")  # the panel followed its step too
            wait_for(browser, "#node-panel dd", "Succeeded")
            wait_for(browser, "#step-list", "wait-second Running")  # the list changed (a step appeared) ...
            focused = browser.switch_to.active_element  # ... and the focus is where it was
            assert focused.get_attribute("data-node-id") == first_id and "Succeeded" in focused.text
            gate_path(marker, 2).touch()
            assert wait_for_run(client, run_id).run.status == "Succeeded"
        # The end of the run reloads the page once (final status, metrics, actions), the step kept open.
        wait_for(browser, "h1", "Succeeded")
        graph_final(browser)
        assert {n["state"] for n in drawn(browser).values()} == {"Succeeded"}
        wait_for(browser, "#node-panel", "Step wait-first")
        assert "kfp-selected" in drawn(browser)["wait-first"]["cls"]  # the #node= link marks it in the graph
    finally:
        for gate in (1, 2):
            gate_path(marker, gate).unlink(missing_ok=True)


def test_a_kfp_v2_runs_graph(browser: Any, world: World, screenshots: Path) -> None:
    """A KFP v2 pipeline spec (IR) run: exit handler, loop, conditions and a retry drawn; a node opens."""
    from tests import ir_pipelines as ir
    from tests.ui.graph_pipelines import ir_shapes

    created = requests.post(world.url + "/apis/v1beta1/runs", json={
        "name": "ir-graph-run", "pipeline_spec": {"workflow_manifest": ir.manifest(ir_shapes())}}, timeout=30)
    assert created.status_code == 200, created.text
    run_id = created.json()["run"]["id"]
    browser.get(world.url + f"/runs/{run_id}")
    wait_for(browser, "h1", "Succeeded")
    graph_final(browser)
    kinds = browser.execute_script(
        "return Array.from(document.querySelectorAll('#run-graph g.kfp-group')).map(g => g.getAttribute('class'))")
    assert any("kfp-group-loop" in k for k in kinds) and any("kfp-group-exit_handler" in k for k in kinds)
    assert any("kfp-group-condition" in k for k in kinds)
    names = drawn(browser)
    assert names["flaky"]["state"] == "Succeeded \u00b7 attempt 2/3"
    assert {"first", "square(0)", "square(1)", "square(2)", "final"} <= set(names)
    node(browser, "flaky").click()
    wait_for(browser, "#node-panel", "Attempts of flaky (2)")
    node(browser, "first").click()
    wait_for(browser, "#node-panel", "Step first")
    wait_for(browser, "#node-log", "first")
    shot(browser, screenshots, "run-graph-v2")


def test_the_pipeline_version_page_draws_the_versions_graph(
    browser: Any, world: World, screenshots: Path
) -> None:
    browser.get(world.url + f"/pipelines/{world.pipeline_id}")
    graph_final(browser, "version-graph")
    names = drawn(browser, "version-graph")
    assert set(names) == {"train", "evaluate"}
    assert len(browser.find_elements("css selector", "#version-graph path.kfp-edge")) == 1
    assert csp_violations(browser) == []
    shot(browser, screenshots, "pipeline-graph")
