"""A job's status is what upstream shows (the latest ScheduledWorkflow condition): NO_STATUS until the
scheduler has looked at it, then Enabled or Disabled, and for a one-off job Running while its run is
active and Succeeded after. Deleting a job deletes its fires (its runs stay)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfp_backend.config import Settings
from kfp_backend.scheduler.cron import cron_error
from kfp_backend.scheduler.firing import JobFiring
from kfp_backend.services.all_services import Services
from kfp_backend.services.authorization import SYSTEM
from kfp_backend.services.jobs import NewJob, NewTrigger
from kfp_backend.services.schedule_state import ScheduleStateService
from kfp_backend.store import scheduler_repo
from kfp_backend.store.db import Database
from tests.scheduler.helpers import FakeClock, finish_runs, fires_of, runs_of


@pytest.fixture
def services(db_url: str, tmp_path: Path) -> Iterator[Services]:
    settings = Settings(database_url=db_url, data_dir=tmp_path, executor_enabled=False, scheduler_enabled=False)
    built = Services.build(settings, Database(db_url, pool_size=4), cron_check=cron_error)
    built.bootstrap()
    yield built
    built.db.dispose()


def status(services: Services, job_id: str) -> str:
    return services.jobs.get(job_id, caller=SYSTEM).job.status


def refresh(services: Services) -> int:
    with services.db.transaction() as session:
        return scheduler_repo.refresh_statuses(session)


def test_status_is_the_schedule_condition_upstream_reports(services: Services, manifest: str) -> None:
    clock = FakeClock(int(time.time()))
    firing = JobFiring(ScheduleStateService(services.db), services.settings, clock_ms=clock)
    periodic = services.jobs.create(NewJob(
        name="hourly", workflow_manifest=manifest, max_concurrency=1, enabled=True,
        trigger=NewTrigger(kind="periodic", interval_seconds=3600),
    ), caller=SYSTEM).job
    paused = services.jobs.create(NewJob(
        name="paused", workflow_manifest=manifest, max_concurrency=1, enabled=False,
        trigger=NewTrigger(kind="cron", cron="0 0 * * * *"),
    ), caller=SYSTEM).job
    assert status(services, periodic.id) == "NO_STATUS"  # as created, before any scheduler looked
    assert status(services, paused.id) == "NO_STATUS"

    assert firing.fire_due().fired == []  # looked at, nothing due yet
    assert status(services, periodic.id) == "Enabled"
    assert status(services, paused.id) == "NO_STATUS"  # firing never looks at disabled jobs...
    assert refresh(services) == 1
    assert status(services, paused.id) == "Disabled"  # ...the scheduler's refresh does
    assert refresh(services) == 0  # nothing left to change: no row is written again

    services.jobs.disable(periodic.id, caller=SYSTEM)
    assert status(services, periodic.id) == "Disabled"
    services.jobs.enable(periodic.id, caller=SYSTEM)
    services.jobs.enable(paused.id, caller=SYSTEM)
    assert status(services, periodic.id) == "Enabled"
    assert status(services, paused.id) == "Enabled"

    # Archiving the experiment disables its jobs: their status says so.
    services.experiments.archive(periodic.experiment_id, caller=SYSTEM)
    assert status(services, periodic.id) == "Disabled"
    assert status(services, paused.id) == "Disabled"
    assert refresh(services) == 0


def test_a_one_off_job_is_running_then_succeeded(services: Services, manifest: str) -> None:
    clock = FakeClock(int(time.time()))
    firing = JobFiring(ScheduleStateService(services.db), services.settings, clock_ms=clock)
    once = services.jobs.create(NewJob(name="once", workflow_manifest=manifest, max_concurrency=1,
                                       enabled=True), caller=SYSTEM).job
    clock.set(once.created_at)  # a job without a schedule fires once, at its creation
    assert [f.index for f in firing.fire_due().fired] == [1]
    assert status(services, once.id) == "Running"
    assert refresh(services) == 0  # its run is still active
    assert status(services, once.id) == "Running"

    finish_runs(services.db, once.id, "Failed")
    assert refresh(services) == 1
    assert status(services, once.id) == "Succeeded"  # the schedule completed (whatever the run's outcome)
    # Disabling a completed one-off does not make it look schedulable again.
    services.jobs.disable(once.id, caller=SYSTEM)
    assert status(services, once.id) == "Succeeded"
    assert refresh(services) == 0


def test_deleting_a_job_deletes_its_fires_and_keeps_its_runs(services: Services, manifest: str) -> None:
    clock = FakeClock(int(time.time()))
    firing = JobFiring(ScheduleStateService(services.db), services.settings, clock_ms=clock)
    jobs = [
        services.jobs.create(NewJob(name=f"every second {i}", workflow_manifest=manifest, max_concurrency=10,
                                    enabled=True, trigger=NewTrigger(kind="periodic", interval_seconds=1)),
                             caller=SYSTEM).job
        for i in range(2)
    ]
    doomed, kept = jobs
    clock.set(doomed.created_at + 3.5)
    assert firing.fire_due().fired
    fired = len(fires_of(services.db, doomed.id))
    assert fired == 3
    kept_fires = fires_of(services.db, kept.id)
    assert kept_fires

    services.jobs.delete(doomed.id, caller=SYSTEM)
    assert fires_of(services.db, doomed.id) == []
    assert len(runs_of(services.db, doomed.id)) == fired  # runs outlive their job, as upstream
    assert [f.run_id for f in fires_of(services.db, kept.id)] == [f.run_id for f in kept_fires]
