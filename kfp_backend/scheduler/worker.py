"""The scheduler loop: APScheduler keeps the time, the database keeps the schedule. While this process
holds the lease, a tick fires what is due and wakes again just before the next due time, writing those
runs ahead. See docs/scheduling.md ("The scheduler loop").
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from kfp_backend.config import Settings
from kfp_backend.scheduler.firing import JobFiring, wall_clock_ms
from kfp_backend.scheduler.lease import Lease
from kfp_backend.services.ir_run_manifest import fired_ir_document
from kfp_backend.services.schedule_state import ScheduleStateService

log = logging.getLogger(__name__)

TICK_JOB = "tick"
LEASE_JOB = "lease"
# One tick fires for at most this long, then lets the next tick go on (a huge catch-up backlog).
TICK_BUDGET_SECONDS = 2.0
# A due time closer than this is waited for inside the tick instead of by rescheduling it.
_INLINE_WAIT_SECONDS = 0.02
# Fires due at least this far ahead are built ahead of time (JobFiring.prepare).
_PREPARE_MIN_SECONDS = 0.2
# How long before a due time its runs are written (then held uncommitted until the due time):
# this much times the last writing time, within the bounds below.
_AHEAD_FACTOR = 1.5
_AHEAD_MIN_SECONDS = 0.05
_AHEAD_MAX_SECONDS = 0.9
# Before the first measured write: this much per prepared fire (plus the minimum).
_AHEAD_PER_FIRE_SECONDS = 0.0003
# A fire ahead of at least this many prepared fires is written by AHEAD_PARTS threads, on PostgreSQL
# only (SQLite's writers take turns; on MariaDB the halves' locking reads measured waiting on each other).
AHEAD_PARALLEL_MIN_FIRES = 200
AHEAD_PARTS = 2
# A tick this close to its intended time counts as on time (APScheduler wakes a little late).
_WAKE_SLACK_SECONDS = 0.02
# The statuses fires do not set are refreshed this often, when nothing is due within _QUIET_SECONDS.
STATUS_REFRESH_SECONDS = 2.0
_QUIET_SECONDS = 0.3


class SchedulerWorker:
    """Fires enabled jobs while this process holds the scheduler lease. `start()` / `stop()`."""

    def __init__(
        self,
        state: ScheduleStateService,
        settings: Settings,
        firing: JobFiring,
        *,
        lease: Lease | None = None,
    ) -> None:
        self._state = state
        self._settings = settings
        self.firing = firing
        self.lease = lease or Lease(state, ttl_seconds=settings.scheduler_lease_seconds)
        self._scheduler: BackgroundScheduler | None = None
        self._tick_lock = threading.Lock()
        self._again = False
        self._stopping = threading.Event()
        self._prepared_for: int | None = None
        self._ahead_for: int | None = None
        self._prepared_count = 0
        self._statuses_at = 0.0  # monotonic
        self.fired_total = 0

    # -- life cycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        apscheduler_log = logging.getLogger("apscheduler")
        if apscheduler_log.level == logging.NOTSET:
            # It logs every job execution at INFO: ten lines a second here.
            apscheduler_log.setLevel(logging.WARNING)
        scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 2},
        )
        now = datetime.now(timezone.utc)
        scheduler.add_job(self._heartbeat, "interval", seconds=self._settings.scheduler_heartbeat_seconds,
                          id=LEASE_JOB, next_run_time=now, max_instances=1)
        scheduler.add_job(self._tick, "interval", seconds=self._settings.scheduler_poll_seconds, id=TICK_JOB,
                          next_run_time=now)
        self._scheduler = scheduler
        scheduler.start()
        log.info("scheduler started (holder %s, lease %.0f s)", self.lease.holder, self.lease.ttl_seconds)

    def stop(self) -> None:
        """Stop ticking (a tick in progress finishes its transaction) and release the lease."""
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.lease.release()

    # -- hooks ------------------------------------------------------------------------------------------

    def job_changed(self, job_id: str) -> None:
        """A job was created, enabled, disabled or deleted (committed): look at the jobs now."""
        self.firing.forget(job_id)
        self._wake(datetime.now(timezone.utc))

    # -- the APScheduler jobs ---------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        was_held = self.lease.held()
        if self.lease.refresh() and not was_held:
            self._wake(datetime.now(timezone.utc))

    def _tick(self) -> None:
        if not self._tick_lock.acquire(blocking=False):
            self._again = True  # the running tick goes round once more
            return
        try:
            self._run_tick()
        except Exception:
            log.exception("scheduler tick failed; the next tick retries")
        finally:
            self._tick_lock.release()

    def _run_tick(self) -> None:
        deadline = time.monotonic() + TICK_BUDGET_SECONDS
        while not self._stopping.is_set() and self.lease.held():
            self._again = False
            now_ms = wall_clock_ms()
            earliest = self.firing.next_wake()
            if earliest is not None and earliest * 1000 <= now_ms:
                with _collector_paused():
                    result = self.firing.fire_due(now_ms)
                self.fired_total += len(result.fired)
                if time.monotonic() > deadline:
                    self._wake(datetime.now(timezone.utc))
                    return
                continue  # something was due: look again (a backlog, or the next batch)
            if self._again:
                continue
            delay = None if earliest is None else earliest - now_ms / 1000
            if (delay is None or delay > _QUIET_SECONDS) and time.monotonic() >= self._statuses_at:
                self._refresh_statuses()
                continue
            if earliest is None or delay is None:
                return
            if earliest != self._prepared_for and delay > _PREPARE_MIN_SECONDS:
                # Build the coming second's runs now, so that firing them then only writes rows.
                self._prepared_for = earliest
                self._prepared_count = self.firing.prepare(earliest)
                continue
            lead = self.ahead_lead()
            if earliest != self._ahead_for and delay <= lead + _WAKE_SLACK_SECONDS:
                self._ahead_for = earliest  # once: whatever it finds, the rest fires when due
                parallel = self._state.dialect == "postgresql" and self._prepared_count >= AHEAD_PARALLEL_MIN_FIRES
                with _collector_paused():
                    result = self.firing.fire_ahead(earliest, self._hold_until,
                                                    parts=AHEAD_PARTS if parallel else 1)
                self.fired_total += len(result.fired)
                continue
            if delay <= _INLINE_WAIT_SECONDS:
                self._stopping.wait(max(delay, 0.0))
                continue
            wake_at = earliest - lead if earliest != self._ahead_for else earliest + 0.001
            self._wake(datetime.fromtimestamp(wake_at, timezone.utc))
            return

    def ahead_lead(self) -> float:
        """How long before a due time its runs are written (see docs/scheduling.md)."""
        measured = self.firing.stage_seconds
        if measured <= 0:
            measured = self._prepared_count * _AHEAD_PER_FIRE_SECONDS
        return min(measured * _AHEAD_FACTOR + _AHEAD_MIN_SECONDS, _AHEAD_MAX_SECONDS)

    def _hold_until(self, due_ms: int) -> bool:
        """Wait until the wall clock reaches `due_ms`; False if this scheduler should not commit then."""
        while True:
            remaining = due_ms - wall_clock_ms()
            if remaining <= 0:
                break
            if self._stopping.wait(remaining / 1000):
                return False
        return self.lease.held() and not self._stopping.is_set()

    def _refresh_statuses(self) -> None:
        self._statuses_at = time.monotonic() + STATUS_REFRESH_SECONDS
        changed = self._state.refresh_statuses()
        if changed:
            log.debug("job statuses refreshed: %d changed", changed)

    def _wake(self, when: datetime) -> None:
        """Move the next tick to `when` if that is sooner than it would come anyway."""
        scheduler = self._scheduler
        if scheduler is None or self._stopping.is_set():
            return
        try:
            job = scheduler.get_job(TICK_JOB)
            if job is not None and (job.next_run_time is None or when < job.next_run_time):
                job.modify(next_run_time=when)
        except Exception:  # the scheduler is shutting down
            log.debug("could not move the next tick", exc_info=True)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection in this block (it catches up after it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_scheduler(settings: Settings, services: object) -> SchedulerWorker:
    """A scheduler over `services` (a services.all_services.Services): its runs reach this process's
    executor, if any, through RunService's execution hooks."""
    runs = services.runs  # type: ignore[attr-defined]
    state = ScheduleStateService(services.db)  # type: ignore[attr-defined]
    firing = JobFiring(state, settings, execution=lambda: runs.execution, ir_run_document=fired_ir_document)
    return SchedulerWorker(state, settings, firing)


def attach_to_jobs(services: object, scheduler: SchedulerWorker) -> None:
    """Let the Job API wake the scheduler after its commits (`job_changed(job_id)`)."""
    jobs = getattr(services, "jobs", None)
    if jobs is not None:
        jobs.attach_scheduling(scheduler)
