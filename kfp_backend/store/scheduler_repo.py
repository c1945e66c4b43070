"""What the scheduler reads and writes: due jobs (locked while they fire), the active runs of jobs,
job fires (one row per job and scheduled time: the primary key is the exactly-once guard), the
jobs' schedule progress, and the scheduler lease.

A firing transaction locks the due job rows first (SELECT ... FOR UPDATE; SQLite's BEGIN IMMEDIATE
serializes writers anyway), so two schedulers never fire the same job at once and every change of a
job (disable, delete) either happens before the fire, which then sees it, or after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert as insert_rows
from kfp_backend.store.errors import DuplicateKeyError
from kfp_backend.store.models import (
    Experiment,
    Job,
    JobFire,
    JobManifest,
    Run,
    RunManifest,
    SchedulerLease,
)

# A run is active until it reaches one of these (the executor's notion of finished, too).
FINAL_STATUSES = ("Succeeded", "Failed", "Error", "Skipped")


def earliest_next_fire(session: Session) -> int | None:
    """The smallest next_fire_at of the enabled jobs (due ones included), or None if none will fire."""
    return session.scalar(
        select(func.min(Job.next_fire_at)).where(Job.enabled == true(), Job.next_fire_at.is_not(None))
    )


def due_jobs(
    session: Session, now: int, *, limit: int, job_ids: Sequence[str] | None = None, lock: bool = True
) -> list[Job]:
    """Enabled jobs whose next_fire_at <= now, most overdue first, locked for this transaction."""
    statement = select(Job).where(Job.enabled == true(), Job.next_fire_at.is_not(None), Job.next_fire_at <= now)
    if job_ids is not None:
        statement = statement.where(Job.id.in_(list(job_ids)))
    statement = statement.order_by(Job.next_fire_at, Job.id).limit(limit)
    if lock:
        statement = statement.with_for_update()
    return list(session.scalars(statement))


def active_run_counts(session: Session, job_ids: Iterable[str]) -> dict[str, int]:
    """How many runs of each job are not finished (the max_concurrency count)."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Run.job_id, func.count())
        .where(Run.job_id.in_(wanted), Run.finished_at == 0, Run.status.not_in(FINAL_STATUSES))
        .group_by(Run.job_id)
    )
    return {job_id: count for job_id, count in rows}


def job_manifests(session: Session, job_ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(JobManifest.job_id, JobManifest.pipeline_spec_manifest).where(JobManifest.job_id.in_(wanted))
    )
    return {job_id: text for job_id, text in rows}


def experiment_names(session: Session, experiment_ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(experiment_ids))
    if not wanted:
        return {}
    rows = session.execute(select(Experiment.id, Experiment.name).where(Experiment.id.in_(wanted)))
    return {experiment_id: name for experiment_id, name in rows}


def record_runs(session: Session, runs: Sequence[dict[str, Any]], manifests: Sequence[dict[str, Any]]) -> None:
    """Insert fired runs and their manifests, each kind as one executemany (Core: no ORM bookkeeping;
    multi-row VALUES statements measured slower: SQLAlchemy compiles each one anew)."""
    if runs:
        session.execute(Run.__table__.insert(), list(runs))
        session.execute(RunManifest.__table__.insert(), list(manifests))


def record_fires(session: Session, fires: Sequence[dict[str, Any]]) -> None:
    """Insert job fires: a (job, scheduled time) fired before raises DuplicateKeyError (roll back)."""
    if not fires:
        return
    try:
        session.execute(JobFire.__table__.insert(), list(fires))
    except IntegrityError as exc:
        raise DuplicateKeyError(str(exc.orig)) from exc


def save_progress(session: Session, progress: Sequence[dict[str, Any]]) -> None:
    """Set last_scheduled_at / last_index / next_fire_at of jobs this transaction has locked
    (dicts with keys job_id, last_scheduled_at, last_index, next_fire_at)."""
    if progress:
        table = Job.__table__
        session.execute(
            table.update()
            .where(table.c.id == bindparam("job_id"))
            .values(
                last_scheduled_at=bindparam("last_scheduled_at"),
                last_index=bindparam("last_index"),
                next_fire_at=bindparam("next_fire_at"),
            ),
            list(progress),
        )


def get_fire(session: Session, job_id: str, scheduled_at: int) -> JobFire | None:
    return session.get(JobFire, (job_id, scheduled_at))


def list_fires(session: Session, job_id: str | None = None) -> list[JobFire]:
    statement = select(JobFire).order_by(JobFire.job_id, JobFire.scheduled_at)
    if job_id is not None:
        statement = statement.where(JobFire.job_id == job_id)
    return list(session.scalars(statement))


def delete_fires(session: Session, job_id: str) -> None:
    session.execute(delete(JobFire).where(JobFire.job_id == job_id))


# -- the lease -------------------------------------------------------------------------------------------


def take_lease(session: Session, name: str, holder: str, *, now_ms: int, expires_at_ms: int) -> bool:
    """Take or renew the lease `name` for `holder` until `expires_at_ms`: succeeds when nobody holds
    it, `holder` holds it, or the holder let it expire. One conditional UPDATE (or the first INSERT)
    decides, so two contenders never both win."""
    taken = session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == name,
            (SchedulerLease.holder == holder) | (SchedulerLease.expires_at_ms < now_ms),
        )
        .values(holder=holder, expires_at_ms=expires_at_ms)
    ).rowcount
    if taken:
        return True
    if session.get(SchedulerLease, name) is not None:
        return False
    try:
        insert_rows(session, SchedulerLease(name=name, holder=holder, expires_at_ms=expires_at_ms))
    except DuplicateKeyError:
        return False
    return True


def release_lease(session: Session, name: str, holder: str) -> None:
    session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
        .values(expires_at_ms=0)
    )


def get_lease(session: Session, name: str) -> SchedulerLease | None:
    return session.get(SchedulerLease, name)
