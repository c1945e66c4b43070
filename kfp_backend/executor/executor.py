"""The executor of one process: claims runs, gives each a driver, shares the step slots.

A monitor thread looks for runs that need a driver: new runs, retried runs, and runs whose driver
stopped renewing its claim (a crashed or killed process). It claims them with a compare-and-set in
the database, so with several executors on one database each run has one driver at a time, and no
run stays "Running" after its driver is gone.

The same thread removes the step scratch of runs that finished more than `step_scratch_ttl_seconds`
ago (each step's `root/`: its private /tmp and declared paths), as upstream deletes a workflow's pods a
day after it ends. Logs and exit records stay (the node log endpoint reads them), and so do outputs,
which live in the database and the artifact store. A retried run is unfinished again, and a driver of
this process cannot start while the sweep runs (one thread does both), so no live step loses a file.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Protocol

from kfp_backend.config import Settings
from kfp_backend.executor import sandbox, step_logs
from kfp_backend.executor.artifact_imports import ArtifactImports
from kfp_backend.executor.artifacts import ArtifactStore
from kfp_backend.executor.driver import RunDriver
from kfp_backend.executor.driver_messages import RunDeleted, Shutdown, Terminate, Wake
from kfp_backend.executor.ir_steps import StepEnvironment
from kfp_backend.executor.launcher import StepLauncher
from kfp_backend.executor.step_cache import StepCache
from kfp_backend.observability import STEPS_RUNNING, CreationTimes
from kfp_backend.services.execution_state import ExecutionStateService

log = logging.getLogger(__name__)

SWEEP_MAX_INTERVAL_SECONDS = 600.0

# Executors alive in this process: a claim carrying this process's pid but an id not listed here
# belongs to an earlier process that had the same pid, and is stale.
_LIVE_EXECUTOR_IDS: set[str] = set()


class MetricsReporter(Protocol):
    def report_metrics_file(self, run_id: str, node_id: str, data: bytes) -> None:
        """A step's mlpipeline-metrics file, turned into the run's metrics."""


class Executor:
    """Implements the run service's execution hooks (`RunExecution`)."""

    def __init__(
        self,
        settings: Settings,
        state: ExecutionStateService,
        launcher: StepLauncher,
        artifacts: ArtifactStore,
        metrics_reporter: MetricsReporter | None = None,
        poll_seconds: float = 1.0,
        step_environment: StepEnvironment | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.launcher = launcher
        self.artifacts = artifacts
        self.metrics_reporter = metrics_reporter
        # KFP v2 steps: where their programs come from (e.g. per-kfp-version environments); None: PATH.
        self.step_environment = step_environment
        self.step_cache = StepCache(Path(settings.data_dir) / "cache" / "v2", artifacts)
        self.imports = ArtifactImports.from_settings(settings, artifacts, state.run_namespace)
        self.poll_seconds = poll_seconds
        self.driver_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._runs_dir = (Path(settings.data_dir) / "runs").resolve()
        self._drivers: dict[str, RunDriver] = {}
        self._lock = threading.Lock()
        self._slots_free = settings.effective_max_parallel_steps
        self._waiting: set[RunDriver] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._monitor_loop, name="executor-monitor", daemon=True)
        ttl = settings.step_scratch_ttl_seconds
        # Swept about four times per TTL, at most every 10 minutes: scratch outlives its TTL by a quarter.
        self._sweep_every = min(SWEEP_MAX_INTERVAL_SECONDS, ttl / 4) if ttl > 0 else None
        # Not at start-up: the first sweep of a big data dir must not hold up the claims of a restart.
        self._next_sweep = time.monotonic() + (self._sweep_every or 0)
        self._swept: set[str] = set()  # runs whose scratch is gone (this process's view)
        self._creation_times = CreationTimes()  # the claim lag of runs created in this process

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        _LIVE_EXECUTOR_IDS.add(self.driver_id)
        self._monitor.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, stop every driver and release its claim. Running steps are left running:
        the next executor on this machine adopts them, as after a crash."""
        self._stopping.set()
        self._wake.set()
        self._monitor.join(timeout)
        with self._lock:
            drivers = list(self._drivers.values())
        for driver in drivers:
            driver.post(Shutdown())
        for driver in drivers:
            driver.join(timeout)
        for driver in drivers:
            self.state.release(driver.run_id, self.driver_id)
        self.state.close()
        _LIVE_EXECUTOR_IDS.discard(self.driver_id)

    def step_dir(self, run_id: str, node_id: str) -> Path:
        return self._runs_dir / run_id / node_id

    # ------------------------------------------------------------ RunExecution hooks

    def run_created(self, run_id: str) -> None:
        self._creation_times.created(run_id)
        self._wake.set()

    def retry_requested(self, run_id: str) -> None:
        self._wake.set()

    def terminate_requested(self, run_id: str) -> None:
        driver = self._drivers.get(run_id)
        if driver is not None:
            driver.post(Terminate())
        else:
            self._wake.set()

    def run_deleted(self, run_id: str) -> None:
        driver = self._drivers.get(run_id)
        if driver is not None:
            driver.post(RunDeleted())  # it kills the steps, then removes the files
        else:
            self.remove_run_files(run_id)

    def remove_run_files(self, run_id: str) -> None:
        """A deleted run's step directories (logs, outputs) and stored artifacts."""
        shutil.rmtree(self.settings.data_dir / "runs" / run_id, ignore_errors=True)
        try:
            self.artifacts.delete_prefix(f"artifacts/{run_id}/")
        except Exception:
            log.exception("run %s: could not delete its artifacts", run_id)

    def finish_step_log(self, run_id: str, node: dict) -> None:
        """Cap the log of a step that has ended to `step_log_max_bytes` (see `step_logs`; a log that cannot
        be capped is left whole); with a store that keeps logs (S3), upload it under the run's prefix, where
        the node log endpoint of any replica finds it once this host's file is gone."""
        path = node.get("_log_path")
        if not isinstance(path, str) or not path:
            return
        try:
            cut = step_logs.cap_log(Path(path), self.settings.step_log_max_bytes)
        except OSError:
            log.warning("step %s: could not cap its log %s", node.get("id"), path, exc_info=True)
            cut = 0
        if cut:
            log.info("step %s: %d bytes cut from the middle of its log", node.get("id"), cut)
        if not self.artifacts.keeps_logs or not os.path.isfile(path):
            return
        key = step_logs.log_key(run_id, str(node.get("id")))
        try:
            self.artifacts.put_file(key, Path(path))
        except Exception:
            log.warning("step %s: could not store its log %s in the artifact store", node.get("id"), path,
                        exc_info=True)
            return
        node["_log_key"] = key

    # ------------------------------------------------------------ slots

    def try_acquire_slot(self, driver: RunDriver) -> bool:
        with self._lock:
            if self._slots_free > 0:
                self._slots_free -= 1
                self._waiting.discard(driver)
                STEPS_RUNNING.inc()
                return True
            self._waiting.add(driver)
            return False

    def claim_slot_unconditionally(self, driver: RunDriver) -> None:
        """An adopted step already runs: count it even if that overbooks the slots for a while."""
        with self._lock:
            self._slots_free -= 1
            STEPS_RUNNING.inc()

    def release_slot(self, driver: RunDriver) -> None:
        with self._lock:
            self._slots_free += 1
            STEPS_RUNNING.dec()
            waiting = list(self._waiting)
            self._waiting.clear()
        for other in waiting:
            other.post(Wake())

    # ------------------------------------------------------------ metrics

    def report_metrics(self, run_id: str, node_id: str, data: bytes) -> None:
        if self.metrics_reporter is None:
            return
        try:
            self.metrics_reporter.report_metrics_file(run_id, node_id, data)
        except Exception:
            log.exception("run %s: could not report the metrics of %s", run_id, node_id)

    # ------------------------------------------------------------ claiming

    def driver_done(self, driver: RunDriver) -> None:
        with self._lock:
            if self._drivers.get(driver.run_id) is driver:
                del self._drivers[driver.run_id]
            self._waiting.discard(driver)
        # The run may have been retried while this driver was finishing.
        self._wake.set()

    def _monitor_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.claim_runs()
            except Exception:
                log.exception("executor: claiming runs failed")
            if self._sweep_every is not None and time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self._sweep_every
                try:
                    self.sweep_step_scratch()
                except Exception:
                    log.exception("executor: removing old step scratch failed")

    def sweep_step_scratch(self) -> int:
        """Remove the scratch of the steps of runs finished more than the TTL ago; how many steps."""
        try:
            run_ids = [entry.name for entry in os.scandir(self._runs_dir) if entry.is_dir()]
        except FileNotFoundError:
            return 0
        with self._lock:
            driven = set(self._drivers)
        candidates = [run_id for run_id in run_ids if run_id not in self._swept and run_id not in driven]
        if not candidates:
            return 0
        removed = 0
        for run_id in sorted(self.state.finished_before(candidates, self.settings.step_scratch_ttl_seconds)):
            if self._stopping.is_set():
                break
            try:
                steps = list(os.scandir(self._runs_dir / run_id))
            except FileNotFoundError:  # the run was deleted meanwhile, its files with it
                steps = []
            for step in steps:
                scratch = Path(step.path) / sandbox.ROOT_DIR
                if step.is_dir() and scratch.is_dir():
                    shutil.rmtree(scratch, ignore_errors=True)
                    removed += 1
            self._swept.add(run_id)
        if removed:
            log.info("executor: removed the scratch of %d steps of finished runs", removed)
        return removed

    def claim_runs(self) -> None:
        candidates = dict(self.state.claimable_runs(self.settings.driver_stale_seconds))
        for run_id, driver_id in self.state.driven_runs():
            if run_id not in candidates and driver_id != self.driver_id and _is_dead_local_driver(driver_id):
                candidates[run_id] = driver_id
        for run_id, previous in candidates.items():
            if self._stopping.is_set():
                return
            with self._lock:
                if run_id in self._drivers:
                    continue
            claimed = self.state.claim(run_id, self.driver_id, previous)
            if claimed is None:
                continue
            # A run never driven before (no driver, no node, not started): its first claim.
            first = previous is None and not claimed.nodes and not claimed.workflow_status.get("startedAt")
            self._creation_times.claimed(run_id, claimed.created_at, first)
            driver = RunDriver(
                claimed, host=self, launcher=self.launcher, state=self.state, artifacts=self.artifacts,
                driver_id=self.driver_id, heartbeat_seconds=self.settings.driver_heartbeat_seconds,
                step_environment=self.step_environment, step_cache=self.step_cache, imports=self.imports,
            )
            with self._lock:
                self._drivers[run_id] = driver
            driver.start()


def _is_dead_local_driver(driver_id: str) -> bool:
    """A claim made on this machine by a process that no longer exists (fast takeover after a restart)."""
    parts = driver_id.split(":")
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return driver_id not in _LIVE_EXECUTOR_IDS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
