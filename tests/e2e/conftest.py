"""A live `kfp-backend serve` process for the whole session, and the real kfp 1.8.22 client pointed at it.

The server runs with SQLite in a temporary data dir, or against `KFP_BACKEND_E2E_DATABASE_URL` when that is
set (a database shared with other runs: tests only ever look at the data they created, under unique names).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import E2E_DATABASE_ENV

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTHZ = "/apis/v1beta1/healthz"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env() -> dict[str, str]:
    # The command line says everything; stray KFP_BACKEND_* settings of the caller must not change the server.
    env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_BACKEND_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _wait_until_healthy(process: subprocess.Popen, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"kfp-backend exited with status {process.returncode} before becoming healthy; its output:\n"
                f"{log_path.read_text(errors='replace')}",
                pytrace=False,
            )
        try:
            response = requests.get(base_url + HEALTHZ, timeout=2)
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    _stop(process)
    pytest.fail(
        f"kfp-backend was not healthy within {START_TIMEOUT_SECONDS:.0f} s ({last_error}); its output:\n"
        f"{log_path.read_text(errors='replace')}",
        pytrace=False,
    )


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
    workdir = server_workdir
    port = _free_port()
    command = [
        sys.executable, "-m", "kfp_backend", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(workdir / "data"),
    ]
    database_url = os.environ.get(E2E_DATABASE_ENV)
    if database_url:
        command += ["--database-url", database_url]
    log_path = server_log
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=_server_env(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, base_url, log_path)
        yield base_url
    finally:
        _stop(process)
    if process.returncode not in (0, -signal.SIGTERM):
        sys.stderr.write(f"\nkfp-backend ended with status {process.returncode}; its output:\n"
                         f"{log_path.read_text(errors='replace')}\n")


@pytest.fixture(scope="session")
def api_url(server_url: str) -> str:
    """`<server>/apis/v1beta1`."""
    return server_url + "/apis/v1beta1"


@pytest.fixture(scope="session")
def kfp_client(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The unchanged kfp 1.8.22 SDK client, isolated from any ~/.config/kfp/context.json of the caller."""
    import kfp

    context = tmp_path_factory.mktemp("kfp-context") / "context.json"  # never created: the default context
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kfp.Client, "LOCAL_KFP_CONTEXT", str(context))
        yield kfp.Client(host=server_url)


@pytest.fixture
def unique() -> str:
    """A fresh name prefix, so tests never see each other's data (also on a shared database)."""
    return f"e2e-{uuid.uuid4().hex[:12]}"
