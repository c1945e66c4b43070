"""An app for the API tests of runs and jobs with nothing behind the services' hooks: the executor and the
scheduler are off, and recording fakes take the run and job hooks (RunExecution, JobScheduling), so that a
test sees what the services announced after their commits."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.all_services import Services


class RecordingExecution:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def run_created(self, run_id: str) -> None:
        self.calls.append(("run_created", run_id))

    def terminate_requested(self, run_id: str) -> None:
        self.calls.append(("terminate_requested", run_id))

    def retry_requested(self, run_id: str) -> None:
        self.calls.append(("retry_requested", run_id))

    def run_deleted(self, run_id: str) -> None:
        self.calls.append(("run_deleted", run_id))


class RecordingScheduling:
    def __init__(self) -> None:
        self.changed: list[str] = []

    def job_changed(self, job_id: str) -> None:
        self.changed.append(job_id)


def recording_app(settings: Settings) -> Iterator[Flask]:
    """For an `app` fixture (`yield from recording_app(settings)`): the app, its hooks taken by fresh
    recorders (services.runs.execution, services.jobs.scheduling); shut down after the test."""
    application = create_app(settings.replace(executor_enabled=False, scheduler_enabled=False))
    services: Services = application.extensions["kfp_backend.services"]
    services.runs.attach_execution(RecordingExecution())
    services.jobs.attach_scheduling(RecordingScheduling())
    yield application
    shutdown(application)
