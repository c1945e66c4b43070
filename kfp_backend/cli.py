"""`kfp-backend serve | scheduler | worker | db upgrade | token | version`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import time
from pathlib import Path

from kfp_backend import __version__
from kfp_backend.config import AUTH_MODES, Settings, is_loopback_host
from kfp_backend.logs import configure_logging

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
    serve.add_argument("--workers", type=int, metavar="N",
                       help="N >= 1: serve the API under gunicorn with N worker processes (of --threads threads "
                       "each), the executor and the scheduler each in a process of its own; 0: one process, "
                       "waitress (env KFP_BACKEND_WORKERS; default 0; Linux; see docs/deployment.md)")
    serve.add_argument("--auth", choices=AUTH_MODES,
                       help="authentication: required, disabled, or auto = required unless --host is a loopback "
                       "address (env KFP_BACKEND_AUTH; default auto; see docs/auth.md)")
    serve.add_argument("--no-migrate", dest="auto_migrate", action="store_false", default=None,
                       help="do not apply pending migrations at start (env KFP_BACKEND_AUTO_MIGRATE=false)")
    _settings_flags(serve)

    scheduler = commands.add_parser(
        "scheduler", help="run the scheduler alone (fires recurring runs)",
        description="Run the scheduler alone: turn enabled jobs into runs at their scheduled times. Any "
        "number may run against one database: one holds the lease and fires, the others stand by and take "
        "over when it stops. Runs are executed by executors (`serve`, `kfp-backend executor`). The database schema "
        "must be current (`kfp-backend db upgrade`).",
    )
    _settings_flags(scheduler)

    executor = commands.add_parser(
        "executor", help="run the executor alone (executes runs)",
        description="Run the executor alone: claim runs from the database and drive them to their end, steps "
        "running on this host. Any number may run against one database: each run is driven by one of them at a "
        "time, and a run whose executor stopped is taken over. The database schema must be current "
        "(`kfp-backend db upgrade`).",
    )
    _settings_flags(executor)
    worker = commands.add_parser(
        "worker", help="run a Celery step worker",
        description="Run steps sent by executors with KFP_BACKEND_STEP_BACKEND=celery, with the same launcher and "
        "isolation as local execution. Needs the database, the broker (KFP_BACKEND_CELERY_BROKER_URL) and the "
        "artifact store (KFP_BACKEND_ARTIFACT_STORE) of the executors; its data dir is its own (the steps' "
        "directories while they run). The database schema must be current (`kfp-backend db upgrade`).",
    )
    worker.add_argument("--name", help="the worker's name, shown as each step's hostNodeName (default: the host name)")
    worker.add_argument("--concurrency", type=int, help="steps run at once (default: twice the number of cores)")
    worker.add_argument("--queues", help="comma-separated queues to consume (default: KFP_BACKEND_CELERY_QUEUE)")
    _settings_flags(worker)

    db = commands.add_parser("db", help="database commands", description="Database commands.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    upgrade = db_commands.add_parser("upgrade", help="apply all pending migrations",
                                     description="Apply all pending schema migrations.")
    _settings_flags(upgrade)

    _token_parsers(commands)

    commands.add_parser("version", help="print the version", description="Print the version.")
    return parser


def _token_parsers(commands: argparse._SubParsersAction) -> None:
    token = commands.add_parser(
        "token", help="create, list and revoke API tokens",
        description="Manage the bearer tokens that authenticate API requests when authentication is on "
        "(KFP_BACKEND_AUTH; see docs/auth.md). Like `serve`, these commands apply pending migrations first "
        "unless --no-migrate (KFP_BACKEND_AUTO_MIGRATE=false) is given.",
    )
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="TOKEN_COMMAND")
    create = token_commands.add_parser(
        "create", help="create a token and print it (once)",
        description="Create a token for a user and print it on standard output. It is shown only this "
        "once: only its hash is stored.",
    )
    create.add_argument("--user", required=True, help="the user the token authenticates as")
    create.add_argument("--namespace", dest="namespaces", action="append", default=[], metavar="NS",
                        help="a namespace the token is limited to in multi-user mode (repeat for several; "
                        "default: not limited, every namespace)")
    create.add_argument("--expires", metavar="DURATION|ISO",
                        help="when the token stops working: a duration from now (90m, 12h, 30d, 1w, 1d12h), "
                        "an ISO 8601 date or time (UTC unless it has an offset), or 'never' (the default)")
    listing = token_commands.add_parser(
        "list", help="list tokens (never their secrets)",
        description="List every token: id, user, namespaces, the first characters of the token, created, "
        "expires and state (active, expired, revoked). Times are UTC.",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    revoke = token_commands.add_parser(
        "revoke", help="revoke a token", description="Revoke a token: requests with it fail from now on.",
    )
    revoke.add_argument("token_id", metavar="ID", help="the token's id (from `token list`)")
    for command in (create, listing, revoke):
        command.add_argument("--no-migrate", dest="auto_migrate", action="store_false", default=None,
                             help="do not apply pending migrations (env KFP_BACKEND_AUTO_MIGRATE=false)")
        _settings_flags(command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"kfp-backend {__version__}")
        return 0
    fields = {field.name for field in dataclasses.fields(Settings)}
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    try:
        settings = Settings.from_env(**overrides)
    except ValueError as exc:
        print(f"kfp-backend: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "db":
        return _db_upgrade(settings)
    if args.command == "token":
        return _token(args, settings)
    if args.command == "scheduler":
        return _scheduler(settings)
    if args.command == "executor":
        return _executor(settings)
    if settings.workers > 0:
        return _serve_workers(settings)
    if args.command == "worker":
        return _worker(args, settings)
    return _serve(settings)


def _db_upgrade(settings: Settings) -> int:
    from kfp_backend.store import migrations

    _upgrade(settings.effective_database_url)
    log.info("database is at revision %s", migrations.head_revision())
    return 0


def _upgrade(url: str) -> None:
    """Apply pending migrations, saying which (Alembic's own lines are quiet at INFO)."""
    from kfp_backend.store import migrations

    before = migrations.upgrade(url)
    after = migrations.head_revision()
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "an empty database", after)


def _schema_is_current(settings: Settings) -> bool:
    from kfp_backend.store import migrations

    if migrations.current_revision(settings.effective_database_url) != migrations.head_revision():
        print("kfp-backend: the database schema is not current; run `kfp-backend db upgrade`", file=sys.stderr)
        return False
    return True


def _until_signal(name: str) -> None:
    """Block until SIGTERM or SIGINT."""
    import threading

    stopped = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("kfp-backend %s: signal %d, shutting down", name, signum)
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopped.wait(1.0):
        pass


def _scheduler(settings: Settings) -> int:
    from kfp_backend.scheduler.cron import cron_error
    from kfp_backend.scheduler.worker import build_scheduler
    from kfp_backend.services.all_services import Services
    from kfp_backend.store.db import Database

    if not _schema_is_current(settings):
        return 2
    services = Services.build(settings, Database(settings.effective_database_url, pool_size=4), cron_check=cron_error)
    scheduler = build_scheduler(settings, services)
    log.info("kfp-backend %s scheduler (database %s)", __version__,
             services.db.url.render_as_string(hide_password=True))
    scheduler.start()
    try:
        _until_signal("scheduler")
    finally:
        scheduler.stop()
        services.db.dispose()
    return 0


def _executor(settings: Settings) -> int:
    from kfp_backend.executor.artifacts import ArtifactStoreUnavailable
    from kfp_backend.executor.bwrap import IsolationUnavailable
    from kfp_backend.executor.factory import artifact_store, build_executor
    from kfp_backend.scheduler.cron import cron_error
    from kfp_backend.services.all_services import Services
    from kfp_backend.store.db import Database

    if not _schema_is_current(settings):
        return 2
    try:
        artifacts = artifact_store(settings)
        # The pool a one-process `serve` gives its API and executor together: the drivers of many runs share it.
        services = Services.build(settings, Database(settings.effective_database_url, pool_size=settings.threads),
                                  cron_check=cron_error, artifacts=artifacts)
        executor = build_executor(settings, services, artifacts)
    except (IsolationUnavailable, ArtifactStoreUnavailable) as exc:
        print(f"kfp-backend: cannot start: {exc}", file=sys.stderr)
        return 2
    services.runs.attach_execution(executor)
    log.info("kfp-backend %s executor %s (database %s)", __version__, executor.driver_id,
             services.db.url.render_as_string(hide_password=True))
    executor.start()
    try:
        _until_signal("executor")
    finally:
        executor.stop()  # its runs are released: another executor (or this one restarted) resumes them at once
        services.db.dispose()
    return 0
def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from kfp_backend.executor.artifacts import ArtifactStoreUnavailable
    from kfp_backend.executor.bwrap import IsolationUnavailable
    from kfp_backend.executor.celery_worker import default_name, run_worker
    from kfp_backend.executor.factory import CeleryUnavailable, build_worker
    from kfp_backend.services.step_dispatch import StepDispatchService
    from kfp_backend.store import migrations
    from kfp_backend.store.db import Database

    if not settings.celery_broker_url:
        print("kfp-backend: the worker needs KFP_BACKEND_CELERY_BROKER_URL (redis:// or amqp://)", file=sys.stderr)
        return 2
    if args.concurrency is not None and args.concurrency < 1:
        print("kfp-backend: --concurrency must be at least 1", file=sys.stderr)
        return 2
    url = settings.effective_database_url
    if migrations.current_revision(url) != migrations.head_revision():
        print("kfp-backend: the database schema is not current; run `kfp-backend db upgrade`", file=sys.stderr)
        return 2
    name = args.name or default_name()
    concurrency = args.concurrency or 2 * (os.cpu_count() or 1)
    queues = [q.strip() for q in (args.queues or settings.celery_queue).split(",") if q.strip()]
    db = Database(url, pool_size=max(4, concurrency // 2 + 2))  # a connection per finishing step, and the beats
    try:
        runner, app = build_worker(settings, StepDispatchService(db), name)
    except (IsolationUnavailable, ArtifactStoreUnavailable, CeleryUnavailable) as exc:
        print(f"kfp-backend: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        return run_worker(settings, runner, app, concurrency=concurrency, queues=queues)
    finally:
        db.dispose()


def _current_schema(settings: Settings) -> bool:
    """As `serve` does: apply pending migrations, or (with auto-migrate off) check there are none."""
    from kfp_backend.store import migrations

    url = settings.effective_database_url
    if settings.auto_migrate:
        _upgrade(url)
    elif migrations.current_revision(url) != migrations.head_revision():
        print("kfp-backend: the database schema is not current; run `kfp-backend db upgrade`", file=sys.stderr)
        return False
    return True


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from kfp_backend.services.auth import AuthService, parse_expiry
    from kfp_backend.services.clock import now_seconds
    from kfp_backend.services.errors import ApiError
    from kfp_backend.store.db import Database

    if not _current_schema(settings):
        return 2
    db = Database(settings.effective_database_url, pool_size=1)
    service = AuthService(db)
    try:
        if args.token_command == "create":
            expires_at = parse_expiry(args.expires, now_seconds()) if args.expires else None
            info, secret = service.create_token(args.user, args.namespaces, expires_at)
            print(secret)
            limits = ", ".join(info.namespaces) or "not limited"
            print(f"Created token {info.id} for user {info.user!r} (namespaces: {limits}; expires: "
                  f"{_time(info.expires_at) or 'never'}). It is shown only this once: store it now.",
                  file=sys.stderr)
        elif args.token_command == "list":
            _print_tokens(service.list_tokens(), now_seconds(), as_json=args.json)
        else:
            info, revoked = service.revoke_token(args.token_id)
            state = "Revoked" if revoked else "Already revoked:"
            print(f"{state} token {info.id} of user {info.user!r}.", file=sys.stderr)
    except ApiError as exc:
        print(f"kfp-backend: {exc.external_message}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    return 0


def _time(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _print_tokens(tokens: list, now: int, *, as_json: bool) -> None:
    rows = [
        {
            "id": info.id, "user": info.user, "namespaces": list(info.namespaces), "prefix": info.display_prefix,
            "created_at": _time(info.created_at), "expires_at": _time(info.expires_at) or None,
            "revoked_at": _time(info.revoked_at) or None, "state": info.state(now),
        }
        for info in tokens
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    header = ["ID", "USER", "NAMESPACES", "PREFIX", "CREATED", "EXPIRES", "STATE"]
    table = [header] + [
        [row["id"], row["user"], ",".join(row["namespaces"]) or "-", row["prefix"] + "...", row["created_at"],
         row["expires_at"] or "never", row["state"] + (f" {row['revoked_at']}" if row["revoked_at"] else "")]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _serve_workers(settings: Settings) -> int:
    """`serve --workers N`: see kfp_backend/processes/supervisor.py."""
    import importlib.util

    from kfp_backend.processes.supervisor import supervise

    if importlib.util.find_spec("gunicorn") is None:
        print("kfp-backend: --workers needs gunicorn (installed with kfp-backend on Linux): pip install gunicorn",
              file=sys.stderr)
        return 2
    if not _current_schema(settings):
        return 2
    log.info("kfp-backend %s serving http://%s:%d with %d web workers (gunicorn)%s%s", __version__, settings.host,
             settings.port, settings.workers, ", an executor" if settings.executor_enabled else "",
             ", a scheduler" if settings.scheduler_enabled else "")
    log.info("kfp-backend: authentication %s", "required (bearer token)" if settings.auth_required else "off")
    if not settings.auth_required and not is_loopback_host(settings.host):
        log.warning("kfp-backend: authentication is disabled on %s, a non-loopback address", settings.host)
    return supervise(settings)


def _serve(settings: Settings) -> int:
    import waitress

    from kfp_backend.app import create_app, shutdown
    from kfp_backend.executor.artifacts import ArtifactStoreUnavailable
    from kfp_backend.executor.bwrap import IsolationUnavailable

    if not _current_schema(settings):
        return 2
    try:
        app = create_app(settings)
    except (IsolationUnavailable, ArtifactStoreUnavailable) as exc:
        print(f"kfp-backend: cannot start: {exc}", file=sys.stderr)
        return 2
    log.info("kfp-backend %s serving http://%s:%d (database %s)", __version__, settings.host, settings.port,
             app.extensions["kfp_backend.services"].db.url.render_as_string(hide_password=True))
    log.info("kfp-backend: %s", app.extensions["kfp_backend.auth"].describe())
    log.info("kfp-backend: %s", app.extensions["kfp_backend.request_guard"].describe())
    if not settings.auth_required and not is_loopback_host(settings.host):
        log.warning("kfp-backend: authentication is disabled on %s, a non-loopback address", settings.host)
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
