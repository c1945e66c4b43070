"""A live `kfp-backend serve` process for the whole session, and the real kfp 1.8.22 client pointed at it.

The server runs with SQLite in a temporary data dir, or against `KFP_BACKEND_E2E_DATABASE_URL` when that is
set (a database shared with other runs: tests only ever look at the data they created, under unique names).
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import E2E_DATABASE_ENV, kfp_client_for
from tests.e2e.servers import free_port, start_server, stop_server


@pytest.fixture(scope="session")
def server_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kfp-backend-server")


@pytest.fixture(scope="session")
def server_log(server_workdir: Path) -> Path:
    """What the session's server printed (its standard output and error), as a user would see it."""
    return server_workdir / "server.log"


@pytest.fixture(scope="session")
def server_url(server_workdir: Path, server_log: Path) -> Iterator[str]:
    """Base URL (`http://127.0.0.1:<port>`) of a `kfp-backend serve` subprocess running for the session."""
    port = free_port()
    process = start_server(port, server_workdir / "data", server_log, database_url=os.environ.get(E2E_DATABASE_ENV))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)
    if process.returncode not in (0, -signal.SIGTERM):
        sys.stderr.write(f"\nkfp-backend ended with status {process.returncode}; its output:\n"
                         f"{server_log.read_text(errors='replace')}\n")


@pytest.fixture(scope="session")
def api_url(server_url: str) -> str:
    """`<server>/apis/v1beta1`."""
    return server_url + "/apis/v1beta1"


@pytest.fixture(scope="session")
def kfp_client(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The unchanged kfp 1.8.22 SDK client, isolated from any ~/.config/kfp/context.json of the caller."""
    with kfp_client_for(server_url, tmp_path_factory.mktemp("kfp-context")) as client:
        yield client


@pytest.fixture
def corpus(shared_dir: Path) -> Path:
    """The shared pipeline corpus (`shared/pipelines`)."""
    return shared_dir / "pipelines"


@pytest.fixture
def unique() -> str:
    """A fresh name prefix, so tests never see each other's data (also on a shared database)."""
    return f"e2e-{uuid.uuid4().hex[:12]}"
