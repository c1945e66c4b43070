"""Job rows written straight into the store (as the Job API would leave them), a compiled pipeline,
and a controllable clock for firing tests."""

from __future__ import annotations

import json
import uuid
import warnings
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.components import create_component_from_func
from sqlalchemy import select, update

from kfp_backend.services.experiments import ExperimentService
from kfp_backend.store.db import Database
from kfp_backend.store.models import Job, JobFire, JobManifest, Run, RunManifest

BASE_IMAGE = "python:3.10-slim"


def _echo(text: str) -> str:
    print(text)
    return text


echo_op = create_component_from_func(_echo, base_image=BASE_IMAGE)


@dsl.pipeline(name="scheduled")
def scheduled_pipeline(stamp: str = "default-[[ScheduledTime]]", word: str = "hello"):
    echo_op(stamp)
    echo_op(word)


def compile_pipeline(path: Path, function: Any = scheduled_pipeline) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(function, str(path))
    return path.read_text()


class FakeClock:
    """Milliseconds since the epoch, moved by the test."""

    def __init__(self, seconds: int) -> None:
        self.ms = seconds * 1000

    def __call__(self) -> int:
        return self.ms

    @property
    def seconds(self) -> int:
        return self.ms // 1000

    def set(self, seconds: float) -> None:
        self.ms = int(seconds * 1000)


def add_job(
    db: Database,
    manifest: str,
    *,
    name: str = "job",
    kind: str = "periodic",
    interval: int = 0,
    cron: str = "",
    start: int = 0,
    end: int = 0,
    created_at: int,
    no_catchup: bool = False,
    max_concurrency: int = 1,
    enabled: bool = True,
    parameters: list[dict[str, Any]] | None = None,
    next_fire_at: int | None = 0,
) -> Job:
    """A job row as the Job API creates it (next_fire_at 0: "look at it now")."""
    experiment = ExperimentService(db).ensure_default()
    job = Job(
        id=str(uuid.uuid4()), name=name, description="", description_key="", namespace="",
        experiment_id=experiment.id, pipeline_id="", pipeline_name="", pipeline_version_id=None,
        service_account="", parameters=json.dumps(parameters or []),
        resource_references=json.dumps([{"type": "EXPERIMENT", "id": experiment.id, "name": experiment.name,
                                          "relationship": "OWNER"}]),
        max_concurrency=max_concurrency, no_catchup=no_catchup, enabled=enabled, trigger_kind=kind, cron=cron,
        interval_seconds=interval, start_time=start, end_time=end, created_at=created_at, updated_at=created_at,
        status="NO_STATUS", last_scheduled_at=0, last_index=0, next_fire_at=next_fire_at,
    )
    with db.transaction() as session:
        session.add(job)
        session.flush()
        session.add(JobManifest(job_id=job.id, pipeline_spec_manifest=manifest))
    return job


def set_job(db: Database, job_id: str, **values: Any) -> None:
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def delete_job(db: Database, job_id: str) -> None:
    with db.transaction() as session:
        session.delete(session.get(Job, job_id))


def get_job(db: Database, job_id: str) -> Job:
    with db.transaction(write=False) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def runs_of(db: Database, job_id: str) -> list[Run]:
    with db.transaction(write=False) as session:
        return list(session.scalars(select(Run).where(Run.job_id == job_id).order_by(Run.scheduled_at)))


def fires_of(db: Database, job_id: str) -> list[JobFire]:
    with db.transaction(write=False) as session:
        return list(session.scalars(select(JobFire).where(JobFire.job_id == job_id).order_by(JobFire.scheduled_at)))


def workflow_of(db: Database, run_id: str) -> dict[str, Any]:
    with db.transaction(write=False) as session:
        manifest = session.get(RunManifest, run_id)
        assert manifest is not None
        return json.loads(manifest.workflow)


def finish_runs(db: Database, job_id: str, status: str = "Succeeded", at: int = 1) -> None:
    with db.transaction() as session:
        session.execute(update(Run).where(Run.job_id == job_id).values(status=status, finished_at=at))
