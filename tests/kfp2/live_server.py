"""A `kfp-backend serve` subprocess on a free loopback port, with SQLite in a directory of its own."""

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

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


class ServerFailed(RuntimeError):
    """The server exited or stayed unhealthy; the message holds its output."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _wait_until_healthy(process: subprocess.Popen, health_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            raise ServerFailed(f"kfp-backend exited with status {process.returncode}:\n{output}")
        try:
            response = requests.get(health_url, timeout=2)
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise ServerFailed(f"kfp-backend not healthy in {START_TIMEOUT_SECONDS:.0f} s ({last_error}):\n"
                       f"{log.read_text(errors='replace')}")


@contextmanager
def live_server(workdir: Path) -> Iterator[str]:
    """Serve from this interpreter (the venv holds the project beside the SDK under test); yield the base URL.
    The command line says everything: the caller's KFP_BACKEND_* settings do not reach the server."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_BACKEND_")}
    env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "kfp_backend", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(workdir / "data")]
    log = workdir / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, f"{base_url}/apis/v2beta1/healthz", log)
        yield base_url
    finally:
        _stop(process)
