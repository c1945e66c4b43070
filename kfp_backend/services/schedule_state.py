"""The scheduler's view of job state: due jobs and their progress, fired runs, job fires and the
scheduler lease (store/scheduler_repo.py). When a job fires is the scheduler's to decide; this
module reads and writes the rows it needs, as execution_state does for the executor."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from kfp_backend.store import scheduler_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.errors import DuplicateKeyError
from kfp_backend.store.models import Job, JobFire

# Job and JobFire rows are part of this service's interface: the scheduler takes these types from here.
__all__ = ["Job", "JobFire", "ScheduleStateService", "ScheduleTransaction", "SlotAlreadyFired"]


class SlotAlreadyFired(Exception):
    """Another scheduler fired one of the slots first: the firing transaction was rolled back."""


class ScheduleTransaction:
    """The scheduler's rows in one transaction (see ScheduleStateService.transaction)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def due_jobs(
        self,
        now: int,
        *,
        limit: int,
        job_ids: Sequence[str] | None = None,
        lock: bool = True,
        part: tuple[int, int] | None = None,
    ) -> list[Job]:
        """Enabled jobs due by second `now`, most overdue first; locked until the commit unless `lock`
        is False. `part=(k, n)`: the k-th of n disjoint parts of them."""
        return repo.due_jobs(self._session, now, limit=limit, job_ids=job_ids, lock=lock, part=part)

    def active_run_counts(self, job_ids: Iterable[str]) -> dict[str, int]:
        return repo.active_run_counts(self._session, job_ids)

    def job_manifests(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The pipeline spec each job runs, by job id."""
        return repo.job_manifests(self._session, job_ids)

    def experiment_names(self, experiment_ids: Iterable[str]) -> dict[str, str]:
        return repo.experiment_names(self._session, experiment_ids)

    def record_runs(self, runs: Sequence[dict[str, Any]], manifests: Sequence[dict[str, Any]]) -> None:
        """Insert fired runs and their manifests (services.run_rows' rows) in bulk."""
        repo.record_runs(self._session, runs, manifests)

    def save_progress(self, progress: Sequence[dict[str, Any]]) -> None:
        repo.save_progress(self._session, progress)

    def record_fires(self, fires: Sequence[dict[str, Any]]) -> None:
        """The exactly-once guard: a slot fired before makes the transaction end in SlotAlreadyFired."""
        repo.record_fires(self._session, fires)

    def get_fire(self, job_id: str, scheduled_at: int) -> JobFire | None:
        return repo.get_fire(self._session, job_id, scheduled_at)


class ScheduleStateService:
    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[ScheduleTransaction]:
        """One transaction: commits when the block ends, rolls back on any exception. A duplicate job
        fire (another scheduler fired a slot first) comes out as SlotAlreadyFired. `write=False`: a
        read-only one, whose due_jobs must not lock."""
        try:
            with self._db.transaction(write=write) as session:
                yield ScheduleTransaction(session)
        except DuplicateKeyError as exc:
            raise SlotAlreadyFired(str(exc)) from exc

    def earliest_next_fire(self) -> int | None:
        """The earliest next_fire_at of the enabled jobs (seconds), or None."""
        with self._db.transaction(write=False) as session:
            return repo.earliest_next_fire(session)

    def refresh_statuses(self) -> int:
        """Bring the job statuses the fires do not set up to date; how many changed."""
        with self._db.transaction() as session:
            return repo.refresh_statuses(session)

    def take_lease(self, name: str, holder: str, *, now_ms: int, expires_at_ms: int) -> bool:
        """Take or renew lease `name` for `holder` until `expires_at_ms`; False if another holds it."""
        with self._db.transaction() as session:
            return repo.take_lease(session, name, holder, now_ms=now_ms, expires_at_ms=expires_at_ms)

    def release_lease(self, name: str, holder: str) -> None:
        with self._db.transaction() as session:
            repo.release_lease(session, name, holder)
