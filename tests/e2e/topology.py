"""A team deployment on one machine, for the multi-process end-to-end test: every part is a process of its own
(`python -m kfp_backend ...` with this checkout on PYTHONPATH and a data dir of its own), and the processes
share only the database, the step broker and the artifact bucket.

- two API processes (`serve --workers 1`: gunicorn, with the executor and the scheduler turned off in them),
- two `scheduler` processes (one active, one standby on the lease),
- one `executor` process (it drives every run),
- with the `celery` step backend, two `worker` processes (named w1-<id> and w2-<id>) that run the steps.

The step backend is a parameter: `local` runs steps as host processes of the executor process (no broker,
no workers); `celery` sends them over the broker to the workers.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from tests.databases import in_ci
from tests.e2e.servers import REPO_ROOT, free_port, server_env, wait_until_healthy
from tests.s3_server import CREDENTIALS

# Redis database 12: its own, beside the other tests' (the Celery tests use 11); a queue per topology anyway.
BROKERS = {"redis": ("127.0.0.1", 6379, "redis://127.0.0.1:6379/12"),
           "amqp": ("127.0.0.1", 5672, "amqp://guest:guest@127.0.0.1:5672//")}
# Seven processes start at once on a machine that may be busy: readiness gets more time than one server's.
START_TIMEOUT_SECONDS = 90.0
WORKER_READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0
# Short enough that the test sees a lost worker or a lost scheduler lease within seconds. Not shorter: on a
# loaded machine (CI, two cores) a live worker's heartbeat was seen 4 s late while the corpus ran, and the
# step it was running was declared lost; 10 s (the default is 30) leaves room.
TIMINGS = {
    "KFP_BACKEND_SCHEDULER_LEASE_SECONDS": "3", "KFP_BACKEND_SCHEDULER_HEARTBEAT_SECONDS": "0.5",
    "KFP_BACKEND_WORKER_HEARTBEAT_SECONDS": "1", "KFP_BACKEND_WORKER_LOST_SECONDS": "10",
    "KFP_BACKEND_STEP_LOG_UPLOAD_SECONDS": "0.5", "KFP_BACKEND_DISPATCH_POLL_SECONDS": "0.1",
}
CELERY_MISSING = "celery step backend not available"
CELERY_NOT_INSTALLED = "celery is not installed"


def unavailable(reason: str) -> None:
    """A service of the topology is absent: skip saying which, or fail under CI=true (CI has them all)."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true needs it", pytrace=False)
    pytest.skip(reason)


def broker_url(kind: str) -> str:
    host, port, url = BROKERS[kind]
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        unavailable(f"no {kind} broker at {host}:{port} ({exc})")
    return url


@cache
def celery_missing() -> str:
    """Why this checkout cannot run Celery step workers ("" when it can): no `worker` command, or no celery."""
    command = [sys.executable, "-m", "kfp_backend", "worker", "--help"]
    answer = subprocess.run(command, cwd=REPO_ROOT, env=_base_env(), capture_output=True, text=True, timeout=120)
    if answer.returncode != 0:
        return f"{CELERY_MISSING}: `kfp-backend worker` is not a command of this checkout"
    if importlib.util.find_spec("celery") is None:
        return f"{CELERY_MISSING}: {CELERY_NOT_INSTALLED} (pip install 'kfp-backend[celery]')"
    return ""


def _base_env() -> dict[str, str]:
    # This checkout's code in every process, whatever the venv has installed.
    return {**server_env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


@dataclass
class Topology:
    root: Path
    database_url: str
    s3_endpoint: str
    bucket: str
    step_backend: str  # local | celery
    broker: str = ""  # the Celery broker URL (celery only)
    queue: str = field(default_factory=lambda: f"kfp-mpe2e-{uuid.uuid4().hex[:12]}")
    api_urls: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _ready_from: dict[str, int] = field(default_factory=dict)

    @property
    def worker_names(self) -> tuple[str, str]:
        """Unique to this topology: Celery over RabbitMQ refuses a second live worker of the same name (its
        `<name>@<host>.celery.pidbox` queue is exclusive), as another test's topology may have at once."""
        suffix = self.queue.rsplit("-", 1)[1][:6]
        return f"w1-{suffix}", f"w2-{suffix}"

    # ------------------------------------------------------------------ processes

    def env(self, name: str) -> dict[str, str]:
        """Process `name`'s environment: the shared services, and a data dir of its own."""
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {**_base_env(), **CREDENTIALS, **TIMINGS,
               "KFP_BACKEND_DATABASE_URL": self.database_url, "KFP_BACKEND_DATA_DIR": str(data_dir),
               "KFP_BACKEND_ARTIFACT_STORE": f"s3://{self.bucket}/team",
               "KFP_BACKEND_S3_ENDPOINT_URL": self.s3_endpoint,
               "KFP_BACKEND_STEP_BACKEND": self.step_backend}
        if self.step_backend == "celery":
            env |= {"KFP_BACKEND_CELERY_BROKER_URL": self.broker, "KFP_BACKEND_CELERY_QUEUE": self.queue}
        return env

    def log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        """The end of every process's log, for a failure message."""
        return "\n".join(f"--- {name} (status {process.poll()}):\n{self.log(name)[-3000:]}"
                         for name, process in self.processes.items())

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        with self.log_path(name).open("ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "kfp_backend", *args], cwd=REPO_ROOT,
                                       env={**self.env(name), **(env or {})}, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def spawn_api(self, name: str) -> str:
        """An API process (`serve --workers 1`, executor and scheduler off); its URL, not waited for."""
        port = free_port()
        self.spawn(name, "serve", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
                   env={"KFP_BACKEND_EXECUTOR_ENABLED": "false", "KFP_BACKEND_SCHEDULER_ENABLED": "false"})
        url = f"http://127.0.0.1:{port}"
        self.api_urls.append(url)
        return url

    def spawn_workers(self, *names: str, concurrency: int = 2) -> None:
        """Celery workers named `names` (their nodes' hostNodeName); `wait_ready` waits until they consume."""
        for name in names:
            self._ready_from[name] = len(self.log(name))  # a restarted worker appends to its log
            self.spawn(name, "worker", "--name", name, "--concurrency", str(concurrency))

    def wait_ready(self, *names: str) -> None:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_SECONDS
        for name in names:
            while " ready." not in self.log(name)[self._ready_from.get(name, 0):]:
                if self.processes[name].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"worker {name} did not start; its output:\n{self.log(name)}", pytrace=False)
                time.sleep(0.05)

    def kill(self, name: str) -> None:
        """kill -9: no shutdown of any kind."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def pids(self, prefix: str) -> set[int]:
        return {p.pid for name, p in self.processes.items() if name.startswith(prefix) and p.poll() is None}

    def stop(self) -> None:
        """SIGTERM to every process at once; SIGKILL to those still running after STOP_TIMEOUT_SECONDS."""
        running = {name: p for name, p in self.processes.items() if p.poll() is None}
        for process in running.values():
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, process in running.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            # Beside the logs: how each process ended (-9: it did not stop on SIGTERM in time).
            with (self.root / "stopped.txt").open("a") as record:
                record.write(f"{name} {process.returncode}\n")

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"processes ended: {dead}\n{self.logs()}"


def start_topology(root: Path, database_url: str, s3_endpoint: str, bucket: str, step_backend: str,
                   broker: str = "") -> Topology:
    """Every process started; the caller stops them (`Topology.stop`), also when this fails."""
    topology = Topology(root, database_url, s3_endpoint, bucket, step_backend, broker)
    try:
        # All at once: they come up side by side; the APIs and the workers are then waited for.
        for name in ("scheduler-1", "scheduler-2"):
            topology.spawn(name, "scheduler")
        topology.spawn("executor", "executor")
        for name in ("api-1", "api-2"):
            topology.spawn_api(name)
        if step_backend == "celery":
            topology.spawn_workers(*topology.worker_names)
        for name, url in zip(("api-1", "api-2"), topology.api_urls, strict=True):
            wait_until_healthy(topology.processes[name], url, topology.log_path(name), timeout=START_TIMEOUT_SECONDS)
        if step_backend == "celery":
            topology.wait_ready(*topology.worker_names)
        topology.check_alive()
    except BaseException:
        topology.stop()
        raise
    return topology
