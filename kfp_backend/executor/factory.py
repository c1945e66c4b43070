"""Build the executor of a `serve` process from its settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kfp_backend.config import Settings
from kfp_backend.executor import sandbox
from kfp_backend.executor.artifacts import ArtifactStore, ArtifactStoreUnavailable, LocalArtifactStore
from kfp_backend.executor.executor import Executor
from kfp_backend.executor.isolation import build_launcher
from kfp_backend.executor.step_environments import StepEnvironments
from kfp_backend.services.all_services import Services
from kfp_backend.services.authorization import SYSTEM
from kfp_backend.services.execution_state import ExecutionStateService
from kfp_backend.services.metrics import parse_metrics_file

if TYPE_CHECKING:
    from kfp_backend.executor.celery_worker import StepRunner
    from kfp_backend.services.step_dispatch import StepDispatchService

log = logging.getLogger(__name__)


def artifact_store(settings: Settings) -> ArtifactStore:
    """The store `settings.artifact_store` names; ArtifactStoreUnavailable when an S3 store cannot be used."""
    location = settings.artifact_location
    if location.scheme == "file":
        assert location.path is not None
        return LocalArtifactStore(Path(location.path))
    try:
        from kfp_backend.executor.s3_artifacts import S3ArtifactStore

        store = S3ArtifactStore(location.bucket, location.prefix, endpoint_url=settings.s3_endpoint_url or None,
                                scratch_dir=Path(settings.data_dir).resolve() / "tmp")
    except ImportError as exc:
        raise ArtifactStoreUnavailable(f"KFP_BACKEND_ARTIFACT_STORE={settings.artifact_store} needs boto3: "
                                       f"pip install 'kfp-backend[s3]' ({exc})") from exc
    store.check()
    return store


class _MetricsReporter:
    """Turns a step's mlpipeline-metrics file into run metrics through the metrics service."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def report_metrics_file(self, run_id: str, node_id: str, data: bytes) -> None:
        metrics = parse_metrics_file(data)
        if metrics:
            self._services.metrics.report_node_metrics(run_id, node_id, metrics, caller=SYSTEM)


def _celery_app(settings: Settings) -> Any:
    try:
        from kfp_backend.executor.celery_app import celery_app
    except ImportError as exc:  # pragma: no cover - celery is an extra
        raise CeleryUnavailable(f"KFP_BACKEND_STEP_BACKEND=celery needs celery: pip install 'kfp-backend[celery]' "
                                f"({exc})") from exc
    try:
        return celery_app(settings)
    except ImportError as exc:
        raise CeleryUnavailable(f"KFP_BACKEND_STEP_BACKEND=celery needs celery: pip install 'kfp-backend[celery]' "
                                f"({exc})") from exc


class CeleryUnavailable(RuntimeError):
    """Celery step execution is asked for and cannot be had here (the library is missing)."""


def build_executor(settings: Settings, services: Services, artifacts: ArtifactStore | None = None) -> Executor:
    """The executor, with `artifacts` (the services' store) or a store of its own built from the settings."""
    if settings.step_backend == "celery":
        return _build_celery_executor(settings, services, artifacts)
    launcher = build_launcher(settings)  # the multi-user sandbox, or the refusal (see isolation)
    # What "auto" settled on here is what every step of this process gets: say it once, at start.
    log.info("steps run as host processes: wrapper %s (asked: %s), isolation %s (asked: %s)%s",
             launcher.wrapper, settings.step_wrapper, launcher.isolation, settings.step_isolation,
             f"; {launcher.isolation_note}" if launcher.isolation_note else "")
    return Executor(
        settings,
        ExecutionStateService(services.db),
        launcher,
        artifacts if artifacts is not None else artifact_store(settings),
        metrics_reporter=_MetricsReporter(services),
        # kfp 2.x lightweight components run with a prepared python per kfp version (None: turned off).
        step_environment=StepEnvironments.from_settings(
            settings, sandbox=launcher.sandbox_options if launcher.isolation == sandbox.BWRAP else None),
    )


def _build_celery_executor(settings: Settings, services: Services, artifacts: ArtifactStore | None) -> Executor:
    """Steps go to Celery workers (`kfp-backend worker`), which run them with their own local launcher."""
    from kfp_backend.executor.celery_launcher import CeleryStepLauncher
    from kfp_backend.services.step_dispatch import StepDispatchService

    launcher = CeleryStepLauncher(settings, StepDispatchService(services.db), _celery_app(settings))
    log.info("steps run on Celery workers: broker %s, default queue %s", _redacted(settings.celery_broker_url),
             settings.celery_queue)
    return Executor(
        settings,
        ExecutionStateService(services.db),
        launcher,
        artifacts if artifacts is not None else artifact_store(settings),
        metrics_reporter=_MetricsReporter(services),
        # Prepared by the workers (each on its own machine); here it only says that they are.
        step_environment=StepEnvironments.from_settings(settings),
    )


def build_worker(settings: Settings, dispatches: StepDispatchService, name: str) -> tuple[StepRunner, Any]:
    """What `kfp-backend worker` runs: a step runner with this machine's local launcher and isolation (the
    same as a `serve` process's), and the Celery app it consumes."""
    from kfp_backend.executor.celery_worker import StepRunner

    app = _celery_app(settings)
    launcher = build_launcher(settings)
    log.info("worker %s: steps run as host processes: wrapper %s, isolation %s%s", name, launcher.wrapper,
             launcher.isolation, f"; {launcher.isolation_note}" if launcher.isolation_note else "")
    environment = StepEnvironments.from_settings(
        settings, sandbox=launcher.sandbox_options if launcher.isolation == sandbox.BWRAP else None)
    runner = StepRunner(settings, name, dispatches, launcher, artifact_store(settings), environment, app)
    return runner, app


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
