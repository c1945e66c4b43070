"""Build the executor of a `serve` process from its settings."""

from __future__ import annotations

import logging
from pathlib import Path

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


def build_executor(settings: Settings, services: Services, artifacts: ArtifactStore | None = None) -> Executor:
    """The executor, with `artifacts` (the services' store) or a store of its own built from the settings."""
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
