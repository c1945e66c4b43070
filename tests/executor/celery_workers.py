"""Real `kfp-backend worker` processes for the Celery tests, and the broker checks.

`broker_url("redis")` / `broker_url("amqp")` is the local broker's URL, or a skip saying it is absent
(a failure under CI=true, where the services must be there). `WorkerSet` starts workers with
`python -m kfp_backend worker` on the test's database, broker, queue and artifact store, each with a data
dir of its own (no file is shared with the server but the artifact store), and stops or kills them.
A bench or a larger e2e test starts its workers the same way (`worker_env`, `worker_command`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

READY_TIMEOUT_SECONDS = 60.0
REPO_ROOT = Path(__file__).resolve().parents[2]
BROKERS = {"redis": ("127.0.0.1", 6379, "redis://127.0.0.1:6379/11"),
           "amqp": ("127.0.0.1", 5672, "amqp://guest:guest@127.0.0.1:5672//")}


def broker_url(kind: str) -> str:
    host, port, url = BROKERS[kind]
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        reason = f"no {kind} broker at {host}:{port} ({exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true needs it", pytrace=False)
        pytest.skip(reason)
    pytest.importorskip("celery", reason="celery is not installed (pip install 'kfp-backend[celery]')")
    return url


def worker_env(*, database_url: str, broker: str, queue: str, artifact_store: str, data_dir: Path,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    """A worker's environment: the caller's without its KFP_BACKEND_* settings, then the ones given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_BACKEND_")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONUNBUFFERED": "1",
        "KFP_BACKEND_DATABASE_URL": database_url, "KFP_BACKEND_DATA_DIR": str(data_dir),
        "KFP_BACKEND_CELERY_BROKER_URL": broker, "KFP_BACKEND_CELERY_QUEUE": queue,
        "KFP_BACKEND_ARTIFACT_STORE": artifact_store,
        "KFP_BACKEND_WORKER_HEARTBEAT_SECONDS": "0.5", "KFP_BACKEND_WORKER_LOST_SECONDS": "4",
        "KFP_BACKEND_STEP_LOG_UPLOAD_SECONDS": "0.5",
    })
    env.update(extra or {})
    return env


def worker_command(name: str, *, concurrency: int = 2, queues: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "kfp_backend", "worker", "--name", name, "--concurrency", str(concurrency)]
    return command + (["--queues", queues] if queues else [])


@dataclass
class WorkerSet:
    database_url: str
    broker: str
    queue: str
    artifact_store: str
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, *, queues: str | None = None, concurrency: int = 2,
              wait: bool = True) -> subprocess.Popen:
        """Start a worker; `wait`: until it consumes its queues (a step sent before waits in the broker)."""
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        env = worker_env(database_url=self.database_url, broker=self.broker, queue=self.queue,
                         artifact_store=self.artifact_store, data_dir=data_dir, extra=self.extra_env)
        with (self.root / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(worker_command(name, concurrency=concurrency, queues=queues), cwd=REPO_ROOT,
                                       env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while wait and " ready." not in self.log(name):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker {name} did not start; its output:\n{self.log(name)}", pytrace=False)
            time.sleep(0.05)
        return process

    def kill(self, name: str) -> None:
        """kill -9: no warm shutdown, no acknowledgement, no last heartbeat."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
