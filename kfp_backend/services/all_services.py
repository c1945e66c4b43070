"""All services, built once per process around one Database."""

from __future__ import annotations

from dataclasses import dataclass

from kfp_backend.config import Settings
from kfp_backend.services.authorization import Authorizer
from kfp_backend.services.clock import Clock, now_seconds
from kfp_backend.services.experiments import ExperimentService
from kfp_backend.services.idempotency import IdempotencyService
from kfp_backend.services.jobs import CronCheck, JobService
from kfp_backend.services.metrics import MetricsService
from kfp_backend.services.pipelines import PipelineService
from kfp_backend.services.runs import RunService, StoredArtifacts
from kfp_backend.store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    experiments: ExperimentService
    pipelines: PipelineService
    runs: RunService
    metrics: MetricsService
    jobs: JobService
    idempotency: IdempotencyService

    @classmethod
    def build(
        cls, settings: Settings, db: Database, *, cron_check: CronCheck, artifacts: StoredArtifacts | None = None,
        clock: Clock = now_seconds,
    ) -> Services:
        """`cron_check` is the scheduler's cron parser (scheduler.cron.cron_error), which the Job API
        validates schedules with, and `artifacts` the executor's artifact store, which ReadArtifact reads
        (none: no artifact is found); the wiring hands them in, as services import nothing of the scheduler
        or the executor. `clock` is the time idempotency keys are stamped and expired with."""
        # One authorizer for every service: multi-user mode (namespaces) when authentication is on.
        authorizer = Authorizer.from_settings(settings)
        # The executor and the scheduler are built from these services and attach themselves afterwards
        # (runs.attach_execution, jobs.attach_scheduling), to hear of changes at once: the only collaborators
        # not given at construction, as each side of those pairs needs the other.
        return cls(
            settings=settings,
            db=db,
            experiments=ExperimentService(db, authorizer),
            pipelines=PipelineService(db, settings, authorizer),
            runs=RunService(db, settings, authorizer=authorizer, artifacts=artifacts),
            metrics=MetricsService(db, authorizer),
            jobs=JobService(db, settings, cron_check=cron_check, authorizer=authorizer),
            idempotency=IdempotencyService(db, clock),
        )

    def bootstrap(self) -> None:
        """What the real server does once at start-up: make sure the Default experiment exists."""
        self.experiments.ensure_default()
