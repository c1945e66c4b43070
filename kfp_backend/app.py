"""create_app(settings): wiring only."""

from __future__ import annotations

from flask import Flask

from kfp_backend.api import experiments, healthz, jobs, openapi, pipelines, prometheus, runs
from kfp_backend.api.auth import install as install_auth
from kfp_backend.api.errors import register_error_handlers
from kfp_backend.api.request_guard import install as install_request_guard
from kfp_backend.api.request_guard import install_content_type_check
from kfp_backend.api.v2 import experiments as v2_experiments
from kfp_backend.api.v2 import healthz as v2_healthz
from kfp_backend.api.v2 import openapi as v2_openapi
from kfp_backend.api.v2 import pipelines as v2_pipelines
from kfp_backend.api.v2 import recurring_runs as v2_recurring_runs
from kfp_backend.api.v2 import runs as v2_runs
from kfp_backend.config import Settings
from kfp_backend.executor.factory import artifact_store, build_executor
from kfp_backend.scheduler.cron import cron_error
from kfp_backend.scheduler.triggers import Trigger, upcoming_slots
from kfp_backend.services.all_services import Services
from kfp_backend.services.experiment_activity import ExperimentActivity
from kfp_backend.services.jobs import NewTrigger
from kfp_backend.services.schedule_preview import SchedulePreview
from kfp_backend.store.db import Database
from kfp_backend.ui import graph_routes as ui_graph
from kfp_backend.ui import install as install_ui

BLUEPRINTS = (
    healthz.blueprint, experiments.blueprint, openapi.blueprint, pipelines.blueprint, runs.blueprint, jobs.blueprint,
    # v2beta1: the same services behind the kfp 2.x SDK's wire.
    v2_healthz.blueprint, v2_experiments.blueprint, v2_openapi.blueprint, v2_pipelines.blueprint, v2_runs.blueprint,
    v2_recurring_runs.blueprint,
    prometheus.blueprint,  # GET /metrics
    ui_graph.blueprint,  # GET /ui/api/...graph: the run graph the web UI draws
)


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    """The WSGI app. With `settings.executor_enabled` it also starts this process's executor
    (`app.extensions["kfp_backend.executor"]`), with `settings.scheduler_enabled` its scheduler
    (`app.extensions["kfp_backend.scheduler"]`); call `shutdown(app)` to stop them. `services`, when
    given, are used as they were built (their artifact store included)."""
    app = Flask(__name__)
    # Flask answers oversize bodies with 413 before any handler runs; the upload endpoints refuse
    # files above the limit themselves, so the body limit leaves room for multipart framing.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + (1 << 20)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    artifacts = None
    if services is None:
        artifacts = artifact_store(settings)  # one store (one S3 client) for the API and the executor
        services = Services.build(
            settings, Database(settings.effective_database_url, pool_size=settings.threads), cron_check=cron_error,
            artifacts=artifacts,
        )
    app.extensions["kfp_backend.services"] = services
    services.bootstrap()
    app.extensions[v2_experiments.ACTIVITY_EXTENSION] = ExperimentActivity(services.db)
    executor = None
    if settings.executor_enabled:
        executor = build_executor(settings, services, artifacts)
        services.runs.attach_execution(executor)
        executor.start()
    app.extensions["kfp_backend.executor"] = executor
    scheduler = None
    if settings.scheduler_enabled:
        from kfp_backend.scheduler.worker import attach_to_jobs, build_scheduler

        scheduler = build_scheduler(settings, services)
        attach_to_jobs(services, scheduler)
        scheduler.start()
    app.extensions["kfp_backend.scheduler"] = scheduler
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    # Hooks run in this order. Every request is counted and timed (api/prometheus.py). A request must name
    # this server (Host) and, if it changes state, come from no other site (Origin); then it authenticates
    # (every request but healthz and /metrics, when authentication is on: see api/auth.py); then its body
    # must be of the endpoint's type. See api/request_guard.py.
    prometheus.install(app)
    install_request_guard(app, settings)
    install_auth(app, settings, services)
    install_content_type_check(app)
    # The web UI at `/` (after the API's hooks, which leave its pages to its own session check).
    install_ui(app, settings, services, schedule_preview=SchedulePreview(cron_error, _upcoming_slots))
    return app


def _upcoming_slots(trigger: NewTrigger, now: int, count: int) -> list[int]:
    """The scheduler's walk for a recurring run not saved yet (created now), for the UI's preview."""
    return upcoming_slots(Trigger(
        kind=trigger.kind, cron=trigger.cron, interval_seconds=trigger.interval_seconds,
        start_time=trigger.start_time or 0, end_time=trigger.end_time or 0, created_at=now,
    ), now, count)


def shutdown(app: Flask) -> None:
    """Stop the scheduler (its lease released), the executor (its steps are killed and its runs
    released) and close the database."""
    scheduler = app.extensions.get("kfp_backend.scheduler")
    if scheduler is not None:
        scheduler.stop()
    executor = app.extensions.get("kfp_backend.executor")
    if executor is not None:
        executor.stop()
    app.extensions["kfp_backend.services"].db.dispose()
