"""The run graph of the web UI with 200 steps: how long headless Chromium takes to draw it, and the JSON behind it.

Two finished runs of 200 steps, executed for real by an in-process server (SQLite, executor on), compiled by
kfp 1.8 at bench time:
- `loop`: one `dsl.ParallelFor` over 200 items (a loop group of 200 iteration groups, one step each: the
  heaviest compound layout);
- `chains`: 20 independent chains of 10 steps (200 nodes, 180 edges, no groups).
For each, a page holding only the graph div (tests/ui/browser.py) is opened `--repeat` times in headless
Chromium (Debian's chromium + chromium-driver, through selenium):
- first draw: from navigation start to the end of the first drawing (`data-graph-updated`, performance.now()),
  i.e. page load, dagre and graph.js, the JSON fetch, the layout and the SVG; target < 1000 ms;
- redraw: a full layout + drawing of the same JSON, in the page;
- update: what a poll of a live run with an unchanged structure costs the page (phases changed in place);
- JSON: GET /ui/api/runs/<id>/graph through the Flask test client (p50 of 20; the two queries included).

Then the UI's own run page, `/runs/<id>` (the server-rendered page with its graph, step list and node panel):
- run page: navigation start to the end of the graph's first drawing, for each finished run; target < 1000 ms;
- live: a `chains` run whose first step of every chain waits for a gate file, so the page is open on an active
  200-node run polling every 2 s (graph and step list). For --live-seconds with nothing changing, then for
  --live-seconds after the gate is opened (steps running and finishing: phases changing in place), the page
  records each graph update's duration (render of a poll), the Long Tasks (> 50 ms on the main thread) and
  the worst lag of a 50 ms timer (what a click would wait): "stays responsive" is no long task near a second,
  updates of a few ms.

    .venv/bin/python bench/ui_graph_bench.py --repeat 5 --json /tmp/ui_graph.json
    .venv/bin/python bench/ui_graph_bench.py --steps 40 --repeat 2 --live-seconds 4   # a quick check
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ui: the page and browser helpers

from kfp import dsl

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.store import migrations
from tests.exit_retry_pipelines import _sh, workflow_manifest
from tests.ui.browser import add_graph_page, browser_missing, chromium, served

API = "/apis/v1beta1"


def loop_manifest(steps: int) -> str:
    @dsl.pipeline(name="loop-200")
    def pipeline():
        with dsl.ParallelFor(list(range(steps))) as item:
            _sh("work", f"echo {item}")

    return workflow_manifest(pipeline)


def chains_manifest(steps: int, length: int = 10) -> str:
    @dsl.pipeline(name="chains-200")
    def pipeline():
        for chain in range(steps // length):
            previous = None
            for index in range(length):
                op = _sh(f"c{chain}-s{index}", "true")
                if previous is not None:
                    op.after(previous)
                previous = op

    return workflow_manifest(pipeline)


def run_to_the_end(client: Any, manifest: str, timeout: float = 600) -> str:
    response = client.post(f"{API}/runs", json={"name": "bench", "pipeline_spec": {"workflow_manifest": manifest}})
    assert response.status_code == 200, response.get_data(as_text=True)
    run_id = response.get_json()["run"]["id"]
    deadline = time.monotonic() + timeout
    while client.get(f"/ui/api/runs/{run_id}/graph").get_json()["active"]:
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} did not finish in {timeout} s")
        time.sleep(0.5)
    return run_id


def json_p50(client: Any, run_id: str, count: int = 20) -> tuple[float, int, int]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        graph = client.get(f"/ui/api/runs/{run_id}/graph").get_json()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), len(graph["nodes"]), len(graph["groups"])


PAGE_TIMES = """
var element = document.querySelector('.kfp-graph');
var graph = element.kfpGraph;
var started = performance.now();
graph.key = null;
graph.render(graph.data);
var redrawn = performance.now();
graph.render(graph.data);
var updated = performance.now();
return {first: Number(element.getAttribute('data-graph-drawn-first')), redraw: redrawn - started,
        update: updated - redrawn, nodes: element.querySelectorAll('g.kfp-node').length};
"""


def draw_times(driver: Any, url: str, repeat: int) -> list[dict[str, float]]:
    results = []
    for _ in range(repeat):
        driver.get("about:blank")
        driver.get(url)
        deadline = time.monotonic() + 60
        while not driver.execute_script(
                "var e = document.querySelector('.kfp-graph'); return e && e.getAttribute('data-graph-updated')"):
            if time.monotonic() > deadline:
                raise SystemExit("the graph was not drawn within 60 s")
            time.sleep(0.02)
        driver.execute_script(
            "var e = document.querySelector('.kfp-graph');"
            "e.setAttribute('data-graph-drawn-first', e.getAttribute('data-graph-updated'));")
        results.append(driver.execute_script(PAGE_TIMES))
    return results


def run_page_first_draw(driver: Any, url: str, repeat: int) -> list[float]:
    """Navigation start to the end of the first drawing of the run page's graph (ms), `repeat` times."""
    times = []
    for _ in range(repeat):
        driver.get("about:blank")
        driver.get(url)
        deadline = time.monotonic() + 60
        while True:
            drawn = driver.execute_script(
                "var e = document.getElementById('run-graph'); return e && e.getAttribute('data-graph-updated')")
            if drawn:
                times.append(float(drawn))
                break
            if time.monotonic() > deadline:
                raise SystemExit("the run page's graph was not drawn within 60 s")
            time.sleep(0.02)
    return times


def gated_chains_manifest(steps: int, gate: Path, length: int = 10) -> str:
    """`chains_manifest`, the first step of every chain waiting for `gate`, the others sleeping a second (the
    run stays active for a while once the gate opens)."""
    @dsl.pipeline(name="gated-chains")
    def pipeline():
        for chain in range(steps // length):
            previous = None
            for index in range(length):
                script = f"while [ ! -e {gate} ]; do sleep 0.5; done" if index == 0 else "sleep 1"
                op = _sh(f"c{chain}-s{index}", script)
                if previous is not None:
                    op.after(previous)
                previous = op

    return workflow_manifest(pipeline)


# Installed in the run page once its graph is drawn: times every graph update, records Long Tasks and the
# worst lag of a 50 ms timer.
LIVE_PROBE = """
var graph = document.getElementById('run-graph').kfpGraph;
var probe = window.kfpBench = {renders: [], long: [], lag: 0,
  longtasks: PerformanceObserver.supportedEntryTypes.indexOf('longtask') >= 0};
var render = graph.render.bind(graph);
graph.render = function (data) {
  var started = performance.now(); render(data); probe.renders.push(performance.now() - started);
};
new PerformanceObserver(function (list) {
  list.getEntries().forEach(function (entry) { probe.long.push(entry.duration); });
}).observe({type: 'longtask'});
var expected = performance.now() + 50;
setInterval(function () {
  var now = performance.now(); probe.lag = Math.max(probe.lag, now - expected); expected = now + 50;
}, 50);
"""
TAKE_PROBE = """
var probe = window.kfpBench; var taken = {renders: probe.renders, long: probe.long, lag: probe.lag,
  longtasks: probe.longtasks,
  nodes: document.querySelectorAll('#run-graph g.kfp-node').length,
  running: document.querySelectorAll('#run-graph g.kfp-node[data-phase=Running]').length};
probe.renders = []; probe.long = []; probe.lag = 0;
return taken;
"""


def live_figures(client: Any, driver: Any, base_url: str, steps: int, seconds: float) -> dict[str, Any]:
    gate = Path(tempfile.mkdtemp(prefix="kfpb-ui-gate-")) / "open"
    response = client.post(f"{API}/runs", json={"name": "bench-live", "pipeline_spec": {
        "workflow_manifest": gated_chains_manifest(steps, gate)}})
    assert response.status_code == 200, response.get_data(as_text=True)
    run_id = response.get_json()["run"]["id"]
    figures: dict[str, Any] = {"run_id": run_id}
    try:
        driver.get("about:blank")
        driver.get(f"{base_url}/runs/{run_id}")
        deadline = time.monotonic() + 60
        while driver.execute_script("var e = document.getElementById('run-graph');"
                                    "return !(e && e.getAttribute('data-graph-state') === 'live')"):
            if time.monotonic() > deadline:
                raise SystemExit("the live run's graph was not drawn within 60 s")
            time.sleep(0.05)
        driver.execute_script(LIVE_PROBE)
        for phase in ("waiting", "running"):
            if phase == "running":
                gate.touch()
            time.sleep(seconds)
            taken = driver.execute_script(TAKE_PROBE)
            figures[phase] = taken
            renders = taken["renders"] or [0.0]
            print(f"live {phase:8} {taken['nodes']:4d} nodes ({taken['running']:3d} running): "
                  f"{len(taken['renders'])} updates, p50 {statistics.median(renders):.1f} ms, "
                  f"max {max(renders):.1f} ms;"
                  f" long tasks {len(taken['long']) if taken['longtasks'] else 'n/a'}"
                  f" (max {max(taken['long'] or [0]):.0f} ms);"
                  f" worst timer lag {taken['lag']:.0f} ms", flush=True)
    finally:
        gate.touch()  # let the run end
        shutil.rmtree(gate.parent, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shapes", default="loop,chains")
    parser.add_argument("--live-seconds", type=float, default=10, help="each window of the live run page (0: skip)")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request of the pages
    missing = browser_missing()
    if missing:
        raise SystemExit(f"no browser: {missing}")
    directory = Path(tempfile.mkdtemp(prefix="kfpb-ui-graph-"))
    url = f"sqlite:///{directory / 'bench.db'}"
    migrations.upgrade(url)
    settings = Settings(database_url=url, data_dir=directory / "data", executor_enabled=True, scheduler_enabled=False,
                        log_level="WARNING")
    app = create_app(settings)
    add_graph_page(app)
    figures: dict[str, Any] = {}
    try:
        client = app.test_client()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            manifests = {"loop": loop_manifest, "chains": chains_manifest}
            runs = {shape: run_to_the_end(client, manifests[shape](args.steps)) for shape in args.shapes.split(",")}
        with served(app) as base_url, chromium() as driver:
            print(f"{'shape':8} {'nodes':>5} {'groups':>6} {'JSON p50':>9} {'first draw p50/max':>19} "
                  f"{'redraw p50':>10} {'update p50':>10}")
            for shape, run_id in runs.items():
                p50, nodes, groups = json_p50(client, run_id)
                times = draw_times(driver, f"{base_url}/test-graph/runs/{run_id}", args.repeat)
                first = [t["first"] for t in times]
                redraw = statistics.median(t["redraw"] for t in times)
                update = statistics.median(t["update"] for t in times)
                figures[shape] = {"run_id": run_id, "nodes": nodes, "groups": groups, "json_p50_ms": p50,
                                  "pages": times}
                print(f"{shape:8} {nodes:5d} {groups:6d} {p50:7.1f}ms {statistics.median(first):8.0f}/"
                      f"{max(first):.0f} ms {redraw:8.0f}ms {update:8.1f}ms")
            for shape, run_id in runs.items():
                page = run_page_first_draw(driver, f"{base_url}/runs/{run_id}", args.repeat)
                figures[shape]["run_page_first_draw_ms"] = page
                print(f"run page /runs/<id> ({shape}): graph drawn {statistics.median(page):.0f} ms p50, "
                      f"{max(page):.0f} ms max after navigation", flush=True)
            if args.live_seconds > 0:
                figures["live"] = live_figures(client, driver, base_url, args.steps, args.live_seconds)
    finally:
        shutdown(app)
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
