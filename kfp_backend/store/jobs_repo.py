"""Job rows and their manifests, as the JobService reads and writes them.

Listing reads the `jobs` table only. Enable and disable are single conditional UPDATEs, so that
`updated_at` moves only when `enabled` really changes, however many callers race. The schedule
progress columns (`last_scheduled_at`, `last_index`) belong to the scheduler; this module only sets
`next_fire_at = 0` ("look at this job now") when a job is created or enabled.

`status` is what upstream shows as the job's status: the latest condition of its ScheduledWorkflow,
`NO_STATUS` until the scheduler first looks at the job, then `Enabled` or `Disabled`, and for a job
without a schedule (a one-off, fired once) `Running` while its run is active, `Succeeded` after. The
scheduler keeps it (scheduler_repo); enabling and disabling set it at once here.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, delete, false, select, update
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert
from kfp_backend.store.listing import Listable, ListField, ListQuery, Page, list_page
from kfp_backend.store.models import Job, JobFire, JobManifest
from kfp_backend.store.states import JOB_DISABLED, JOB_ENABLED

# Upstream's job field map: these four, for sorting and filtering alike.
JOB_LISTABLE = Listable(
    type_name="Job",
    model=Job,
    id_column=Job.id,
    fields={
        "id": ListField(Job.id, str),
        "name": ListField(Job.name, str),
        "created_at": ListField(Job.created_at, int),
        "package_id": ListField(Job.pipeline_id, str),
    },
)
# next_fire_at meaning "due now": the scheduler computes the real next fire time.
DUE_NOW = 0


def one_off_fired() -> ColumnElement[bool]:
    """A job without a schedule that has fired its one run: its status follows that run, not `enabled`."""
    return and_(Job.trigger_kind == "", Job.last_index >= 1)


def enabled_status(enabled: bool) -> ColumnElement[str]:
    """The status a job gets when it is enabled or disabled (a fired one-off keeps its own)."""
    return case((one_off_fired(), Job.status), else_=JOB_ENABLED if enabled else JOB_DISABLED)


def add_job(session: Session, job: Job, manifest: JobManifest) -> None:
    insert(session, job)
    insert(session, manifest)


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def job_exists(session: Session, job_id: str) -> bool:
    return session.scalar(select(Job.id).where(Job.id == job_id)) is not None


def get_manifest(session: Session, job_id: str) -> JobManifest | None:
    return session.get(JobManifest, job_id)


def list_jobs(session: Session, query: ListQuery, scope: Sequence[ColumnElement[bool]] = ()) -> Page[Job]:
    return list_page(session, JOB_LISTABLE, query, scope)


def scope_experiment(experiment_id: str) -> ColumnElement[bool]:
    return Job.experiment_id == experiment_id


def scope_namespace(namespace: str) -> ColumnElement[bool]:
    return Job.namespace == namespace


def scope_pipeline_version(version_id: str) -> ColumnElement[bool]:
    return Job.pipeline_version_id == version_id


def scope_nothing() -> ColumnElement[bool]:
    return false()


def delete_job(session: Session, job_id: str) -> bool:
    """Delete a job, its manifest (ON DELETE CASCADE, made explicit) and its fires (the scheduler's
    exactly-once records: no scheduler fires a deleted job, and a job id is never reused); its runs stay.
    The job row goes first: that waits for a firing transaction holding it, so the fires it commits
    are deleted too."""
    deleted = session.execute(delete(Job).where(Job.id == job_id)).rowcount > 0
    session.execute(delete(JobManifest).where(JobManifest.job_id == job_id))
    session.execute(delete(JobFire).where(JobFire.job_id == job_id))
    return deleted


def set_enabled(session: Session, job_id: str, enabled: bool, now: int) -> bool:
    """Flip `enabled` if it differs; True when the row changed. Enabling makes the job due for a look."""
    values: dict[str, object] = {"enabled": enabled, "updated_at": now, "status": enabled_status(enabled)}
    if enabled:
        values["next_fire_at"] = DUE_NOW
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.enabled == (not enabled)).values(**values)
    )
    return result.rowcount > 0


def disable_experiment_jobs(session: Session, experiment_id: str, now: int) -> int:
    """Archiving an experiment disables all its jobs (and, as upstream, touches each one's updated_at)."""
    result = session.execute(
        update(Job)
        .where(Job.experiment_id == experiment_id)
        .values(enabled=False, updated_at=now, status=enabled_status(False))
    )
    return result.rowcount
