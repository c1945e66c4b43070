"""What the scheduler reads and writes: due jobs (locked while they fire), the active runs of jobs,
job fires (one row per job and scheduled time: the primary key is the exactly-once guard), the
jobs' schedule progress, and the scheduler lease.

A firing transaction locks the due job rows first (SELECT ... FOR UPDATE; SQLite's BEGIN IMMEDIATE
serializes writers anyway), so two schedulers never fire the same job at once and every change of a
job (disable, delete) either happens before the fire, which then sees it, or after it.

Fired rows go in as one statement per table: an executemany, or on PostgreSQL a COPY (a thousand runs
a second: COPY costs the server and the driver a fraction of a thousand INSERTs, and the job_fires
COPY, which comes last and is the exactly-once guard, still fails as a whole on a duplicate key).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, exists, false, func, not_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert as insert_rows
from kfp_backend.store.common import values_by_key
from kfp_backend.store.errors import DuplicateKeyError
from kfp_backend.store.jobs_repo import one_off_fired
from kfp_backend.store.models import (
    Experiment,
    Job,
    JobFire,
    JobManifest,
    Run,
    RunManifest,
    SchedulerLease,
)
from kfp_backend.store.states import FINAL_RUN_STATUSES, JOB_DISABLED, JOB_ENABLED, JOB_RUNNING, JOB_SUCCEEDED


def earliest_next_fire(session: Session) -> int | None:
    """The smallest next_fire_at of the enabled jobs (due ones included), or None if none will fire."""
    return session.scalar(
        select(func.min(Job.next_fire_at)).where(Job.enabled == true(), Job.next_fire_at.is_not(None))
    )


_ID_DIGITS = "0123456789abcdef"


def due_jobs(
    session: Session,
    now: int,
    *,
    limit: int,
    job_ids: Sequence[str] | None = None,
    lock: bool = True,
    part: tuple[int, int] | None = None,
) -> list[Job]:
    """Enabled jobs whose next_fire_at <= now, most overdue first, locked for this transaction.
    `part=(k, n)`: only the k-th of n disjoint parts of the jobs, split by the first digit of their ids
    (UUIDs; an id starting otherwise is in no part)."""
    statement = select(Job).where(Job.enabled == true(), Job.next_fire_at.is_not(None), Job.next_fire_at <= now)
    if job_ids is not None:
        statement = statement.where(Job.id.in_(list(job_ids)))
    if part is not None:
        k, n = part
        digits = _ID_DIGITS[len(_ID_DIGITS) * k // n:len(_ID_DIGITS) * (k + 1) // n]
        statement = statement.where(func.substr(Job.id, 1, 1).in_(list(digits)))
    statement = statement.order_by(Job.next_fire_at, Job.id).limit(limit)
    if lock:
        statement = statement.with_for_update()
    return list(session.scalars(statement))


def _active_runs(job_id: Any) -> Any:
    """The unfinished runs of `job_id` (a value or a column), as ix_runs_job_finished_at serves them."""
    return (Run.job_id == job_id) & (Run.finished_at == 0) & Run.status.not_in(FINAL_RUN_STATUSES)


def active_run_counts(session: Session, job_ids: Iterable[str]) -> dict[str, int]:
    """How many runs of each job are not finished (the max_concurrency count)."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Run.job_id, func.count())
        .where(Run.job_id.in_(wanted), Run.finished_at == 0, Run.status.not_in(FINAL_RUN_STATUSES))
        .group_by(Run.job_id)
    )
    return {job_id: count for job_id, count in rows}


def job_manifests(session: Session, job_ids: Iterable[str]) -> dict[str, str]:
    return values_by_key(session, JobManifest.job_id, JobManifest.pipeline_spec_manifest, job_ids)


def experiment_names(session: Session, experiment_ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(experiment_ids))
    if not wanted:
        return {}
    rows = session.execute(select(Experiment.id, Experiment.name).where(Experiment.id.in_(wanted)))
    return {experiment_id: name for experiment_id, name in rows}


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _copy(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY rows into a PostgreSQL table, inside the session's transaction. A column the rows leave out
    gets its model's scalar default (as an INSERT through SQLAlchemy would)."""
    columns = list(rows[0])
    defaults = {
        column.name: column.default.arg
        for column in table.columns
        if column.name not in rows[0] and column.default is not None and column.default.is_scalar
    }
    names = columns + list(defaults)
    extra = tuple(defaults.values())
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(tuple(row[name] for name in columns) + extra)
    finally:
        cursor.close()


def _insert_many(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if _postgres(session):
        _copy(session, table, rows)
    else:
        # Core executemany: no ORM bookkeeping (multi-row VALUES statements measured slower:
        # SQLAlchemy compiles each one anew).
        session.execute(table.insert(), list(rows))


def record_runs(session: Session, runs: Sequence[dict[str, Any]], manifests: Sequence[dict[str, Any]]) -> None:
    """Insert fired runs and their manifests, one statement per table."""
    _insert_many(session, Run.__table__, runs)  # type: ignore[arg-type]
    _insert_many(session, RunManifest.__table__, manifests)  # type: ignore[arg-type]


def record_fires(session: Session, fires: Sequence[dict[str, Any]]) -> None:
    """Insert job fires: a (job, scheduled time) fired before raises DuplicateKeyError (roll back)."""
    if not fires:
        return
    try:
        _insert_many(session, JobFire.__table__, fires)  # type: ignore[arg-type]
    except IntegrityError as exc:
        raise DuplicateKeyError(str(exc.orig)) from exc
    except Exception as exc:  # the driver's own error, from a COPY
        if type(exc).__name__ == "UniqueViolation":
            raise DuplicateKeyError(str(exc)) from exc
        raise


def save_progress(session: Session, progress: Sequence[dict[str, Any]]) -> None:
    """Set last_scheduled_at / last_index / next_fire_at / status of jobs this transaction has locked
    (dicts with keys job_id, last_scheduled_at, last_index, next_fire_at, status)."""
    if progress:
        table = Job.__table__
        session.execute(
            table.update()
            .where(table.c.id == bindparam("job_id"))
            .values(
                last_scheduled_at=bindparam("last_scheduled_at"),
                last_index=bindparam("last_index"),
                next_fire_at=bindparam("next_fire_at"),
                status=bindparam("status"),
            ),
            list(progress),
        )


def refresh_statuses(session: Session) -> int:
    """Bring every job's status up to date where firing does not: a job enabled or disabled without
    the scheduler having looked at it since (created disabled, or from before statuses were kept), and
    a fired one-off, `Running` while its run is active and `Succeeded` once it is not. Conditional
    UPDATEs: rows already right are not written. Returns how many jobs changed."""
    active = exists().where(_active_runs(Job.id))
    changed = 0
    for condition, status in (
        ((Job.enabled == true()) & not_(one_off_fired()), JOB_ENABLED),
        ((Job.enabled == false()) & not_(one_off_fired()), JOB_DISABLED),
        (one_off_fired() & active, JOB_RUNNING),
        (one_off_fired() & ~active, JOB_SUCCEEDED),
    ):
        changed += session.execute(
            update(Job).where(condition, Job.status != status).values(status=status)
            .execution_options(synchronize_session=False)
        ).rowcount
    return changed


def get_fire(session: Session, job_id: str, scheduled_at: int) -> JobFire | None:
    return session.get(JobFire, (job_id, scheduled_at))


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
