"""Two `kfp-backend scheduler` processes on one PostgreSQL database with 1-second jobs for about a
minute: one holds the lease and fires; it is killed with SIGKILL half-way and the other takes over.
Every scheduled time of every job has exactly one run: consecutive seconds, no gap, no double."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from kfp_backend.config import Settings
from kfp_backend.scheduler.cron import cron_error
from kfp_backend.services.all_services import Services
from kfp_backend.services.authorization import SYSTEM
from kfp_backend.services.jobs import NewJob, NewTrigger
from kfp_backend.store import scheduler_repo
from kfp_backend.store.db import Database
from kfp_backend.store.models import JobFire, Run
from tests.databases import DatabaseFactory
from tests.e2e.servers import REPO_ROOT, server_env
from tests.scheduler.helpers import compile_pipeline

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 3
BEFORE_KILL_SECONDS = 20
AFTER_KILL_SECONDS = 25


@pytest.fixture
def postgres_url(database_factories: dict[str, DatabaseFactory]) -> Iterator[str]:
    with database_factories["postgres"].fresh() as url:
        yield url


def start_scheduler(url: str, log_path: Path) -> subprocess.Popen:
    env = {**server_env(), "KFP_BACKEND_SCHEDULER_LEASE_SECONDS": str(LEASE_SECONDS),
           "KFP_BACKEND_SCHEDULER_HEARTBEAT_SECONDS": "0.5"}
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "kfp_backend", "scheduler", "--database-url", url],
                                cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def lease_holder_pid(db: Database) -> int | None:
    with db.transaction(write=False) as session:
        lease = scheduler_repo.get_lease(session, "scheduler")
    if lease is None or lease.expires_at_ms < time.time() * 1000:
        return None
    return int(lease.holder.split(":")[1])


def test_two_schedulers_one_killed_every_slot_fires_exactly_once(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=postgres_url, data_dir=tmp_path, executor_enabled=False,
                        scheduler_enabled=False)
    services = Services.build(settings, Database(postgres_url, pool_size=4), cron_check=cron_error)
    services.bootstrap()
    manifest = compile_pipeline(tmp_path / "scheduled.yaml")
    log_path = tmp_path / "schedulers.log"
    processes = [start_scheduler(postgres_url, log_path) for _ in range(2)]
    stop = threading.Event()

    def finish_runs() -> None:  # no executor here: runs "finish" so max_concurrency never holds a slot back
        while not stop.wait(0.3):
            with services.db.transaction() as session:
                session.execute(update(Run).where(Run.finished_at == 0).values(status="Succeeded", finished_at=1))

    finisher = threading.Thread(target=finish_runs, daemon=True)
    finisher.start()
    try:
        # Both processes are up and one is active before the jobs exist: a slot due while the
        # schedulers were still starting (a loaded machine) would fire late but rightly.
        deadline = time.time() + 60
        while lease_holder_pid(services.db) is None and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the standby has tried the lease too
        jobs = [
            services.jobs.create(NewJob(name=f"every second {i}", workflow_manifest=manifest, max_concurrency=10,
                                        enabled=True, trigger=trigger), caller=SYSTEM).job
            for i, trigger in enumerate([NewTrigger(kind="periodic", interval_seconds=1),
                                         NewTrigger(kind="periodic", interval_seconds=1),
                                         NewTrigger(kind="cron", cron="* * * * * *")])
        ]
        time.sleep(BEFORE_KILL_SECONDS)
        active = lease_holder_pid(services.db)
        assert active in {p.pid for p in processes}, (active, log_path.read_text())
        victim = next(p for p in processes if p.pid == active)
        survivor = next(p for p in processes if p.pid != active)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.time()
        time.sleep(AFTER_KILL_SECONDS)
        assert lease_holder_pid(services.db) == survivor.pid, log_path.read_text()
        assert survivor.poll() is None
    finally:
        stop.set()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(15)
        finisher.join(5)
    end = time.time()

    with services.db.transaction(write=False) as session:
        for job in jobs:
            rows = list(session.scalars(
                select(JobFire).where(JobFire.job_id == job.id).order_by(JobFire.scheduled_at)))
            fires = [f.scheduled_at for f in rows]
            # The slots of the takeover gap were backfilled late by the survivor, not skipped.
            late = [f.scheduled_at for f in rows if f.fired_at_ms - f.scheduled_at * 1000 > 1500]
            assert late and all(killed_at - 2 <= slot <= killed_at + LEASE_SECONDS + 2 for slot in late), (
                late, killed_at)
            runs = Counter(session.scalars(select(Run.scheduled_at).where(Run.job_id == job.id)))
            assert fires[0] == job.created_at + 1
            gaps = sorted(set(range(fires[0], fires[-1])) - set(fires))
            assert fires == list(range(fires[0], fires[-1] + 1)), f"gaps: {gaps}"
            assert fires[-1] >= end - 3  # it kept firing up to the end
            assert fires[0] < killed_at - 5 and fires[-1] > killed_at + 10  # both sides of the kill
            assert runs == Counter(fires), "a scheduled time without exactly one run"
            indexes = session.scalars(select(func.max(JobFire.run_index)).where(JobFire.job_id == job.id)).one()
            assert indexes == len(fires)
    services.db.dispose()
