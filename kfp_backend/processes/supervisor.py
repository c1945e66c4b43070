"""`kfp-backend serve --workers N`: start the API (gunicorn, web.py), the executor and the scheduler as child
processes and watch them.

- The executor and the scheduler never run inside a web worker: each is `kfp-backend executor` /
  `kfp-backend scheduler`, started only when `KFP_BACKEND_EXECUTOR_ENABLED` / `..._SCHEDULER_ENABLED` is on.
- Every child gets this process's settings as KFP_BACKEND_* variables (`Settings.as_environment`) and one
  PROMETHEUS_MULTIPROC_DIR: a private temporary directory made here when the variable is unset (removed at the
  end), else the one given (its stale value files removed at start). A scrape of any web worker then adds up
  the values of every web worker, the executor and the scheduler.
- A child that exits on its own is a failure: the others are stopped and `serve` exits with status 1 (2 when
  the child refused to start on its configuration), for the service manager (systemd, Docker's restart
  policy) to restart the whole. No restart loop of its own, which would hide a crash-looping executor behind
  a healthy API.
- SIGTERM or SIGINT: SIGTERM to every child (gunicorn finishes its requests, the executor releases its runs,
  the scheduler its lease), SIGKILL to any still alive after STOP_TIMEOUT_SECONDS; then exit 0.
- Children run in sessions of their own (a terminal's Ctrl-C reaches only this process, which stops them in
  order) and get SIGTERM from the kernel if this process dies without stopping them (Linux: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kfp_backend.config import Settings
from kfp_backend.processes.web import MULTIPROC_DIR_VARIABLE

log = logging.getLogger("kfp_backend")
# gunicorn's graceful stop (web.GRACEFUL_TIMEOUT_SECONDS) and the executor's (10 s per driver join) fit in it.
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None


def child_commands(settings: Settings) -> list[Child]:
    python = sys.executable
    children = [Child("web", [python, "-m", "kfp_backend.processes.web"])]
    if settings.executor_enabled:
        children.append(Child("executor", [python, "-m", "kfp_backend", "executor"]))
    if settings.scheduler_enabled:
        children.append(Child("scheduler", [python, "-m", "kfp_backend", "scheduler"]))
    return children


def _parent_death_signal() -> object:
    """A preexec_fn asking the kernel for SIGTERM when this process dies (Linux), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)  # loaded before any fork

    def _set() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return _set


def metrics_dir() -> tuple[Path, bool]:
    """The PROMETHEUS_MULTIPROC_DIR for the children and whether it is ours to remove at the end."""
    given = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not given:
        return Path(tempfile.mkdtemp(prefix="kfp-backend-metrics-")), True
    path = Path(given)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # values of an earlier start (prometheus_client's files, nothing else)
        stale.unlink(missing_ok=True)
    return path, False


def supervise(settings: Settings) -> int:
    stop = threading.Event()
    signals: list[int] = []

    def _stop(signum: int, _frame: object) -> None:
        signals.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    directory, owned = metrics_dir()
    environ = {**os.environ, **settings.as_environment(), MULTIPROC_DIR_VARIABLE: str(directory),
               "PYTHONUNBUFFERED": "1"}
    children = child_commands(settings)
    preexec = _parent_death_signal()
    status = 0
    try:
        for child in children:
            if stop.is_set():
                break
            child.process = subprocess.Popen(child.command, env=environ, stdin=subprocess.DEVNULL,
                                             start_new_session=True, preexec_fn=preexec)  # type: ignore[arg-type]
            log.info("kfp-backend: started the %s process (pid %d)", child.name, child.process.pid)
        while not stop.wait(POLL_SECONDS):
            failed = next((child for child in children if child.process and child.process.poll() is not None), None)
            if failed is not None:
                assert failed.process is not None
                log.error("kfp-backend: the %s process (pid %d) exited with status %s: stopping the others",
                          failed.name, failed.process.pid, failed.process.returncode)
                # 2: it refused to start on its configuration (no sandbox, no artifact store), as `serve` does.
                status = 2 if failed.process.returncode == 2 else 1
                break
        if signals:
            log.info("kfp-backend: signal %d, shutting down", signals[0])
    finally:
        _stop_children(children, directory)
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
    return status


def _stop_children(children: list[Child], directory: Path) -> None:
    """SIGTERM to all at once (each stops in its own time), SIGKILL to the late; their live gauges cleared."""
    from prometheus_client import multiprocess

    running = [child for child in children if child.process is not None]
    for child in running:
        assert child.process is not None
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("kfp-backend: the %s process did not stop within %.0f s: killed", child.name,
                        STOP_TIMEOUT_SECONDS)
            child.process.kill()
            child.process.wait()
        multiprocess.mark_process_dead(child.process.pid, str(directory))
