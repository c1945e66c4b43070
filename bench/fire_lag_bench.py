"""Fire lag of the scheduler: how long after a job's scheduled time its run exists.

For each job count (default 10 and 1,000) and backend, a fresh database gets that many enabled jobs
firing every second (periodic 1 s, or the cron `* * * * * *` with `--trigger cron`), all starting at
the same whole second, so every second brings a burst of one fire per job. A real
`kfp-backend scheduler` process (no executor: only scheduling is measured) fires them for
`--seconds`; the bench process marks runs finished every 0.5 s, as an executor would, so that
max_concurrency (10) never holds a slot back. Two lags per fire:

- recorded: `job_fires.fired_at_ms - scheduled_at * 1000`, fired_at_ms being taken by the scheduler
  just before it writes the job_fires rows and commits (after the runs are written);
- visible: when the bench itself first saw the run, minus the scheduled time. A watcher thread
  counts the runs of the current and previous 5 seconds (`runs.scheduled_at`, indexed) every 10 ms on
  its own connection; each newly counted run gets the time that count query returned. This includes
  the commit and up to one poll interval plus a query: an upper bound of when the run came to exist.

Reports p50/p99/max of both over every fire of the window, the visible ones again without the first
second (which also builds each job's run template), and the slots that did not fire.

    .venv/bin/python bench/fire_lag_bench.py --backends sqlite,postgres --jobs 10,1000 --json /tmp/fire.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from list_bench import DEFAULT_MYSQL_URL, DEFAULT_POSTGRES_URL, fresh_database, percentile
from sqlalchemy import func, select, update

from kfp_backend.config import Settings
from kfp_backend.scheduler.cron import cron_error
from kfp_backend.services.all_services import Services
from kfp_backend.services.authorization import SYSTEM
from kfp_backend.services.jobs import NewJob, NewTrigger
from kfp_backend.store.db import Database
from kfp_backend.store.models import Job, JobFire, Run

REPO_ROOT = Path(__file__).resolve().parents[1]
# The watcher counts the runs of this many past seconds and the current one.
WATCH_SECONDS = 5
WATCH_POLL_SECONDS = 0.01


def compile_manifest(directory: Path) -> str:
    from kfp import compiler, dsl

    @dsl.pipeline(name="fire-lag")
    def fire_lag(stamp: str = "x"):
        dsl.ContainerOp(name="echo", image="alpine", command=["echo", stamp])

    path = directory / "fire_lag.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(fire_lag, str(path))
    return path.read_text()


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def worst_seconds(visible: list[tuple[int, int]], first: int, last: int) -> list[tuple[int, int]]:
    """The three seconds of the window whose last run appeared latest: (offset in the window, lag ms)."""
    latest: dict[int, int] = {}
    for slot, at in visible:
        if first <= slot <= last:
            latest[slot] = max(latest.get(slot, 0), at - slot * 1000)
    return sorted(((slot - first, lag) for slot, lag in latest.items()), key=lambda x: -x[1])[:3]


def run_case(url: str, backend: str, jobs: int, seconds: int, trigger: str, manifest: str,
             workdir: Path) -> dict[str, Any]:
    settings = Settings(database_url=url, data_dir=workdir, executor_enabled=False, scheduler_enabled=False)
    services = Services.build(settings, Database(url, pool_size=4), cron_check=cron_error)
    services.bootstrap()
    new_trigger = (NewTrigger(kind="cron", cron="* * * * * *") if trigger == "cron"
                   else NewTrigger(kind="periodic", interval_seconds=1))
    created = time.perf_counter()
    ids = [
        services.jobs.create(NewJob(
            name=f"lag-{i}", workflow_manifest=manifest, max_concurrency=10, enabled=False, trigger=new_trigger,
            parameters=[{"name": "stamp", "value": "[[ScheduledTime]]-[[Index]]-[[RunUUID]]"}],
        ), caller=SYSTEM).job.id
        for i in range(jobs)
    ]
    created = time.perf_counter() - created
    log_path = workdir / f"scheduler-{backend}-{jobs}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kfp_backend", "scheduler", "--database-url", url], cwd=REPO_ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("KFP_BACKEND_")},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    stop = threading.Event()

    def finish_runs() -> None:
        while not stop.wait(0.5):
            with services.db.transaction() as session:
                session.execute(update(Run).where(Run.finished_at == 0).values(status="Succeeded", finished_at=1))

    finisher = threading.Thread(target=finish_runs, daemon=True)
    seen: dict[int, int] = {}  # scheduled second -> runs seen so far
    visible: list[tuple[int, int]] = []  # (scheduled second, ms when first seen)

    def watch_runs() -> None:
        # One connection, one short read transaction per poll (a fresh snapshot each time).
        with services.db.engine.connect() as connection:
            while not stop.wait(WATCH_POLL_SECONDS):
                second = int(time.time())
                counts = connection.execute(
                    select(Run.scheduled_at, func.count())
                    .where(Run.scheduled_at >= second - WATCH_SECONDS, Run.scheduled_at <= second)
                    .group_by(Run.scheduled_at)
                ).all()
                connection.rollback()
                now_ms = time.time_ns() // 1_000_000
                for slot, count in counts:
                    visible.extend([(slot, now_ms)] * (count - seen.get(slot, 0)))
                    seen[slot] = count

    watcher = threading.Thread(target=watch_runs, daemon=True)
    try:
        time.sleep(2.0)  # the scheduler starts and takes the lease
        start = int(time.time()) + 3
        # Enable every job at once, all starting at the same whole second.
        with services.db.transaction() as session:
            session.execute(update(Job).where(Job.id.in_(ids)).values(enabled=True, start_time=start, next_fire_at=0))
        finisher.start()
        watcher.start()
        load_before = load_average()
        time.sleep(max(0.0, start + seconds + 2 - time.time()))
        load_after = load_average()
    finally:
        stop.set()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    finisher.join(5)
    watcher.join(5)
    first = start + 1  # either trigger: its first slot is one second after the start time
    last = first + seconds - 1
    with services.db.transaction(write=False) as session:
        rows = session.execute(
            select(JobFire.scheduled_at, JobFire.fired_at_ms)
            .where(JobFire.scheduled_at >= first, JobFire.scheduled_at <= last)
        ).all()
    services.db.dispose()
    lags = [fired - slot * 1000 for slot, fired in rows]
    seen_lags = [at - slot * 1000 for slot, at in visible if first <= slot <= last]
    steady = [at - slot * 1000 for slot, at in visible if first < slot <= last]
    return {
        "backend": backend, "jobs": jobs, "trigger": trigger, "seconds": seconds,
        "expected_fires": jobs * seconds, "fires": len(lags), "missing": jobs * seconds - len(lags),
        "p50": percentile(lags, 50), "p99": percentile(lags, 99), "max": max(lags) if lags else None,
        "visible_fires": len(seen_lags), "visible_p50": percentile(seen_lags, 50),
        "visible_p99": percentile(seen_lags, 99), "visible_max": max(seen_lags) if seen_lags else None,
        "steady_visible_p50": percentile(steady, 50), "steady_visible_p99": percentile(steady, 99),
        "steady_visible_max": max(steady) if steady else None,
        "worst_seconds": worst_seconds(visible, first, last),
        "create_jobs_s": round(created, 1), "load": f"{load_before} -> {load_after}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite", help="comma-separated: sqlite, postgres, mysql")
    parser.add_argument("--jobs", default="10,1000", help="comma-separated job counts")
    parser.add_argument("--seconds", type=int, default=0,
                        help="measured window per case (default: enough for >= 200 fires, at least 10 s)")
    parser.add_argument("--trigger", choices=("periodic", "cron"), default="periodic")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kfpb-fire-lag-"))
    manifest = compile_manifest(workdir)
    results = []
    print("| backend | jobs | trigger | fires | missing | recorded p50 | p99 | max | visible p50 | p99 | max "
          "| visible p99 w/o 1st s | load (1/5/15 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        for jobs in (int(n) for n in args.jobs.split(",")):
            seconds = args.seconds or max(10, -(-200 // jobs))
            with fresh_database(backend, args) as database:
                result = run_case(database.url, backend, jobs, seconds, args.trigger, manifest, workdir)
            results.append(result)
            print(f"| {backend} | {jobs} | {args.trigger} | {result['fires']} | {result['missing']} "
                  f"| {result['p50']:.0f} | {result['p99']:.0f} | {result['max']:.0f} "
                  f"| {result['visible_p50']:.0f} | {result['visible_p99']:.0f} | {result['visible_max']:.0f} "
                  f"| {result['steady_visible_p99']:.0f} | {result['load']} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
