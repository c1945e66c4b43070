"""ListRuns latency at 100k runs in one experiment: first page vs a page ~1,000 pages deep, through the real app.

Seeds --rows runs in one experiment (plus --noise-runs in other experiments) straight into a freshly
migrated database with SQLAlchemy core: the `runs` rows, one `run_manifests` row per run holding a
realistic workflow (pipeline spec YAML + submitted workflow JSON + status, --manifest-kb bytes in all, by
default 5-20 KB), and 1-3 `run_metrics` rows for --metrics-share of the runs. Then it times GET requests
through `app.test_client()` exactly as `list_bench.py` does (it imports its machinery): p50/p95 of the first
page and of a deep page reached by following next_page_token, the share of the total_size COUNT, every
SQL statement replayed alone with its EXPLAIN plan, and whether any statement touched `run_manifests`
(listing must never read manifests).

Cases: GET /runs (no scope), GET /runs?resource_reference_key.type=EXPERIMENT&resource_reference_key.id=X
(what kfp's `Client.list_runs(experiment_id=X)` sends), and that plus the KFP UI's "active runs" filter
(storage_state NOT_EQUALS STORAGESTATE_ARCHIVED; with --cases, not by default). All with page_size 50 and
sort_by "created_at desc"; and (--cases metric) the experiment's runs sorted by "metric:accuracy desc"
(a metric part of the runs report: every run's value is looked up, no index serves that order).
With --api v2 (or v1,v2) the same seeded rows are listed through /apis/v2beta1/runs (`experiment_id=X`,
what kfp 2.x's `list_runs(experiment_id=X)` sends; the not-archived filter in v2 spelling; no metric case).

    .venv/bin/python bench/list_runs_bench.py                          # SQLite + PostgreSQL, ~3 minutes
    .venv/bin/python bench/list_runs_bench.py --cases all,experiment,experiment-active --json /tmp/runs.json
    .venv/bin/python bench/list_runs_bench.py --backends sqlite --rows 20000 --samples 200
    .venv/bin/python bench/list_runs_bench.py --cases all,experiment,experiment-active --compare-inline
    .venv/bin/python bench/list_runs_bench.py --backends sqlite --api v1,v2 --cases experiment   # v1 beside v2beta1

The list engine counts total_size on a second connection beside the page query; --compare-inline also times
every page with the COUNT inline (as before that change), interleaved request by request (see list_bench.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from list_bench import (
    API,
    DEFAULT_MYSQL_URL,
    DEFAULT_POSTGRES_URL,
    SORT_BY,
    TEAMS,
    WORDS,
    Bench,
    Case,
    Result,
    batched,
    fresh_database,
    percentile,
    print_table,
    sentence,
    spread_times,
)
from sqlalchemy import Engine, create_engine, insert, pool, text

from kfp_backend.app import create_app
from kfp_backend.config import Settings
from kfp_backend.store.models import Experiment, Run, RunManifest, RunMetric, description_key

STATUSES = [("Succeeded", 70), ("Failed", 15), ("Error", 3), ("Running", 7), ("Skipped", 1), ("", 4)]
METRIC_NAMES = ["accuracy", "loss", "precision", "recall", "auc", "f1"]
METRIC_SORT_BY = "metric:accuracy desc"

STEP = """  - name: {step}
    container:
      image: registry.example.com/{team}/{step}:{tag}
      command: [sh, -c, 'python3 -m {step} --input "$0" --output /tmp/outputs/{step}/data --seed {seed}',
        '{{{{inputs.parameters.{prev}}}}}']
      resources:
        limits: {{cpu: '{cpu}', memory: {mem}Gi}}
    inputs:
      parameters:
      - {{name: {prev}}}
    outputs:
      parameters:
      - name: {step}-out
        valueFrom: {{path: /tmp/outputs/{step}/data}}
      artifacts:
      - {{name: {step}-out, path: /tmp/outputs/{step}/data}}
      - {{name: mlpipeline-metrics, path: /tmp/outputs/mlpipeline-metrics/data}}
    metadata:
      labels:
        pipelines.kubeflow.org/kfp_sdk_version: 1.8.22
        pipelines.kubeflow.org/pipeline-sdk-type: kfp
        pipelines.kubeflow.org/enable_caching: "true"
      annotations:
        pipelines.kubeflow.org/component_spec: '{{"description": "{notes}", "name": "{step}"}}'
"""


def manifest_variants(rng: random.Random, count: int) -> list[str]:
    """`count` distinct Argo workflow YAML bodies of growing size; per-run text is added by `run_manifest`."""
    variants = []
    for n in range(count):
        team = rng.choice(TEAMS)
        steps = []
        prev = "dataset"
        for i in range(3 + n % 12):
            step = f"{rng.choice(WORDS)}-{i}"
            steps.append(STEP.format(step=step, prev=prev, team=team, tag=f"v{rng.randint(1, 400)}",
                                     seed=rng.randint(0, 10**6), cpu=rng.randint(1, 8), mem=rng.randint(1, 64),
                                     notes=sentence(rng, 8, 30)))
            prev = f"{step}-out"
        variants.append("".join(steps))
    return variants


def run_manifest(rng: random.Random, variants: list[str], run_name: str, run_id: str, budget: int) -> dict:
    """pipeline_spec_manifest (YAML), workflow (JSON) and workflow_status, about `budget` bytes in all."""
    body = rng.choice(variants)
    head = (f"apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: {run_name}-\n"
            f"  annotations: {{pipelines.kubeflow.org/kfp_sdk_version: 1.8.22}}\nspec:\n  entrypoint: main\n"
            f"  arguments:\n    parameters:\n    - {{name: dataset, value: 'gs://bench/{run_id[:8]}'}}\n  templates:\n")
    spec = head + body
    while len(spec) < budget * 0.55:
        spec += body
    spec = spec[: int(budget * 0.55)]
    workflow = json.dumps({"metadata": {"name": run_name, "uid": run_id}, "spec": {"text": spec[: budget // 3]}})
    status = json.dumps({"phase": "Succeeded", "startedAt": "2026-11-01T00:00:00Z",
                         "finishedAt": "2026-11-01T00:10:00Z", "progress": "5/5"})
    return {"run_id": run_id, "pipeline_spec_manifest": spec, "workflow": workflow, "workflow_status": status}


def seed_runs(engine: Engine, rng: random.Random, args: argparse.Namespace, end: int) -> dict[str, Any]:
    experiments = [{"id": str(uuid.uuid4()), "name": f"bench-runs-{i}", "description": "", "description_key": "",
                    "namespace": "", "created_at": end - 40 * 24 * 3600, "storage_state": "STORAGESTATE_AVAILABLE"}
                   for i in range(1 + args.noise_experiments)]
    main = experiments[0]
    with engine.begin() as connection:
        connection.execute(insert(Experiment.__table__), experiments)
    variants = manifest_variants(rng, 200)
    low, high = (int(x) * 1024 for x in args.manifest_kb.split("-"))
    plan = [(main, args.rows)] + [(e, args.noise_runs // max(args.noise_experiments, 1)) for e in experiments[1:]]
    manifest_bytes: list[int] = []
    metrics_rows = 0
    for experiment, count in plan:
        times = spread_times(rng, count, end)
        start = 0
        for chunk_times in (times[i:i + 2000] for i in range(0, len(times), 2000)):
            runs, manifests, metrics = [], [], []
            for i, created_at in enumerate(chunk_times, start):
                run_id = str(uuid.uuid4())
                name = f"{rng.choice(TEAMS)}-run-{i:06d}"
                status = rng.choices([s for s, _ in STATUSES], weights=[w for _, w in STATUSES])[0]
                description = "" if rng.random() < 0.5 else sentence(rng, 3, 20)
                references = [{"type": "EXPERIMENT", "id": experiment["id"], "name": experiment["name"],
                               "relationship": "OWNER"}]
                runs.append({
                    "id": run_id, "name": name, "description": description,
                    "description_key": description_key(description), "namespace": "",
                    "experiment_id": experiment["id"], "job_id": None, "pipeline_id": "", "pipeline_name": "",
                    "pipeline_version_id": None, "service_account": "pipeline-runner",
                    "parameters": json.dumps([{"name": "dataset", "value": f"gs://bench/{i % 97}"}]),
                    "resource_references": json.dumps(references, separators=(",", ":")),
                    "created_at": created_at, "scheduled_at": created_at,
                    "finished_at": created_at + rng.randint(5, 3600) if status not in ("Running", "") else 0,
                    "status": status,
                    "storage_state": "STORAGESTATE_ARCHIVED" if rng.random() < 0.05 else "STORAGESTATE_AVAILABLE",
                    "terminate_requested": False, "driver_id": None, "driver_heartbeat": 0,
                })
                manifest = run_manifest(rng, variants, name, run_id, rng.randint(low, high))
                manifest_bytes.append(sum(len(v) for k, v in manifest.items() if k != "run_id"))
                manifests.append(manifest)
                if rng.random() < args.metrics_share:
                    node = f"{name}-{rng.randint(10**9, 10**10)}"
                    for k, metric in enumerate(rng.sample(METRIC_NAMES, rng.randint(1, 3))):
                        metrics.append({"run_id": run_id, "node_id": node, "name": metric,
                                        "number_value": rng.random(), "format": "RAW",
                                        "reported_at_ns": created_at * 10**9 + k})
            start += len(chunk_times)
            metrics_rows += len(metrics)
            with engine.begin() as connection:
                connection.execute(insert(Run.__table__), runs)
                for part in batched(manifests, 250):
                    connection.execute(insert(RunManifest.__table__), part)
                if metrics:
                    connection.execute(insert(RunMetric.__table__), metrics)
    return {"experiment_id": main["id"], "rows": args.rows, "other_runs": args.noise_runs,
            "metrics_rows": metrics_rows, "avg_manifest_bytes": round(statistics.mean(manifest_bytes)),
            "manifest_megabytes": round(sum(manifest_bytes) / 2**20)}


def analyze(engine: Engine, kind: str) -> None:
    tables = ["experiments", "runs", "run_manifests", "run_metrics"]
    if kind == "postgres":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in tables:
                connection.execute(text(f"VACUUM ANALYZE {table}"))
    elif kind == "mysql":
        with engine.connect() as connection:
            for table in tables:
                connection.execute(text(f"ANALYZE TABLE {table}")).fetchall()
    else:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def statement_kind(statement: str) -> str:
    lowered = statement.lower()
    if "count(" in lowered:
        return "count"
    if "run_metrics" in lowered:
        return "metrics"
    if "run_manifests" in lowered:
        return "status"  # v2beta1: the page's stored workflow statuses
    return "page"


class RunsBench(Bench):
    """list_bench's Bench, with the page's metrics query kept apart and manifest reads counted."""

    def sql_breakdown(self, case: Case, token: str | None, which: str, result: Result) -> None:
        with self.timer.measure():
            self.get(case, token)
        statements = list(self.timer.statements)
        result.plans[f"{which}_statements"] = [str(len(statements))]
        result.plans[f"{which}_manifest_reads"] = [
            str(sum("run_manifests" in s.lower() for s, _ in statements))]
        with self.engine.connect() as connection:
            for statement, parameters in statements:
                kind = statement_kind(statement)
                samples = []
                for i in range(self.args.sql_samples + 5):
                    start = time.perf_counter()
                    connection.exec_driver_sql(statement, parameters).fetchall()
                    if i >= 5:
                        samples.append((time.perf_counter() - start) * 1000)
                    connection.rollback()
                result.sql[f"{which}_{kind}"] = {"p50": percentile(samples, 50), "p95": percentile(samples, 95)}
                result.plans[f"{which}_{kind}"] = [" ".join(statement.split())[:600], repr(parameters)[:300],
                                                   *self.explain(connection, statement, parameters)]
                connection.rollback()


CASES = {"all": "no scope", "experiment": "EXPERIMENT key", "experiment-active": "EXPERIMENT key + not archived",
         "metric": f"EXPERIMENT key, sort_by {METRIC_SORT_BY}"}


def accuracy_order(run: dict) -> tuple:
    """A run's place under METRIC_SORT_BY: its largest accuracy (runs without one last), then its id."""
    values = [m.get("number_value", 0.0) for m in run.get("metrics", []) if m["name"] == "accuracy"]
    return (max(values) if values else float("-inf"), run["id"])


V2 = "/apis/v2beta1"
V2_CASES = ("all", "experiment", "experiment-active")


def v2_run_cases(page_size: int, experiment_id: str, wanted: list[str]) -> list[Case]:
    """The same listings through /apis/v2beta1/runs: the experiment as `experiment_id` (what kfp 2.x's
    `Client.list_runs(experiment_id=...)` sends), the filter in v2 spelling."""
    def case(label: str, key: bool, predicates: list[dict] | None = None) -> Case:
        params = {"page_size": str(page_size), "sort_by": SORT_BY}
        if key:
            params["experiment_id"] = experiment_id
        if predicates:
            params["filter"] = json.dumps({"predicates": predicates})
        return Case("runs", f"v2beta1: {label}", f"{V2}/runs", params, "runs",
                    order_key=lambda item: (item["created_at"], item["run_id"]), id_key="run_id")

    cases = {
        "all": case("no scope", False),
        "experiment": case("experiment_id", True),
        "experiment-active": case("experiment_id + not archived", True, [
            {"key": "storage_state", "operation": "NOT_EQUALS", "string_value": "ARCHIVED"}]),
    }
    return [cases[name] for name in wanted if name in cases]


def run_cases(page_size: int, experiment_id: str, wanted: list[str]) -> list[Case]:
    def case(label: str, key: bool, predicates: list[dict] | None = None, sort_by: str = SORT_BY) -> Case:
        params = {"page_size": str(page_size), "sort_by": sort_by}
        if key:
            params["resource_reference_key.type"] = "EXPERIMENT"
            params["resource_reference_key.id"] = experiment_id
        if predicates:
            params["filter"] = json.dumps({"predicates": predicates})
        if sort_by == METRIC_SORT_BY:
            return Case("runs", label, f"{API}/runs", params, "runs", order_key=accuracy_order)
        return Case("runs", label, f"{API}/runs", params, "runs")

    cases = {
        "all": case(CASES["all"], False),
        "experiment": case(CASES["experiment"], True),
        "experiment-active": case(CASES["experiment-active"], True, [
            {"key": "storage_state", "op": "NOT_EQUALS", "string_value": "STORAGESTATE_ARCHIVED"}]),
        "metric": case(CASES["metric"], True, sort_by=METRIC_SORT_BY),
    }
    return [cases[name] for name in wanted]


def print_details(summaries: list[dict[str, Any]]) -> None:
    for s in summaries:
        if s.get("error"):
            continue
        plans = s["plans"]
        print(f"\n### {s['backend']} / {s['case']}  (walk to depth {s['depth']}: {s['walk_ms_per_page']} ms/page; "
              f"statements per request: {plans['first_statements'][0]}; statements reading run_manifests: "
              f"first {plans['first_manifest_reads'][0]}, deep {plans['deep_manifest_reads'][0]})")
        for which in ("first", "deep"):
            for kind in ("count", "page", "metrics", "status"):
                key = f"{which}_{kind}"
                if key not in plans:
                    continue
                sql, params, *plan = plans[key]
                timing = s["sql"][key]
                print(f"-- {key} replayed alone: p50 {timing['p50']:.2f} ms, p95 {timing['p95']:.2f} ms")
                print(f"   {sql}")
                print(f"   params: {params}")
                for line in plan:
                    print(f"   | {line[:300]}")


def background_off() -> dict[str, bool]:
    """Settings turning off the in-process background workers other than the executor, where they exist."""
    return {name: False for name in ("scheduler_enabled",) if name in {f.name for f in dataclasses.fields(Settings)}}


def table_sizes(engine: Engine, kind: str) -> dict[str, str]:
    if kind != "postgres":
        return {}
    with engine.connect() as connection:
        return {table: connection.execute(text(f"SELECT pg_size_pretty(pg_total_relation_size('{table}'))")).scalar()
                for table in ("runs", "run_manifests", "run_metrics")}


def run_backend(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    summaries = []
    with fresh_database(kind, args) as backend:
        engine = create_engine(backend.url, poolclass=pool.NullPool)
        rng = random.Random(args.seed)
        end = int(time.time()) - 3600
        t0 = time.perf_counter()
        seeded = seed_runs(engine, rng, args, end)
        analyze(engine, kind)
        if kind == "sqlite":
            seeded["database_megabytes"] = round(Path(backend.url.removeprefix("sqlite:///")).stat().st_size / 2**20)
        seeded.update(table_sizes(engine, kind))
        engine.dispose()
        print(f"[{kind}] seeded in {time.perf_counter() - t0:.1f} s: {json.dumps(seeded)}", flush=True)

        app = create_app(Settings(database_url=backend.url, data_dir=Path(tempfile.gettempdir()), threads=4,
                                  executor_enabled=False, **background_off()))
        bench = RunsBench(backend, args, app)
        cases: list[Case] = []
        for api in args.api.split(","):
            make = v2_run_cases if api == "v2" else run_cases
            cases += make(args.page_size, seeded["experiment_id"], args.cases.split(","))
        for case in cases:
            t0 = time.perf_counter()
            summary = bench.run(case).summary()
            summary["seeded"] = seeded
            summaries.append(summary)
            state = summary["error"] or (f"first p50 {summary['first']['p50']:.2f} ms, "
                                         f"deep p50 {summary['deep']['p50']:.2f} ms")
            print(f"[{kind}] {case.label}: {state} ({time.perf_counter() - t0:.0f} s)", flush=True)
        app.extensions["kfp_backend.services"].db.dispose()
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite,postgres,mysql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--rows", type=int, default=100_000, help="runs in the benchmarked experiment")
    parser.add_argument("--noise-experiments", type=int, default=4)
    parser.add_argument("--noise-runs", type=int, default=5_000, help="runs spread over the other experiments")
    parser.add_argument("--manifest-kb", default="5-20", help="size range of each run's manifests, in KiB")
    parser.add_argument("--metrics-share", type=float, default=0.3, help="share of runs with 1-3 metrics")
    parser.add_argument("--cases", default="all,experiment",
                        help=f"comma list of {','.join(CASES)} ({'; '.join(f'{k}: {v}' for k, v in CASES.items())})")
    parser.add_argument("--api", default="v1", help="comma list of v1,v2: list through /apis/v1beta1 and/or "
                        f"/apis/v2beta1 (v2: the cases {', '.join(V2_CASES)})")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--depth", type=int, default=1000, help="pages to follow to reach the deep page")
    parser.add_argument("--samples", type=int, default=200, help="timed requests per page (after warm-up)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sql-samples", type=int, default=50, help="timed replays of each SQL statement")
    parser.add_argument("--seed", type=int, default=20240602)
    parser.add_argument("--json", type=Path, help="write every figure and plan here")
    parser.add_argument("--quiet-plans", action="store_true", help="do not print SQL and EXPLAIN output")
    parser.add_argument("--compare-inline", action="store_true",
                        help="also time every page with the COUNT run inline (sequential), interleaved")
    args = parser.parse_args(argv)

    summaries: list[dict[str, Any]] = []
    for kind in [k for k in args.backends.split(",") if k]:
        summaries += run_backend(kind, args)
    print()
    print_table(summaries)
    if not args.quiet_plans:
        print_details(summaries)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=1, default=str))
    return 1 if any(s.get("error") for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
