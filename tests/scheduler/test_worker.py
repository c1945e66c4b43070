"""The live scheduler loop (real time, real APScheduler): jobs made through the Job service fire on
time, changes take effect at once through the job_changed hook (the poll is slowed down to prove it),
and a stopped scheduler hands its lease over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfp_backend.config import Settings
from kfp_backend.scheduler.cron import cron_error
from kfp_backend.scheduler.worker import SchedulerWorker, attach_to_jobs, build_scheduler
from kfp_backend.services.all_services import Services
from kfp_backend.services.authorization import SYSTEM
from kfp_backend.services.jobs import NewJob, NewTrigger
from kfp_backend.store.db import Database
from tests.scheduler.helpers import fires_of, runs_of


@pytest.fixture
def services(db_url: str, tmp_path: Path) -> Iterator[Services]:
    settings = Settings(database_url=db_url, data_dir=tmp_path, executor_enabled=False,
                        scheduler_poll_seconds=30.0, scheduler_heartbeat_seconds=0.5)
    built = Services.build(settings, Database(db_url, pool_size=4), cron_check=cron_error)
    built.bootstrap()
    yield built
    built.db.dispose()


@pytest.fixture
def scheduler(services: Services) -> Iterator[SchedulerWorker]:
    worker = build_scheduler(services.settings, services)
    attach_to_jobs(services, worker)
    worker.start()
    yield worker
    worker.stop()


def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_jobs_fire_on_time_and_changes_take_effect_at_once(
    services: Services, scheduler: SchedulerWorker, manifest: str
) -> None:
    wait_for(scheduler.lease.held)
    job = services.jobs.create(NewJob(
        name="every second", workflow_manifest=manifest, max_concurrency=10, enabled=True,
        trigger=NewTrigger(kind="periodic", interval_seconds=1),
    ), caller=SYSTEM).job
    wait_for(lambda: len(fires_of(services.db, job.id)) >= 3)
    fires = fires_of(services.db, job.id)
    assert [f.scheduled_at for f in fires[:3]] == [job.created_at + 1, job.created_at + 2, job.created_at + 3]
    lags = [f.fired_at_ms - f.scheduled_at * 1000 for f in fires]
    # Woken for the due time, not by the 30 s poll (how close to it is the bench's business), and
    # never committed before it.
    assert all(0 <= lag < 15_000 for lag in lags), lags
    assert services.jobs.get(job.id, caller=SYSTEM).job.status == "Enabled"

    services.jobs.disable(job.id, caller=SYSTEM)
    count = len(runs_of(services.db, job.id))
    time.sleep(1.5)
    assert len(runs_of(services.db, job.id)) == count
    services.jobs.enable(job.id, caller=SYSTEM)  # catch-up: the slots missed while disabled fire, in order
    wait_for(lambda: len(fires_of(services.db, job.id)) >= count + 2)
    scheduled = [f.scheduled_at for f in fires_of(services.db, job.id)]
    assert scheduled == list(range(scheduled[0], scheduled[0] + len(scheduled)))

    services.jobs.delete(job.id, caller=SYSTEM)
    time.sleep(0.2)
    count = len(runs_of(services.db, job.id))
    time.sleep(1.5)
    assert len(runs_of(services.db, job.id)) == count

    once = services.jobs.create(NewJob(name="once", workflow_manifest=manifest, max_concurrency=1, enabled=True),
                                caller=SYSTEM)
    wait_for(lambda: len(runs_of(services.db, once.job.id)) == 1, timeout=2)


def test_a_stopped_scheduler_releases_its_lease_to_a_standby(services: Services, manifest: str) -> None:
    active = build_scheduler(services.settings, services)
    standby = build_scheduler(services.settings, services)
    active.start()
    try:
        wait_for(active.lease.held)
        standby.start()
        time.sleep(1.0)
        assert not standby.lease.held()
        active.stop()
        wait_for(standby.lease.held, timeout=3)  # on its next heartbeat, not after the lease length
    finally:
        active.stop()
        standby.stop()
