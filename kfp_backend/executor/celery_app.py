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
        # Steps are controlled through the database (terminate flags), not Celery's remote control: no
        # exclusive pidbox queue per worker name (two workers of one name on a host would fight over it).
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app


# A driver's "a step of yours ended" queue: a hint only (the result is in the database), so it is not
# durable, holds no message for long, and goes when unused for an hour (RabbitMQ; on Redis a list that
# empties as it is read).
_NEWS_OPTIONS: dict[str, Any] = {"queue_opts": {"durable": False, "expires": 3600.0},
                                 "queue_args": {"x-message-ttl": 600_000}, "exchange_opts": {"durable": False}}


def news_queue(connection: Any, name: str) -> Any:
    """The kombu SimpleQueue `name` on `connection`, declared alike by its reader and its writers."""
    return connection.SimpleQueue(name, no_ack=True, **_NEWS_OPTIONS)


def declare_news_queue(app: Any, name: str) -> None:
    """Declare the news queue `name` (its reader does, before any worker may write to it)."""
    with app.pool.acquire(block=True) as connection:
        news_queue(connection, name).close()


def tell(app: Any, name: str, key: str) -> None:
    """Wake the driver reading queue `name`: the step `key` has ended (its result is in its dispatch).
    One publish on a pooled connection and producer, through the default exchange, declaring nothing (the
    reader declared the queue): it is on every step's path."""
    with app.producer_pool.acquire(block=True) as producer:
        producer.publish({"key": key}, exchange="", routing_key=name, serializer="json", delivery_mode=1,
                         retry=True, retry_policy={"max_retries": 1, "interval_start": 0})
