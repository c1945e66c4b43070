"""Batch status latency at 100k runs: `POST /apis/v1beta1/runs:batchGetStatus` for 200 runs, and for 200 nodes,
through the real app (target: p95 < 25 ms for 200 runs).

Seeds the runs exactly as `list_runs_bench.py` does (its `seed_runs`: --rows runs in one experiment with 5-20 KB
manifests, metrics for 30%, plus --noise-runs elsewhere), then node rows for --node-runs of them (--nodes-per-run
each, Argo-shaped JSON of about 1 KB with output parameters and artifacts). Each timed request asks for 200 ids
drawn at random from the whole table (so most are cold in the database's cache, as a client polling its own
runs would find them), through `app.test_client()`; p50/p95/p99 and the SQL statements each request sent.

    .venv/bin/python bench/batch_status_bench.py                                  # SQLite + PostgreSQL
    .venv/bin/python bench/batch_status_bench.py --backends sqlite --rows 5000 --samples 50   # a quick check
    .venv/bin/python bench/batch_status_bench.py --backends sqlite,postgres,mysql --json /tmp/batch.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from list_bench import DEFAULT_MYSQL_URL, DEFAULT_POSTGRES_URL, batched, fresh_database, percentile
from list_runs_bench import analyze, background_off, seed_runs
from sqlalchemy import create_engine, event, insert, pool, select

from kfp_backend.app import create_app
from kfp_backend.config import Settings
from kfp_backend.store.models import Run, RunNode

PATH = "/apis/v1beta1/runs:batchGetStatus"
ENTRIES = 200


def node_data(run_id: str, node_id: str, rng: random.Random) -> dict[str, Any]:
    return {
        "id": node_id, "name": f"wf.step-{node_id[-4:]}", "displayName": f"step-{node_id[-4:]}", "type": "Pod",
        "phase": "Succeeded", "templateName": "step", "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:01:00Z", "exitCode": "0",
        "outputs": {
            "parameters": [{"name": "step-accuracy", "value": f"{rng.random():.6f}",
                            "valueFrom": {"path": "/tmp/outputs/accuracy/data"}}],
            "artifacts": [
                {"name": "mlpipeline-metrics", "path": "/tmp/outputs/mlpipeline-metrics/data",
                 "s3": {"key": f"artifacts/{run_id}/{node_id}/mlpipeline-metrics.tgz"}},
                {"name": "step-model", "path": "/tmp/outputs/model/data",
                 "s3": {"key": f"artifacts/{run_id}/{node_id}/step-model.tgz"}},
            ],
        },
        "inputs": {"parameters": [{"name": "dataset", "value": "gs://bench/" + "x" * 200}]},
        "_log_path": f"/var/lib/kfp-backend/runs/{run_id}/{node_id}/log", "_attempt": 1,
    }


def seed_nodes(engine: Any, rng: random.Random, run_ids: list[str], per_run: int) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    rows = []
    for run_id in run_ids:
        for k in range(per_run):
            node_id = f"wf-{run_id[:8]}-{1000 + k}"
            pairs.append((run_id, node_id))
            rows.append({"run_id": run_id, "node_id": node_id, "phase": "Succeeded",
                         "data": json.dumps(node_data(run_id, node_id, rng), separators=(",", ":"))})
    with engine.begin() as connection:
        for part in batched(rows, 1000):
            connection.execute(insert(RunNode.__table__), part)
    return pairs


class StatementCounter:
    def __init__(self, engine: Any) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


def time_case(client: Any, counter: StatementCounter, bodies: list[dict], warmup: int) -> dict[str, Any]:
    samples: list[float] = []
    statements: set[int] = set()
    for i, body in enumerate(bodies):
        before = counter.count
        t0 = time.perf_counter()
        response = client.post(PATH, json=body)
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            return {"error": f"HTTP {response.status_code}: {response.get_data(as_text=True)[:200]}"}
        answer = response.get_json()
        entries = answer.get("runs") or answer.get("nodes") or []
        if len(entries) != ENTRIES or any("error" in entry for entry in entries):
            return {"error": "an entry was not answered"}
        statements.add(counter.count - before)
        if i >= warmup:
            samples.append(elapsed)
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95), "p99": percentile(samples, 99),
            "samples": len(samples), "statements_per_request": sorted(statements)}


def run_backend(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with fresh_database(kind, args) as backend:
        engine = create_engine(backend.url, poolclass=pool.NullPool)
        rng = random.Random(args.seed)
        t0 = time.perf_counter()
        seeded = seed_runs(engine, rng, args, int(time.time()) - 3600)
        with engine.connect() as connection:
            run_ids = list(connection.scalars(select(Run.id)))
        pairs = seed_nodes(engine, rng, rng.sample(run_ids, min(args.node_runs, len(run_ids))), args.nodes_per_run)
        analyze(engine, kind)
        engine.dispose()
        print(f"[{kind}] seeded {len(run_ids)} runs and {len(pairs)} nodes in {time.perf_counter() - t0:.0f} s "
              f"({json.dumps(seeded)})", flush=True)
        app = create_app(Settings(database_url=backend.url, data_dir=Path(tempfile.gettempdir()), threads=4,
                                  executor_enabled=False, **background_off()))
        client = app.test_client()
        counter = StatementCounter(app.extensions["kfp_backend.services"].db.engine)
        total = args.warmup + args.samples
        cases = {
            "200 runs": [{"run_ids": rng.sample(run_ids, ENTRIES)} for _ in range(total)],
            "200 nodes": [{"nodes": [{"run_id": r, "node_id": n} for r, n in rng.sample(pairs, ENTRIES)]}
                          for _ in range(total)],
        }
        for label, bodies in cases.items():
            result = {"backend": kind, "case": label, "runs_in_table": len(run_ids),
                      **time_case(client, counter, bodies, args.warmup)}
            results.append(result)
            print(f"[{kind}] {label}: {json.dumps(result)}", flush=True)
        app.extensions["kfp_backend.services"].db.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite,postgres,mysql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL)
    parser.add_argument("--rows", type=int, default=100_000, help="runs in the main experiment")
    parser.add_argument("--noise-experiments", type=int, default=4)
    parser.add_argument("--noise-runs", type=int, default=5_000)
    parser.add_argument("--manifest-kb", default="5-20")
    parser.add_argument("--metrics-share", type=float, default=0.3)
    parser.add_argument("--node-runs", type=int, default=5_000, help="runs that get node rows")
    parser.add_argument("--nodes-per-run", type=int, default=4)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    for kind in [k for k in args.backends.split(",") if k]:
        results += run_backend(kind, args)
    print()
    print(f"{'backend':10} {'case':10} {'runs':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} statements")
    for r in results:
        if "error" in r:
            print(f"{r['backend']:10} {r['case']:10} ERROR {r['error']}")
            continue
        print(f"{r['backend']:10} {r['case']:10} {r['runs_in_table']:>8} {r['p50']:>8.2f} {r['p95']:>8.2f} "
              f"{r['p99']:>8.2f} {r['statements_per_request']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
