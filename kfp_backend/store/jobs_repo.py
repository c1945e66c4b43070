"""Job rows and their manifests, as the JobService reads and writes them.

Listing reads the `jobs` table only. Enable and disable are single conditional UPDATEs, so that
`updated_at` moves only when `enabled` really changes, however many callers race. The schedule
progress columns (`last_scheduled_at`, `last_index`) belong to the scheduler; this module only sets
`next_fire_at = 0` ("look at this job now") when a job is created or enabled.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, false, select, update
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert
from kfp_backend.store.listing import Listable, ListField, ListQuery, Page, list_page
from kfp_backend.store.models import Job, JobManifest

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
    """Delete a job and its manifest (ON DELETE CASCADE, made explicit); its runs stay."""
    session.execute(delete(JobManifest).where(JobManifest.job_id == job_id))
    return session.execute(delete(Job).where(Job.id == job_id)).rowcount > 0


def set_enabled(session: Session, job_id: str, enabled: bool, now: int) -> bool:
    """Flip `enabled` if it differs; True when the row changed. Enabling makes the job due for a look."""
    values: dict[str, object] = {"enabled": enabled, "updated_at": now}
    if enabled:
        values["next_fire_at"] = DUE_NOW
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.enabled == (not enabled)).values(**values)
    )
    return result.rowcount > 0


def disable_experiment_jobs(session: Session, experiment_id: str, now: int) -> int:
    """Archiving an experiment disables all its jobs (and, as upstream, touches each one's updated_at)."""
    result = session.execute(
        update(Job).where(Job.experiment_id == experiment_id).values(enabled=False, updated_at=now)
    )
    return result.rowcount
