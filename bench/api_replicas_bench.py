"""ListRuns throughput of `kfp-backend serve --workers N` (gunicorn) on PostgreSQL: 1 worker versus 4.

Seeds --rows runs in one experiment (plus --noise-runs elsewhere) into a fresh PostgreSQL database exactly as
`list_runs_bench.py` does (5-20 KB manifests, 30% of runs with metrics), then for each --workers count starts a
real `python -m kfp_backend serve --workers N` (API only: executor and scheduler off, as the seeded "Running"
runs must not be claimed) and lets --clients concurrent keep-alive clients (one requests.Session per thread)
call what kfp's `Client.list_runs(experiment_id=X, page_size=50, sort_by="created_at desc")` sends, as fast as
they can for --duration seconds after --warmup. Each client walks the first --pages pages (following
next_page_token), then starts again. Prints requests/s, latency percentiles and CPU use of the server's process
tree and of the clients (they share the machine's cores: on a small machine the clients take a good share).
`--workers 0` measures the one-process server (waitress) for comparison.

    .venv/bin/python bench/api_replicas_bench.py                                  # 100k runs, 1 vs 4 workers
    .venv/bin/python bench/api_replicas_bench.py --workers 0,1,4 --clients 32 --duration 30
    .venv/bin/python bench/api_replicas_bench.py --rows 2000 --noise-runs 0 --duration 3 --warmup 1   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from list_bench import DEFAULT_POSTGRES_URL, SORT_BY, fresh_database
from list_runs_bench import analyze, seed_runs, table_sizes
from rps_bench import free_port
from sqlalchemy import create_engine, pool

API = "/apis/v1beta1"
REPO_ROOT = Path(__file__).resolve().parents[1]


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of `root` and every live process below it (/proc, Linux)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += stats.get(pid, (0, 0.0))[1]
        stack += [child for child, (parent, _) in stats.items() if parent == pid]
    return total


def wait_until_up(base: str, server: subprocess.Popen, timeout: float) -> None:
    """gunicorn listens before its workers have loaded the app: a connection may wait, so any error retries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            if requests.get(f"{base}{API}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server did not answer within {timeout} s")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client(base: str, experiment_id: str, pages: int, start: threading.Barrier, window: list[float],
           latencies: list[float], errors: list[str]) -> None:
    params = {"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": experiment_id,
              "page_size": "50", "sort_by": SORT_BY}
    with requests.Session() as session:
        start.wait()
        token, page = "", 0
        while True:
            began = time.perf_counter()
            if began >= window[1]:
                return
            try:
                response = session.get(f"{base}{API}/runs", params={**params, "page_token": token}, timeout=60)
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}")
                    token, page = "", 0
                    continue
                token = response.json().get("next_page_token", "")
            except requests.RequestException as exc:
                errors.append(type(exc).__name__)
                token, page = "", 0
                continue
            ended = time.perf_counter()
            if window[0] <= began and ended <= window[1]:
                latencies.append((ended - began) * 1000)
            page += 1
            if page >= pages or not token:
                token, page = "", 0


def measure(workers: int, database_url: str, experiment_id: str, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="kfpb-replicas-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "kfp_backend", "serve", "--port", str(port), "--data-dir", str(data_dir),
               "--database-url", database_url, "--no-migrate", "--log-level", "WARNING",
               "--workers", str(workers), "--threads", str(args.threads)]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KFP_BACKEND_")},
           "KFP_BACKEND_EXECUTOR_ENABLED": "false", "KFP_BACKEND_SCHEDULER_ENABLED": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(base, server, timeout=120)
        latencies: list[list[float]] = [[] for _ in range(args.clients)]
        errors: list[str] = []
        barrier = threading.Barrier(args.clients + 1)
        window = [float("inf"), float("inf")]
        threads = [threading.Thread(target=client, args=(base, experiment_id, args.pages, barrier, window,
                                                         latencies[i], errors)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        window[0] = time.perf_counter() + args.warmup
        window[1] = window[0] + args.duration
        barrier.wait()
        time.sleep(max(window[0] - time.perf_counter(), 0))
        server_cpu, client_cpu, wall = tree_cpu_seconds(server.pid), own_cpu_seconds(), time.perf_counter()
        time.sleep(max(window[1] - time.perf_counter(), 0))
        server_cpu = tree_cpu_seconds(server.pid) - server_cpu
        client_cpu = own_cpu_seconds() - client_cpu
        wall = time.perf_counter() - wall
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    samples = sorted(x for per_client in latencies for x in per_client)
    if len(samples) < 2:
        raise SystemExit(f"workers={workers}: too few answers ({len(samples)}); errors {errors[:5]}; log {log_path}")

    def percentile(q: int) -> float:
        return round(statistics.quantiles(samples, n=100, method="inclusive")[q - 1], 1)

    return {"workers": workers, "server": "waitress" if workers == 0 else "gunicorn", "clients": args.clients,
            "requests": len(samples), "requests_per_s": round(len(samples) / args.duration, 1),
            "p50_ms": percentile(50), "p95_ms": percentile(95), "p99_ms": percentile(99), "errors": len(errors),
            "server_cpu_pct": round(100 * server_cpu / wall), "client_cpu_pct": round(100 * client_cpu / wall)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,4", help="comma list of web worker counts (0: one process, waitress)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--rows", type=int, default=100_000, help="runs in the listed experiment")
    parser.add_argument("--noise-experiments", type=int, default=4)
    parser.add_argument("--noise-runs", type=int, default=5_000, help="runs spread over the other experiments")
    parser.add_argument("--manifest-kb", default="5-20", help="size range of each run's manifests, in KiB")
    parser.add_argument("--metrics-share", type=float, default=0.3, help="share of runs with 1-3 metrics")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive client threads")
    parser.add_argument("--pages", type=int, default=3, help="pages each client follows before starting again")
    parser.add_argument("--threads", type=int, default=8, help="threads per web worker (serve --threads)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per worker count")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--seed", type=int, default=20240602)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    results: list[dict[str, Any]] = []
    with fresh_database("postgres", args) as backend:
        engine = create_engine(backend.url, poolclass=pool.NullPool)
        t0 = time.perf_counter()
        seeded = seed_runs(engine, random.Random(args.seed), args, int(time.time()) - 3600)
        analyze(engine, "postgres")
        seeded.update(table_sizes(engine, "postgres"))
        engine.dispose()
        print(f"[postgres] seeded in {time.perf_counter() - t0:.1f} s: {json.dumps(seeded)}", flush=True)
        for workers in (int(w) for w in args.workers.split(",") if w):
            result = measure(workers, backend.url, seeded["experiment_id"], args)
            results.append(result)
            print(f"[postgres] workers={workers}: {result['requests_per_s']} req/s", flush=True)

    print()
    print(f"ListRuns (EXPERIMENT key, page_size 50, {SORT_BY}, first {args.pages} pages) at {args.rows} runs on "
          f"PostgreSQL: {args.clients} keep-alive clients for {args.duration:g} s, {args.threads} threads per worker")
    header = ("workers", "server", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "server CPU",
              "client CPU")
    print("".join(f"{h:>11}" for h in header))
    for r in results:
        print("".join(f"{v:>11}" for v in (r["workers"], r["server"], r["requests"], r["requests_per_s"], r["p50_ms"],
                                            r["p95_ms"], r["p99_ms"], r["errors"], f"{r['server_cpu_pct']}%",
                                            f"{r['client_cpu_pct']}%")))
    by_workers = {r["workers"]: r for r in results}
    if 1 in by_workers and 4 in by_workers:
        print(f"4 workers / 1 worker: {by_workers[4]['requests_per_s'] / by_workers[1]['requests_per_s']:.2f}x "
              f"(this machine has {os.cpu_count()} cores, shared with the clients and PostgreSQL)")
    if args.json:
        args.json.write_text(json.dumps({"seeded": seeded, "results": results}, indent=1))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
