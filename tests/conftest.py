"""Shared fixtures: `db_url` over SQLite, PostgreSQL and MariaDB; `app` and `client` over it; `s3_bucket` on a
real S3 API (tests/s3_server.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.all_services import Services
from tests.databases import BACKENDS, DatabaseFactory, in_ci
from tests.s3_server import s3_bucket, s3_endpoint  # noqa: F401 - fixtures
from tests.skip_summary import summary_lines

# The shared material beside the checkout; KFP_BACKEND_TEST_SHARED_DIR points elsewhere (a git worktree's tests).
SHARED_DIR = Path(os.environ.get("KFP_BACKEND_TEST_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")


@pytest.fixture(scope="session")
def database_factories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DatabaseFactory]]:
    workdir = tmp_path_factory.mktemp("databases")
    factories = {backend: DatabaseFactory(backend, workdir) for backend in BACKENDS}
    yield factories
    for factory in factories.values():
        factory.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, database_factories: dict[str, DatabaseFactory]) -> Iterator[str]:
    """A fresh database at the current migration head, dropped after the test."""
    with database_factories[backend].fresh() as url:
        yield url


@pytest.fixture(scope="session")
def step_envs_dir() -> Path:
    """The kfp 2.x step environments of every test server: one directory for every session and xdist worker,
    so each environment is prepared once (under its lock), and outside /tmp, which steps see as their own."""
    return Path("/var/tmp") / f"kfp-backend-test-step-envs-{os.getuid()}"


@pytest.fixture
def settings(db_url: str, tmp_path: Path, step_envs_dir: Path) -> Settings:
    # API tests look at runs and jobs as created; tests of execution and scheduling turn the executor
    # and the scheduler on themselves.
    return Settings(
        database_url=db_url, data_dir=tmp_path / "data", threads=4, executor_enabled=False, scheduler_enabled=False,
        step_envs_dir=str(step_envs_dir),
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    shutdown(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def services(app: Flask) -> Services:
    """The services behind `app`."""
    return app.extensions["kfp_backend.services"]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference material beside the project; tests using it skip without it (fail in CI)."""
    if not SHARED_DIR.is_dir():
        if in_ci():
            pytest.fail(f"{SHARED_DIR} is missing under CI=true")
        pytest.skip(f"{SHARED_DIR} is not present")
    return SHARED_DIR


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped:
        terminalreporter.section(f"{len(skipped)} skipped, by reason", sep="-")
        for line in summary_lines(skipped):
            terminalreporter.write_line(line)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"postgres: {os.environ.get('KFP_BACKEND_TEST_POSTGRES_URL', 'not configured')}",
        f"mysql: {os.environ.get('KFP_BACKEND_TEST_MYSQL_URL', 'not configured')}",
    ]
