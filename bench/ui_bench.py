"""The web UI's runs page at 100k runs, in headless Chromium: time from navigation to the page shown.

Seeds --rows runs (list_runs_bench.py's seeding: realistic manifests, 30% with metrics) into a fresh
database, starts a real `kfp-backend serve` on it (executor and scheduler off), and opens each case in
Debian's headless Chromium (selenium) --samples times after --warmup, reading the browser's Navigation
Timing: `shown` is domContentLoadedEventEnd (the table is rendered by the server, so the first page is on
screen then), `load` is loadEventEnd; both from the start of navigation. Target: the first page of runs
shown in < 500 ms.

Cases: the first page of /runs (page size 25, created_at desc, not archived); a page ~--depth pages deep
(following the page's "Next page" token); a name filter; the metric column sorted by the metric; sorted by
Duration (longest first: the active runs, then the finished ones) and by Pipeline (the seeded runs get one of
256 pipeline names), each also ~--depth pages deep, and the experiment page (all the runs are in its one
experiment) sorted by each. `--cases` picks some by a word of their label (`--cases duration,pipeline`).

    .venv/bin/python bench/ui_bench.py                                   # SQLite, 100k runs
    .venv/bin/python bench/ui_bench.py --backends sqlite,postgres --json /tmp/ui.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from html import unescape
from pathlib import Path
from typing import Any

import requests
from list_bench import DEFAULT_MYSQL_URL, DEFAULT_POSTGRES_URL, fresh_database, percentile
from list_runs_bench import analyze, seed_runs
from sqlalchemy import String, create_engine, func, literal, pool, update

from kfp_backend.store.models import Run

REPO = Path(__file__).resolve().parents[1]
NEXT_LINK = re.compile(r'<a href="([^"]+)" rel="next">')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(url: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_BACKEND_")}
    env.update(KFP_BACKEND_EXECUTOR_ENABLED="false", KFP_BACKEND_SCHEDULER_ENABLED="false", PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "kfp_backend", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(workdir), "--database-url", url],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/apis/v1beta1/healthz", timeout=2).status_code == 200:
                return process, base
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def deep_path(base: str, depth: int, path: str = "/runs") -> str:
    """The URL of the page `depth` pages on from `path`, found by following "Next page" links."""
    for _ in range(depth):
        match = NEXT_LINK.search(requests.get(base + path, timeout=30).text)
        if match is None:
            break
        path = unescape(match.group(1))
    return path


def timed(driver: Any, url: str, samples: int, warmup: int) -> dict[str, Any]:
    shown, loaded = [], []
    for i in range(warmup + samples):
        driver.get(url)
        timing = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return [n.domContentLoadedEventEnd - n.startTime, n.loadEventEnd - n.startTime,"
            " document.querySelectorAll('table.runs tbody tr').length];")
        if i >= warmup:
            shown.append(timing[0])
            loaded.append(timing[1])
    return {"shown_p50": statistics.median(shown), "shown_p95": percentile(shown, 95),
            "load_p50": statistics.median(loaded), "rows_on_page": timing[2]}


def run_backend(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with fresh_database(kind, args) as backend:
        engine = create_engine(backend.url, poolclass=pool.NullPool)
        seed_args = argparse.Namespace(rows=args.rows, noise_experiments=0, noise_runs=0, manifest_kb=args.manifest_kb,
                                       metrics_share=0.3)
        t0 = time.perf_counter()
        seeded = seed_runs(engine, random.Random(args.seed), seed_args, int(time.time()) - 3600)
        with engine.begin() as connection:  # 256 pipelines, from the first two hex digits of the run id
            connection.execute(update(Run).values(
                pipeline_name=literal("pipeline-", String).concat(func.substr(Run.id, 1, 2))))
        analyze(engine, kind)
        engine.dispose()
        print(f"[{kind}] seeded {seeded['rows']} runs in {time.perf_counter() - t0:.0f} s", flush=True)
        workdir = Path(tempfile.mkdtemp(prefix="kfpb-ui-bench-"))
        process, base = serve(backend.url, workdir)
        driver = browser()
        try:
            experiment = f"/experiments/{seeded['experiment_id']}"
            paths = {
                "first page": lambda: "/runs",
                f"page ~{args.depth} deep": lambda: deep_path(base, args.depth),
                "name filter": lambda: "/runs?name=run-0001",
                "sorted by a metric": lambda: "/runs?metrics=accuracy&sort=metric:accuracy&desc=1",
                "sorted by duration": lambda: "/runs?sort=duration&desc=1",
                f"sorted by duration, ~{args.depth} deep":
                    lambda: deep_path(base, args.depth, "/runs?sort=duration&desc=1"),
                "sorted by pipeline": lambda: "/runs?sort=pipeline_name&desc=0",
                f"sorted by pipeline, ~{args.depth} deep":
                    lambda: deep_path(base, args.depth, "/runs?sort=pipeline_name&desc=0"),
                "experiment page sorted by duration": lambda: experiment + "?sort=duration&desc=0",
                "experiment page sorted by pipeline": lambda: experiment + "?sort=pipeline_name&desc=1",
            }
            wanted = [word for word in args.cases.split(",") if word]
            cases = {label: path() for label, path in paths.items()
                     if not wanted or any(word in label for word in wanted)}
            for label, path in cases.items():
                figures = timed(driver, base + path, args.samples, args.warmup)
                figures.update(backend=kind, case=label, rows=args.rows)
                results.append(figures)
                print(f"[{kind}] {label}: shown p50 {figures['shown_p50']:.0f} ms, p95 {figures['shown_p95']:.0f} ms, "
                      f"load p50 {figures['load_p50']:.0f} ms ({figures['rows_on_page']} rows)", flush=True)
        finally:
            driver.quit()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--manifest-kb", default="2-5", help="size range of each run's manifests, in KiB")
    parser.add_argument("--depth", type=int, default=100, help="pages to follow for the deep page")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--cases", default="", help="comma-separated words: only the cases whose label has one")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = [r for kind in args.backends.split(",") if kind for r in run_backend(kind, args)]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
