"""The Celery application both sides share: the driver's launcher sends `TASK_NAME` messages through it,
`kfp-backend worker` consumes them. Messages carry only a dispatch's key and token: the step itself, its
state and its result are in the database (`step_dispatches`), so no result backend is used."""

from __future__ import annotations

from typing import Any

from kfp_backend.config import Settings

TASK_NAME = "kfp_backend.run_step"


def celery_app(settings: Settings) -> Any:
    """A Celery app on `settings.celery_broker_url` (ImportError without `pip install kfp-backend[celery]`)."""
    from celery import Celery

    app = Celery("kfp_backend", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        # A message is acknowledged once its step has run: one whose worker died is delivered again, and
        # dropped then (its dispatch is no longer queued; the driver retries the step as a new attempt).
        task_acks_late=True,
        # One message at a time per free thread: steps spread over the workers instead of piling on one.
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=settings.celery_queue,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app
