"""List latency benchmark: first page vs a page ~1,000 pages deep, through the real Flask app.

Seeds N experiments and N versions of one pipeline (each version with a ~2 KB template row) straight into a
freshly migrated database with SQLAlchemy core, then times GET requests through `app.test_client()`, so
query-string parsing, the service, the list engine, marshmallow dumping and JSON rendering are all included.

For every case it reports p50/p95 of the first page and of a deep page (reached once by following
next_page_token, then requested repeatedly with that token), the deep/first ratio, and - for diagnosis - the
time of the two SQL statements each list call runs (the COUNT(*) for total_size and the page SELECT), replayed
on their own, plus the EXPLAIN plans of both statements for the first and the deep page.

    .venv/bin/python bench/list_bench.py                       # SQLite + PostgreSQL
    .venv/bin/python bench/list_bench.py --backends sqlite --rows 20000 --samples 200
    .venv/bin/python bench/list_bench.py --mysql               # also MariaDB/MySQL
    .venv/bin/python bench/list_bench.py --compare-inline      # also time the COUNT run inline, interleaved
    .venv/bin/python bench/list_bench.py --no-cold             # only the repeated (warm) requests

The list engine runs the COUNT on a second connection while the request's session fetches the page (see
`store/listing.py`); "beside" in the table is the share of requests where it did. With --compare-inline every
case is also timed with that turned off (the COUNT before the page, on the request's connection), the two
modes interleaved request by request so that both see the same machine load.

total_size is cached per query while the tables it counts are not written (list_generations, bumped by
triggers). So every page is timed twice, interleaved: "warm", the same request repeated with no write in
between (the COUNT comes from the cache), and "after a write", right after one row was inserted into the
listed table on another connection (untimed), so the COUNT runs again: the cost of a first request after
any write.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, pool, text
from sqlalchemy.engine import make_url

from kfp_backend.app import create_app
from kfp_backend.config import Settings
from kfp_backend.store import migrations
from kfp_backend.store.models import Experiment, Pipeline, PipelineTemplate, PipelineVersion, description_key

API = "/apis/v1beta1"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
THIRTY_DAYS = 30 * 24 * 3600
SORT_BY = "created_at desc"

# Vocabulary for names and descriptions. About 55% of experiment names contain "train" (some as "Train"),
# about 60% of version names contain "nightly", so a substring filter still has > 1,000 pages of 50.
TEAMS = ["vision", "nlp", "ranking", "fraud", "ads", "search", "speech", "recsys", "forecast", "growth"]
EXPERIMENT_TASKS = [("train", 40), ("Train", 5), ("pretrain", 10), ("eval", 12), ("tune", 10), ("sweep", 8),
                    ("ablation", 5), ("baseline", 5), ("distill", 5)]
VERSION_TAGS = [("nightly", 55), ("Nightly-rebuild", 5), ("release", 15), ("rc", 10), ("hotfix", 5),
                ("experiment", 10)]
WORDS = ["model", "data", "pipeline", "feature", "batch", "stream", "latency", "accuracy", "recall",
         "precision", "gradient", "embedding", "transformer", "tokenizer", "shard", "bucket", "warehouse",
         "snapshot", "checkpoint", "optimizer", "schedule", "dropout", "learning", "rate", "validation",
         "holdout", "cohort", "region", "canary", "rollout", "metric", "dashboard", "quota"]


# --------------------------------------------------------------------------------------------- databases


@dataclass
class Backend:
    name: str
    url: str
    cleanup: Callable[[], None]


@contextmanager
def fresh_database(kind: str, args: argparse.Namespace) -> Iterator[Backend]:
    """A new, empty database of `kind`, migrated to head, dropped afterwards."""
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="kfpb-bench-"))
        url = f"sqlite:///{directory / 'bench.db'}"
        backend = Backend("sqlite", url, lambda: shutil.rmtree(directory, ignore_errors=True))
    else:
        admin_url = args.postgres_url if kind == "postgres" else args.mysql_url
        admin = create_engine(admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        name = f"kfpb_bench_{uuid.uuid4().hex[:10]}"
        extra = " CHARACTER SET utf8mb4" if kind == "mysql" else ""
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}{extra}"))

        def drop() -> None:
            force = " WITH (FORCE)" if kind == "postgres" else ""
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
            admin.dispose()

        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        backend = Backend(kind, url, drop)
    try:
        migrations.upgrade(backend.url)
        yield backend
    finally:
        backend.cleanup()


# --------------------------------------------------------------------------------------------- seeding


def spread_times(rng: random.Random, count: int, end: int) -> list[int]:
    """`count` ascending Unix seconds over the 30 days before `end`: mostly distinct, ~5% in bursts (ties)."""
    times = sorted(rng.randrange(end - THIRTY_DAYS, end) for _ in range(count))
    for i in range(1, count):
        if rng.random() < 0.05:  # created in the same second as the previous one (scripts, retries)
            times[i] = times[i - 1]
    return times


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize()


def weighted(rng: random.Random, choices: list[tuple[str, int]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def batched(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def seed_experiments(engine: Engine, rng: random.Random, count: int, end: int) -> dict[str, Any]:
    rows = []
    for i, created_at in enumerate(spread_times(rng, count, end)):
        description = "" if rng.random() < 0.2 else sentence(rng, 3, 80)
        rows.append({
            "id": str(uuid.uuid4()),
            "name": f"{rng.choice(TEAMS)}-{weighted(rng, EXPERIMENT_TASKS)}-{i:06d}",
            "description": description,
            "description_key": description_key(description),
            "namespace": "",
            "created_at": created_at,
            "storage_state": "STORAGESTATE_ARCHIVED" if rng.random() < 0.10 else "STORAGESTATE_AVAILABLE",
        })
    with engine.begin() as connection:
        for chunk in batched(rows, 2000):
            connection.execute(insert(Experiment.__table__), chunk)
    return {
        "rows": count,
        "archived": sum(r["storage_state"] == "STORAGESTATE_ARCHIVED" for r in rows),
        "distinct_created_at": len({r["created_at"] for r in rows}),
        "names_with_train": sum("train" in r["name"].lower() for r in rows),
    }


TEMPLATE = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: {name}-
  annotations:
    pipelines.kubeflow.org/kfp_sdk_version: 1.8.22
    pipelines.kubeflow.org/pipeline_compilation_time: '{compiled}'
    pipelines.kubeflow.org/pipeline_spec: '{{"description": "{description}", "name": "{name}"}}'
spec:
  entrypoint: {name}
  serviceAccountName: pipeline-runner
  arguments:
    parameters:
    - {{name: learning_rate, value: '{lr}'}}
    - {{name: epochs, value: '{epochs}'}}
    - {{name: dataset, value: gs://bench-data/{team}/{shard}}}
  templates:
  - name: {name}
    dag:
      tasks:
      - {{name: prepare, template: prepare}}
      - {{name: train, template: train, dependencies: [prepare]}}
      - {{name: evaluate, template: evaluate, dependencies: [train]}}
  - name: prepare
    container:
      image: registry.example.com/{team}/prepare:{tag}
      command: [python, -m, prepare]
      args: [--dataset, '{{{{workflow.parameters.dataset}}}}', --out, /tmp/outputs/data]
    outputs:
      artifacts:
      - {{name: prepare-data, path: /tmp/outputs/data}}
  - name: train
    container:
      image: registry.example.com/{team}/train:{tag}
      command: [python, -m, train]
      args: [--lr, '{{{{workflow.parameters.learning_rate}}}}', --epochs, '{{{{workflow.parameters.epochs}}}}']
      resources:
        limits: {{cpu: '{cpu}', memory: {mem}Gi}}
    inputs:
      artifacts:
      - {{name: prepare-data, path: /tmp/inputs/data}}
  - name: evaluate
    container:
      image: registry.example.com/{team}/evaluate:{tag}
      command: [python, -m, evaluate]
      args: [--threshold, '{threshold}']
# {notes}
"""


def seed_versions(
    engine: Engine, rng: random.Random, count: int, end: int, noise_pipelines: int, noise_versions: int
) -> dict[str, Any]:
    """One pipeline with `count` versions (the benchmarked one), plus a few small pipelines around it."""
    pipelines, versions, templates = [], [], []

    def add_pipeline(name: str, version_count: int) -> str:
        pipeline_id = str(uuid.uuid4())
        times = spread_times(rng, version_count, end)
        first_id = None
        for i, created_at in enumerate(times):
            version_id = str(uuid.uuid4())
            first_id = first_id or version_id
            tag = weighted(rng, VERSION_TAGS)
            version_name = f"{name}-v{i:06d}-{tag}"
            description = "" if rng.random() < 0.3 else sentence(rng, 3, 40)
            team = rng.choice(TEAMS)
            parameters = [{"name": "learning_rate", "value": f"{rng.choice([0.1, 0.01, 0.001])}"},
                          {"name": "epochs", "value": str(rng.randint(1, 50))},
                          {"name": "dataset", "value": f"gs://bench-data/{team}/{i % 97}"}]
            versions.append({
                "id": version_id,
                "pipeline_id": pipeline_id,
                "name": version_name,
                "description": description,
                "created_at": created_at,
                "status": "READY",
                "parameters": json.dumps(parameters),
                "code_source_url": f"https://git.example.com/{team}/{name}/tree/{uuid.uuid4().hex[:12]}",
                "package_url": "",
            })
            template = TEMPLATE.format(
                name=version_name.lower(), compiled=datetime.fromtimestamp(created_at, timezone.utc).isoformat(),
                description=description[:60], lr=parameters[0]["value"], epochs=parameters[1]["value"],
                team=team, shard=i % 97, tag=f"{tag.lower()}-{i}", cpu=rng.randint(1, 8), mem=rng.randint(2, 64),
                threshold=round(rng.random(), 3), notes=sentence(rng, 20, 60),
            )
            templates.append({"version_id": version_id, "template": template})
        pipelines.append({
            "id": pipeline_id, "name": name, "description": sentence(rng, 5, 20), "namespace": "",
            "description_key": "", "created_at": times[0] if times else end, "status": "READY",
            "parameters": versions[-1]["parameters"] if version_count else "[]",
            "default_version_id": versions[-1]["id"] if version_count else first_id,
        })
        pipelines[-1]["description_key"] = description_key(pipelines[-1]["description"])
        return pipeline_id

    pipeline_id = add_pipeline("bench-pipeline", count)
    for n in range(noise_pipelines):
        add_pipeline(f"other-pipeline-{n}", noise_versions // max(noise_pipelines, 1))
    with engine.begin() as connection:
        connection.execute(insert(Pipeline.__table__), pipelines)
        for chunk in batched(versions, 2000):
            connection.execute(insert(PipelineVersion.__table__), chunk)
        for chunk in batched(templates, 500):
            connection.execute(insert(PipelineTemplate.__table__), chunk)
    mine = [v for v in versions if v["pipeline_id"] == pipeline_id]
    times = sorted(v["created_at"] for v in mine)
    return {
        "pipeline_id": pipeline_id,
        "rows": len(mine),
        "other_versions": len(versions) - len(mine),
        "distinct_created_at": len(set(times)),
        "names_with_nightly": sum("nightly" in v["name"].lower() for v in mine),
        "avg_template_bytes": round(statistics.mean(len(t["template"]) for t in templates)),
        # The GREATER_THAN case keeps the newest ~75% of versions.
        "created_after": times[len(times) // 4],
    }


def analyze(engine: Engine, kind: str) -> None:
    """Refresh planner statistics as autovacuum (PostgreSQL) / InnoDB (MariaDB) would after a bulk load."""
    tables = ["experiments", "pipelines", "pipeline_versions", "pipeline_templates"]
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


# --------------------------------------------------------------------------------------------- measuring


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


@dataclass
class Case:
    resource: str
    label: str
    path: str
    params: dict[str, str]
    items_key: str
    # An item's place in the listing's (descending) order, to check pages against.
    order_key: Callable[[dict], tuple] = lambda item: (item["created_at"], item["id"])
    id_key: str = "id"  # the field naming an item (v2beta1 runs: run_id)


@dataclass
class Samples:
    """Per-request figures of one page: total latency and the in-request SQL times."""

    total: list[float] = field(default_factory=list)
    count: list[float] = field(default_factory=list)
    page: list[float] = field(default_factory=list)
    beside: list[float] = field(default_factory=list)

    def add(self, total: float, sql: dict[str, float]) -> None:
        self.total.append(total)
        self.count.append(sql["count"])
        self.page.append(sql["page"])
        self.beside.append(sql["beside"])

    def summary(self) -> dict[str, float]:
        without_count = [t - c for t, c in zip(self.total, self.count, strict=True)]
        share = [c / t for t, c in zip(self.total, self.count, strict=True)]
        return {"p50": percentile(self.total, 50), "p95": percentile(self.total, 95),
                "count_p50": percentile(self.count, 50), "count_p95": percentile(self.count, 95),
                "page_sql_p50": percentile(self.page, 50), "count_share_p50": percentile(share, 50),
                "without_count_p50": percentile(without_count, 50),
                "without_count_p95": percentile(without_count, 95),
                "count_beside_share": statistics.mean(self.beside)}


@dataclass
class Result:
    backend: str
    case: Case
    total_size: int = 0
    depth: int = 0
    first: Samples = field(default_factory=Samples)
    deep: Samples = field(default_factory=Samples)
    # With --compare-inline: the same pages with the COUNT run inline, interleaved with the others.
    first_inline: Samples = field(default_factory=Samples)
    deep_inline: Samples = field(default_factory=Samples)
    # Each request right after a one-row insert into the listed table (the cached COUNT is stale).
    first_cold: Samples = field(default_factory=Samples)
    deep_cold: Samples = field(default_factory=Samples)
    load_average: tuple[float, float] = (0.0, 0.0)
    walk_ms_per_page: float = 0.0
    sql: dict[str, dict[str, float]] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend, "resource": self.case.resource, "case": self.case.label,
                               "error": self.error, "total_size": self.total_size, "depth": self.depth,
                               "walk_ms_per_page": round(self.walk_ms_per_page, 2), "sql": self.sql,
                               "plans": self.plans, "samples": len(self.first.total),
                               "load_average_1min": tuple(round(x, 2) for x in self.load_average)}
        if self.first.total and self.deep.total:
            out["first"], out["deep"] = self.first.summary(), self.deep.summary()
            out["ratio_p50"] = out["deep"]["p50"] / out["first"]["p50"]
            out["ratio_p95"] = out["deep"]["p95"] / out["first"]["p95"]
        if self.first_inline.total and self.deep_inline.total:
            inline = {"first": self.first_inline.summary(), "deep": self.deep_inline.summary()}
            inline["ratio_p50"] = inline["deep"]["p50"] / inline["first"]["p50"]
            inline["ratio_p95"] = inline["deep"]["p95"] / inline["first"]["p95"]
            out["inline"] = inline
        if self.first_cold.total and self.deep_cold.total:
            cold = {"first": self.first_cold.summary(), "deep": self.deep_cold.summary()}
            cold["ratio_p50"] = cold["deep"]["p50"] / cold["first"]["p50"]
            cold["ratio_p95"] = cold["deep"]["p95"] / cold["first"]["p95"]
            out["after_write"] = cold
        return out


class SqlTimer:
    """Times, inside real requests, the SELECTs the app sends (the COUNT for total_size and the page query).

    Time spent in cursor.execute(): all of the COUNT on every driver; the whole page query on psycopg and
    PyMySQL (which buffer results), only up to the first row on SQLite (the rest is fetched afterwards).
    "beside" is 1 when the COUNT ran on another thread than the request's (overlapping the page query).
    """

    def __init__(self, engine: Engine) -> None:
        self.active = False
        self.request_thread = threading.get_ident()
        self.times = {"count": 0.0, "page": 0.0, "beside": 0.0}
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    @staticmethod
    def _is_select(statement: str) -> bool:
        return statement.lstrip()[:6].upper() == "SELECT"

    def _before(self, conn, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if self.active and self._is_select(statement):
            conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        started = conn.info.pop("bench_started", None)
        if started is not None:
            kind = "count" if "count(" in statement.lower() else "page"
            self.times[kind] += (time.perf_counter() - started) * 1000
            if kind == "count" and threading.get_ident() != self.request_thread:
                self.times["beside"] = 1.0
            self.statements.append((statement, parameters))

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        self.times = {"count": 0.0, "page": 0.0, "beside": 0.0}
        self.statements = []
        self.request_thread = threading.get_ident()
        self.active = True
        try:
            yield self.times
        finally:
            self.active = False


class Bench:
    def __init__(self, backend: Backend, args: argparse.Namespace, app: Any) -> None:
        self.backend = backend
        self.args = args
        self.app = app
        self.client = app.test_client()
        self.db = app.extensions["kfp_backend.services"].db
        self.engine: Engine = self.db.engine
        self.side_reads = self.db.side_reads
        self.timer = SqlTimer(self.engine)
        # Writes between timed requests, on connections of their own (not timed, not seen by the SqlTimer).
        self.writer = create_engine(backend.url, poolclass=pool.NullPool)

    def write_one(self, case: Case) -> None:
        """Insert one row into the case's table (as another client would), so its next COUNT is not cached."""
        row_id = str(uuid.uuid4())
        with self.writer.begin() as connection:
            if case.resource == "versions":
                connection.execute(insert(PipelineVersion.__table__), [{
                    "id": row_id, "pipeline_id": case.params["resource_key.id"],
                    "name": f"bench-pipeline-write-{row_id[:8]}-nightly", "description": "",
                    "created_at": int(time.time()), "status": "READY", "parameters": "[]", "code_source_url": "",
                    "package_url": ""}])
            else:
                connection.execute(insert(Experiment.__table__), [{
                    "id": row_id, "name": f"growth-train-write-{row_id[:8]}", "description": "",
                    "description_key": "", "namespace": "", "created_at": int(time.time()),
                    "storage_state": "STORAGESTATE_AVAILABLE"}])

    @contextmanager
    def count_inline(self, inline: bool) -> Iterator[None]:
        """Turn the list engine's COUNT beside the page off (the sequential path) for the duration."""
        self.db.side_reads = None if inline else self.side_reads
        try:
            yield
        finally:
            self.db.side_reads = self.side_reads

    def get(self, case: Case, token: str | None = None) -> tuple[float, Any]:
        params = dict(case.params)
        if token:
            params["page_token"] = token
        start = time.perf_counter()
        response = self.client.get(case.path, query_string=params)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code} for {case.path}?{params}: {response.get_data(True)}")
        return elapsed, response

    def timed(self, case: Case, token: str, result: Result) -> None:
        """First and deep page, interleaved (alternating which goes first) so both see the same machine load;
        with --compare-inline also both with the COUNT inline, in a rotating order."""
        plan = [(None, result.first, False, False), (token, result.deep, False, False)]
        if getattr(self.args, "compare_inline", False):
            plan += [(None, result.first_inline, True, False), (token, result.deep_inline, True, False)]
        if getattr(self.args, "cold", True):
            plan += [(None, result.first_cold, False, True), (token, result.deep_cold, False, True)]
        for _ in range(self.args.warmup):
            for page_token, _samples, inline, _write in plan:
                with self.count_inline(inline):
                    self.get(case, page_token)
        for i in range(self.args.samples):
            shift = i % len(plan)
            for page_token, samples, inline, write in plan[shift:] + plan[:shift]:
                if write:
                    self.write_one(case)
                with self.count_inline(inline), self.timer.measure() as sql:
                    elapsed, _ = self.get(case, page_token)
                samples.add(elapsed, sql)

    def walk(self, case: Case, result: Result) -> str | None:
        """Follow next_page_token up to --depth pages, checking the order and that no row repeats."""
        token, seen, last = None, set(), None
        start = time.perf_counter()
        for _ in range(self.args.depth):
            body = self.get(case, token)[1].get_json()
            for item in body.get(case.items_key, []):
                key = case.order_key(item)
                if item[case.id_key] in seen or (last is not None and key > last):
                    raise RuntimeError(f"pagination broke order/uniqueness at depth {result.depth}: {item}")
                seen.add(item[case.id_key])
                last = key
            if not body.get("next_page_token"):
                break
            token = body["next_page_token"]
            result.depth += 1
        result.walk_ms_per_page = (time.perf_counter() - start) * 1000 / max(result.depth, 1)
        return token

    def sql_breakdown(self, case: Case, token: str | None, which: str, result: Result) -> None:
        """Replay the request's COUNT and page SELECT on their own (execute + fetchall); EXPLAIN both."""
        self.write_one(case)  # so that the request does send its COUNT
        with self.timer.measure():
            self.get(case, token)
        statements = list(self.timer.statements)
        with self.engine.connect() as connection:
            for statement, parameters in statements:
                kind = "count" if "count(" in statement.lower() else "page"
                samples = []
                for i in range(self.args.sql_samples + 5):
                    start = time.perf_counter()
                    connection.exec_driver_sql(statement, parameters).fetchall()
                    if i >= 5:
                        samples.append((time.perf_counter() - start) * 1000)
                    connection.rollback()
                result.sql[f"{which}_{kind}"] = {"p50": percentile(samples, 50), "p95": percentile(samples, 95)}
                result.plans[f"{which}_{kind}"] = [" ".join(statement.split()), repr(parameters),
                                                   *self.explain(connection, statement, parameters)]
                connection.rollback()

    def explain(self, connection: Any, statement: str, parameters: Any) -> list[str]:
        if self.backend.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, _unused, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + detail)
            return lines
        if self.backend.name == "postgres":
            rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
            return [row[0] for row in rows]
        result = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        columns = list(result.keys())
        return [", ".join(f"{c}={v}" for c, v in zip(columns, row, strict=True)
                          if c in {"table", "type", "key", "key_len", "rows", "Extra"}) for row in result]

    def run(self, case: Case) -> Result:
        result = Result(self.backend.name, case)
        try:
            before = os.getloadavg()[0]
            _, response = self.get(case)
            result.total_size = response.get_json().get("total_size", 0)
            token = self.walk(case, result)
            if token is None:
                raise RuntimeError("only one page: nothing deep to time")
            self.timed(case, token, result)
            result.load_average = (before, os.getloadavg()[0])
            self.sql_breakdown(case, None, "first", result)
            self.sql_breakdown(case, token, "deep", result)
        except Exception as exc:  # report and go on with the other cases
            result.error = f"{type(exc).__name__}: {exc}"
        return result


def experiment_cases(page_size: int) -> list[Case]:
    def case(label: str, predicates: list[dict] | None) -> Case:
        params = {"page_size": str(page_size), "sort_by": SORT_BY}
        if predicates:
            params["filter"] = json.dumps({"predicates": predicates})
        return Case("experiments", label, f"{API}/experiments", params, "experiments")

    return [
        case("no filter", None),
        case("storage_state EQUALS AVAILABLE",
             [{"key": "storage_state", "op": "EQUALS", "string_value": "STORAGESTATE_AVAILABLE"}]),
        case("name IS_SUBSTRING 'train'", [{"key": "name", "op": "IS_SUBSTRING", "string_value": "train"}]),
    ]


def version_cases(page_size: int, pipeline_id: str, created_after: int) -> list[Case]:
    def case(label: str, predicates: list[dict] | None) -> Case:
        params = {"page_size": str(page_size), "sort_by": SORT_BY, "resource_key.type": "PIPELINE",
                  "resource_key.id": pipeline_id}
        if predicates:
            params["filter"] = json.dumps({"predicates": predicates})
        return Case("versions", label, f"{API}/pipeline_versions", params, "versions")

    after = datetime.fromtimestamp(created_after, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        case("no filter", None),
        case("name IS_SUBSTRING 'nightly'", [{"key": "name", "op": "IS_SUBSTRING", "string_value": "nightly"}]),
        case(f"created_at GREATER_THAN {after}",
             [{"key": "created_at", "op": "GREATER_THAN", "timestamp_value": after}]),
    ]


def has_route(app: Any, rule: str) -> bool:
    return any(r.rule == rule for r in app.url_map.iter_rules())


# --------------------------------------------------------------------------------------------- reporting


def print_table(summaries: list[dict[str, Any]]) -> None:
    header = (f"{'backend':<9}{'resource':<12}{'case':<42}{'total':>7}{'depth':>6}"
              f"{'first p50':>10}{'p95':>7}{'deep p50':>9}{'p95':>7}{'deep/first':>12}"
              f"{'COUNT p50':>10}{'share':>7}{'beside':>7}{'first w/o COUNT':>17}{'deep w/o COUNT':>16}{'load':>11}")
    print(header)
    print("-" * len(header))
    for s in summaries:
        if s.get("error") or "first" not in s:
            print(f"{s['backend']:<9}{s['resource']:<12}{s['case']:<42}  ERROR {s.get('error')}")
            continue
        rows = [(s["case"], s)]
        if "inline" in s:
            rows.append((f"{s['case']} [COUNT inline]", s["inline"]))
        if "after_write" in s:
            rows.append((f"{s['case']} [after a write]", s["after_write"]))
        load = "{:.1f}-{:.1f}".format(*s.get("load_average_1min", (0, 0)))
        for label, figures in rows:
            first, deep = figures["first"], figures["deep"]
            print(f"{s['backend']:<9}{s['resource']:<12}{label:<42}{s['total_size']:>7}{s['depth']:>6}"
                  f"{first['p50']:>10.2f}{first['p95']:>7.2f}{deep['p50']:>9.2f}{deep['p95']:>7.2f}"
                  f"{figures['ratio_p50']:>7.2f}/{figures['ratio_p95']:<4.2f}"
                  f"{first['count_p50']:>10.2f}{first['count_share_p50']:>7.0%}{first['count_beside_share']:>7.0%}"
                  f"{first['without_count_p50']:>9.2f}/{first['without_count_p95']:<7.2f}"
                  f"{deep['without_count_p50']:>8.2f}/{deep['without_count_p95']:<7.2f}{load:>11}")
    print("ms. deep/first: p50 ratio/p95 ratio. COUNT p50: the total_size COUNT(*) timed inside the first-page "
          "requests;\nshare: its median share of a first-page request; beside: share of requests whose COUNT ran "
          "on a second\nconnection, overlapping the page query (then share is how much of the request it spans, "
          "not a part of a sum);\nw/o COUNT: p50/p95 of request time minus its COUNT (meaningful when the COUNT "
          "ran inline); load: 1-minute\nload average before/after the timed requests. Rows without a tag: "
          "warm (the same request repeated,\nno write in between: total_size from the count cache); [after a "
          "write]: each request right after a\none-row insert into the listed table (the COUNT runs again).")


def print_details(summaries: list[dict[str, Any]]) -> None:
    for s in summaries:
        if s.get("error"):
            continue
        print(f"\n### {s['backend']} / {s['resource']} / {s['case']}  (walk to depth {s['depth']}: "
              f"{s['walk_ms_per_page']} ms/page; 1-min load average {s['load_average_1min']})")
        for key in ("first_count", "first_page", "deep_count", "deep_page"):
            if key not in s["plans"]:
                continue
            sql, params, *plan = s["plans"][key]
            timing = s["sql"][key]
            print(f"-- {key} replayed alone: p50 {timing['p50']:.2f} ms, p95 {timing['p95']:.2f} ms")
            print(f"   {sql}")
            print(f"   params: {params}")
            for line in plan:
                print(f"   | {line}")


# --------------------------------------------------------------------------------------------- main


def run_backend(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    summaries = []
    with fresh_database(kind, args) as backend:
        engine = create_engine(backend.url, poolclass=pool.NullPool)
        rng = random.Random(args.seed)
        end = int(time.time()) - 3600
        resources = set(args.resources.split(","))
        t0 = time.perf_counter()
        seeded: dict[str, Any] = {}
        if "experiments" in resources:
            seeded["experiments"] = seed_experiments(engine, rng, args.rows, end)
        if "versions" in resources:
            seeded["versions"] = seed_versions(engine, rng, args.rows, end, args.noise_pipelines,
                                               args.noise_versions)
        if args.analyze or kind != "sqlite":
            analyze(engine, kind)
        engine.dispose()
        print(f"[{kind}] seeded in {time.perf_counter() - t0:.1f} s: {json.dumps(seeded)}", flush=True)

        app = create_app(Settings(database_url=backend.url, data_dir=Path(tempfile.gettempdir()), threads=4,
                                     executor_enabled=False, scheduler_enabled=False))
        bench = Bench(backend, args, app)
        cases: list[Case] = []
        if "experiments" in resources:
            cases += experiment_cases(args.page_size)
        if "versions" in resources:
            if has_route(app, f"{API}/pipeline_versions"):
                info = seeded["versions"]
                cases += version_cases(args.page_size, info["pipeline_id"], info["created_after"])
            else:
                print(f"[{kind}] GET {API}/pipeline_versions is not served yet: versions cases skipped",
                      flush=True)
        for case in cases:
            t0 = time.perf_counter()
            summary = bench.run(case).summary()
            summary["seeded"] = seeded.get(case.resource)
            summaries.append(summary)
            state = summary["error"] or (f"first p50 {summary['first']['p50']:.2f} ms, "
                                         f"deep p50 {summary['deep']['p50']:.2f} ms")
            print(f"[{kind}] {case.resource} / {case.label}: {state} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
        bench.writer.dispose()
        app.extensions["kfp_backend.services"].db.dispose()
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite,postgres,mysql")
    parser.add_argument("--mysql", action="store_true", help="also run on MariaDB/MySQL (--mysql-url)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--resources", default="experiments,versions")
    parser.add_argument("--rows", type=int, default=100_000, help="experiments, and versions of the pipeline")
    parser.add_argument("--noise-pipelines", type=int, default=10, help="other pipelines, with versions too")
    parser.add_argument("--noise-versions", type=int, default=5_000, help="versions spread over those")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--depth", type=int, default=1000, help="pages to follow to reach the deep page")
    parser.add_argument("--samples", type=int, default=300, help="timed requests per page (after warm-up)")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--sql-samples", type=int, default=100, help="timed replays of each SQL statement")
    parser.add_argument("--analyze", action="store_true",
                        help="also ANALYZE SQLite after seeding (the server never does; PG/MariaDB always are)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--json", type=Path, help="write every figure and plan here")
    parser.add_argument("--quiet-plans", action="store_true", help="do not print SQL and EXPLAIN output")
    parser.add_argument("--compare-inline", action="store_true",
                        help="also time every page with the COUNT run inline (sequential), interleaved")
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True,
                        help="also time every page right after a one-row write (the cached COUNT stale)")
    args = parser.parse_args(argv)
    if args.samples < 200:
        print("note: fewer than 200 samples per page", file=sys.stderr)

    kinds = [k for k in args.backends.split(",") if k]
    if args.mysql and "mysql" not in kinds:
        kinds.append("mysql")
    summaries: list[dict[str, Any]] = []
    for kind in kinds:
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
