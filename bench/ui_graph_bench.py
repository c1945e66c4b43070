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

    .venv/bin/python bench/ui_graph_bench.py --repeat 5 --json /tmp/ui_graph.json
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shapes", default="loop,chains")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
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
    finally:
        shutdown(app)
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
