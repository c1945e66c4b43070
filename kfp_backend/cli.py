"""`kfp-backend serve | scheduler | db upgrade | version`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from kfp_backend import __version__
from kfp_backend.config import Settings

log = logging.getLogger("kfp_backend")


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy URL (env KFP_BACKEND_DATABASE_URL); "
                        "default: SQLite in the data dir")
    parser.add_argument("--data-dir", type=Path, help="where state lives (env KFP_BACKEND_DATA_DIR; "
                        "default ./.kfp-backend)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING... (env KFP_BACKEND_LOG_LEVEL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kfp-backend", description="Kubeflow Pipelines v1beta1 API server without Kubernetes."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the v1beta1 API", description="Serve the v1beta1 API.")
    serve.add_argument("--host", help="address to bind (env KFP_BACKEND_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (env KFP_BACKEND_PORT; default 8888)")
    serve.add_argument("--threads", type=int, help="request worker threads (env KFP_BACKEND_THREADS)")
    serve.add_argument("--no-migrate", dest="auto_migrate", action="store_false", default=None,
                       help="do not apply pending migrations at start (env KFP_BACKEND_AUTO_MIGRATE=false)")
    _settings_flags(serve)

    scheduler = commands.add_parser(
        "scheduler", help="run the scheduler alone (fires recurring runs)",
        description="Run the scheduler alone: turn enabled jobs into runs at their scheduled times. Any "
        "number may run against one database: one holds the lease and fires, the others stand by and take "
        "over when it stops. Runs are executed by the executors of `serve` processes. The database schema "
        "must be current (`kfp-backend db upgrade`).",
    )
    _settings_flags(scheduler)

    db = commands.add_parser("db", help="database commands", description="Database commands.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    upgrade = db_commands.add_parser("upgrade", help="apply all pending migrations",
                                     description="Apply all pending schema migrations.")
    _settings_flags(upgrade)

    commands.add_parser("version", help="print the version", description="Print the version.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"kfp-backend {__version__}")
        return 0
    overrides = {k: v for k, v in vars(args).items() if k not in {"command", "db_command"}}
    try:
        settings = Settings.from_env(**overrides)
    except ValueError as exc:
        print(f"kfp-backend: bad configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "db":
        return _db_upgrade(settings)
    if args.command == "scheduler":
        return _scheduler(settings)
    return _serve(settings)


def _db_upgrade(settings: Settings) -> int:
    from kfp_backend.store import migrations

    migrations.upgrade(settings.effective_database_url)
    log.info("database is at revision %s", migrations.head_revision())
    return 0


def _scheduler(settings: Settings) -> int:
    import threading

    from kfp_backend.scheduler.worker import build_scheduler
    from kfp_backend.services.container import Services
    from kfp_backend.store import migrations
    from kfp_backend.store.db import Database

    url = settings.effective_database_url
    if migrations.current_revision(url) != migrations.head_revision():
        print("kfp-backend: the database schema is not current; run `kfp-backend db upgrade`", file=sys.stderr)
        return 2
    services = Services.build(settings, Database(url, pool_size=4))
    scheduler = build_scheduler(settings, services)
    stopped = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("kfp-backend scheduler: signal %d, shutting down", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("kfp-backend %s scheduler (database %s)", __version__,
             services.db.url.render_as_string(hide_password=True))
    scheduler.start()
    try:
        while not stopped.wait(1.0):
            pass
    finally:
        scheduler.stop()
        services.db.dispose()
    return 0


def _serve(settings: Settings) -> int:
    import waitress

    from kfp_backend.app import create_app, shutdown
    from kfp_backend.store import migrations

    url = settings.effective_database_url
    if settings.auto_migrate:
        migrations.upgrade(url)
    elif migrations.current_revision(url) != migrations.head_revision():
        print("kfp-backend: the database schema is not current; run `kfp-backend db upgrade`", file=sys.stderr)
        return 2
    app = create_app(settings)
    log.info("kfp-backend %s serving http://%s:%d (database %s)", __version__, settings.host, settings.port,
             app.extensions["kfp_backend.services"].db.url.render_as_string(hide_password=True))
    server = waitress.create_server(app, host=settings.host, port=settings.port, threads=settings.threads,
                                    max_request_body_size=settings.max_request_bytes, ident="kfp-backend")

    def _stop(signum: int, _frame: object) -> None:
        # Stop serving, then stop the executor: its running steps are killed and its runs released,
        # so the next start resumes them at once.
        log.info("kfp-backend: signal %d, shutting down", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.run()
    finally:
        server.close()
        shutdown(app)
    return 0
