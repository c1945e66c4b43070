"""The API under gunicorn: `python -m kfp_backend.processes.web`, started by `serve --workers N` (supervisor.py).

Its settings come from the KFP_BACKEND_* environment the supervisor passes (`Settings.as_environment`), so every
web worker builds the same Settings as a one-process `serve` would: the same bind host (hence the same `auto`
authentication decision), the same database (where tokens live) and the same request guard. The web workers
never execute runs nor fire jobs: the executor and the scheduler run in processes of their own.

Gunicorn's master process imports nothing of the app (no `preload_app`): each worker builds it after the fork,
so no database connection or Prometheus value file is shared across a fork.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from kfp_backend.config import Settings
from kfp_backend.logs import configure_logging

log = logging.getLogger("kfp_backend")
# A worker that is stopped gracefully finishes its requests within this many seconds, then is killed.
GRACEFUL_TIMEOUT_SECONDS = 10
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def bind_address(host: str, port: int) -> str:
    """gunicorn's `host:port`, with an IPv6 address in brackets."""
    host = host.strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _child_exit(_server: Any, worker: Any) -> None:
    """A web worker is gone: its live gauges leave the sums, its counters stay (prometheus_client's rule)."""
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)


def _worker_exit(_server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        from kfp_backend.app import shutdown

        shutdown(app)  # closes the database pool (nothing else runs in a web worker)


class WebApplication(BaseApplication):
    """gunicorn, configured from the settings: N `gthread` workers of `settings.threads` threads each."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        options = {
            "bind": [bind_address(settings.host, settings.port)],
            "workers": self.workers,
            # Threads, as waitress has: a streamed node log must not hold a whole worker.
            "worker_class": "gthread",
            "threads": settings.threads,
            "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
            "proc_name": "kfp-backend-web",
            "loglevel": settings.log_level.lower(),
            "errorlog": "-",
            "accesslog": None,
            "preload_app": False,
            "child_exit": _child_exit,
            "worker_exit": _worker_exit,
        }
        # gunicorn 24+ opens a control socket at one fixed path per user: two servers would contend for it.
        if "control_socket_disable" in self.cfg.settings:
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from kfp_backend.app import create_app

        # API only: the executor and the scheduler are the supervisor's other children.
        return create_app(self.settings.replace(executor_enabled=False, scheduler_enabled=False))


def main() -> int:
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"kfp-backend: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    workers = settings.workers if settings.workers > 0 else 1
    # gunicorn reads sys.argv only through its own CLI parser, which BaseApplication does not use.
    WebApplication(settings, workers).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
