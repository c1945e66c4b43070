"""`kfp-backend serve` subprocesses for the end-to-end tests: started on a free port with a clean environment,
awaited until healthz answers, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTHZ = "/apis/v1beta1/healthz"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict[str, str]:
    # The command line says everything; stray KFP_BACKEND_* settings of the caller must not change the server.
    env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_BACKEND_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def wait_until_healthy(process: subprocess.Popen, base_url: str, log_path: Path,
                       timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
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
    stop_server(process)
    pytest.fail(
        f"kfp-backend was not healthy within {timeout:.0f} s ({last_error}); its output:\n"
        f"{log_path.read_text(errors='replace')}",
        pytrace=False,
    )


def spawn_server(port: int, data_dir: Path, log_path: Path, *, database_url: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """`kfp-backend serve` on `port` and `data_dir`, its output appended to `log_path` (a server started again
    on the same data keeps one log), not waited for. The caller stops it (`stop_server`) or kills it.

    `env` adds to (or overrides) the server's environment, which its steps inherit (PATH, for instance).
    """
    command = [
        sys.executable, "-m", "kfp_backend", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
    ]
    if database_url:
        command += ["--database-url", database_url]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env={**server_env(), **(env or {})}, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )


def start_server(port: int, data_dir: Path, log_path: Path, *, database_url: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """spawn_server, once the server answers healthz."""
    process = spawn_server(port, data_dir, log_path, database_url=database_url, env=env)
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}", log_path)
    except BaseException:
        stop_server(process)
        raise
    return process


@contextmanager
def live_server(workdir: Path, *, database_url: str | None = None, env: dict[str, str] | None = None) -> Iterator[str]:
    """A `kfp-backend serve` subprocess of its own (data under `workdir`), stopped on exit; yields its URL.

    `env` adds to (or overrides) the server's environment, which its steps inherit (PATH, for instance).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = start_server(port, workdir / "data", workdir / "server.log", database_url=database_url, env=env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)
