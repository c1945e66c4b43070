"""Celery step execution benchmark: dispatch overhead per step on a chain, and a fan-out on one worker vs two.

chain   An N-step chain (`sh -c true` each) runs through an in-process executor with
        KFP_BACKEND_STEP_BACKEND=celery and one `kfp-backend worker` subprocess, --repeat times. Per step =
        wall / N; overhead per step = that minus the bare `sh -c true` spawn; its ratio to a bare
        `python3 -c pass` spawn measured right before each repetition is the figure the issue asks for
        (target <= 1.0 on Redis); the median over the repetitions is reported, with each one's.
fanout  An M-wide fan-out of `sleep S` steps with one worker, then with two (each `--concurrency C`): the
        ratio of the two walls (target <= 0.6).

Each measurement is one run created through the API (Flask test client) and timed from its creation to
its end as the API reports it (polled every 10 ms). The workers start with `tests.executor.celery_workers`
(the tests' own helper), with data dirs of their own and the default heartbeat, lost-worker and log
upload intervals (not the tests' short ones); the artifact store is a directory of the bench's.

    PYTHONPATH=. .venv/bin/python bench/celery_bench.py --fanout 0              # the chain: Redis, SQLite
    PYTHONPATH=. .venv/bin/python bench/celery_bench.py --broker amqp --backend postgres --fanout 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from list_bench import DEFAULT_MYSQL_URL, DEFAULT_POSTGRES_URL, fresh_database

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests.executor.celery_workers import BROKERS, WorkerSet

API = "/apis/v1beta1"


def workflow(tasks: list[dict[str, Any]], script: str) -> str:
    """An Argo Workflow: `tasks` of one container template running `sh -c script`."""
    return json.dumps({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "bench-"},
        "spec": {"entrypoint": "main", "templates": [
            {"name": "step", "container": {"image": "alpine", "command": ["sh", "-c", script]}},
            {"name": "main", "dag": {"tasks": tasks}},
        ]},
    })


def chain(n: int) -> str:
    return workflow([{"name": f"s{i}", "template": "step", **({"dependencies": [f"s{i - 1}"]} if i else {})}
                     for i in range(n)], "true")


def fanout(m: int, seconds: float) -> str:
    return workflow([{"name": f"f{i}", "template": "step"} for i in range(m)], f"sleep {seconds}")


def run_wall(client: Any, manifest: str, timeout: float = 600) -> float:
    started = time.monotonic()
    response = client.post(f"{API}/runs", json={"name": "bench", "pipeline_spec": {"workflow_manifest": manifest}})
    assert response.status_code == 200, response.get_data(as_text=True)
    run_id = response.get_json()["run"]["id"]
    while time.monotonic() - started < timeout:
        status = client.get(f"{API}/runs/{run_id}").get_json()["run"].get("status")
        if status in ("Succeeded", "Failed", "Error"):
            if status != "Succeeded":
                raise RuntimeError(f"run {run_id} ended {status}")
            return time.monotonic() - started
        time.sleep(0.01)
    raise RuntimeError(f"run {run_id} did not end within {timeout} s")


def spawn_ms(argv: list[str], repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=sorted(BROKERS), default="redis")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "mysql"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL)
    parser.add_argument("--chain", type=int, default=50, help="chain length (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="timed chain runs (the median is reported)")
    parser.add_argument("--fanout", type=int, default=40, help="fan-out width (0: skip)")
    parser.add_argument("--sleep", type=float, default=0.5, help="each fan-out step's sleep, seconds")
    parser.add_argument("--concurrency", type=int, default=4, help="each worker's --concurrency")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary dir (the workers' logs)")
    args = parser.parse_args()
    broker = BROKERS[args.broker][2]
    root = Path(tempfile.mkdtemp(prefix="kfpb-celery-bench-"))
    figures: dict[str, Any] = {"broker": args.broker, "backend": args.backend,
                               "load_average": [round(x, 2) for x in os.getloadavg()]}
    try:
        with fresh_database(args.backend, args) as backend:
            queue = f"kfp-bench-{uuid.uuid4().hex[:8]}"
            store = f"file://{root / 'store'}"
            settings = Settings(data_dir=root / "server", database_url=backend.url, executor_enabled=True,
                                scheduler_enabled=False, log_level="WARNING", step_backend="celery",
                                celery_broker_url=broker, celery_queue=queue, artifact_store=store)
            app = create_app(settings)
            defaults = Settings()  # the workers' intervals as deployed (the tests' helper shortens them)
            workers = WorkerSet(backend.url, broker, queue, store, root / "workers", extra_env={  # INFO: "ready."
                "KFP_BACKEND_WORKER_HEARTBEAT_SECONDS": str(defaults.worker_heartbeat_seconds),
                "KFP_BACKEND_WORKER_LOST_SECONDS": str(defaults.worker_lost_seconds),
                "KFP_BACKEND_STEP_LOG_UPLOAD_SECONDS": str(defaults.step_log_upload_seconds)})
            try:
                client = app.test_client()
                workers.start("bench-1", concurrency=args.concurrency)
                python_ms = spawn_ms([sys.executable, "-c", "pass"])
                sh_ms = spawn_ms(["sh", "-c", "true"])
                figures.update(python_spawn_ms=round(python_ms, 1), sh_spawn_ms=round(sh_ms, 1))
                if args.chain:
                    run_wall(client, chain(3))  # warm-up: connections, the worker's first spawn
                    reps = []
                    for _ in range(args.repeat):
                        python_ms = spawn_ms([sys.executable, "-c", "pass"])
                        per_step = run_wall(client, chain(args.chain)) * 1000 / args.chain
                        reps.append((per_step, python_ms, (per_step - sh_ms) / python_ms))
                    per_step, python_ms, ratio = sorted(reps, key=lambda rep: rep[2])[len(reps) // 2]
                    figures.update(chain_steps=args.chain, chain_repeat=args.repeat,
                                   chain_ms_per_step=round(per_step, 1),
                                   chain_overhead_ms_per_step=round(per_step - sh_ms, 1),
                                   chain_python_spawn_ms=round(python_ms, 1),
                                   chain_overhead_ratio_to_python_spawn=round(ratio, 2),
                                   chain_reps=[{"ms_per_step": round(a, 1), "python_spawn_ms": round(b, 1),
                                                "ratio": round(c, 2)} for a, b, c in reps])
                if args.fanout:
                    one = run_wall(client, fanout(args.fanout, args.sleep))
                    workers.start("bench-2", concurrency=args.concurrency)
                    two = run_wall(client, fanout(args.fanout, args.sleep))
                    figures.update(fanout_width=args.fanout, fanout_sleep_s=args.sleep,
                                   fanout_concurrency=args.concurrency, fanout_one_worker_s=round(one, 2),
                                   fanout_two_workers_s=round(two, 2), fanout_ratio=round(two / one, 2))
            finally:
                shutdown(app)
                workers.stop_all()
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
