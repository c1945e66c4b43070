"""`kfp-backend worker`: a Celery worker that runs steps with the local launcher and isolation.

Each message names a dispatch (key, token). The worker takes it in the database (once: a stale or
duplicate message finds it taken and is dropped), then does on its own machine what a driver does beside
a local launcher: places the step's inputs from the artifact store (`StepSpec.io`), runs it with
`LocalProcessLauncher` (the same isolation, wrapper and deadline), archives its outputs into the store and
reads its small output files, and writes its result into the dispatch row. Nothing goes back through
Celery. While steps run, one thread renews their heartbeats, kills those whose terminate flag is set or
that are no longer this worker's (declared lost), and uploads their logs to the store every
`step_log_upload_seconds`; the final log is uploaded (capped) when the step ends. A `Watchdog` process
kills the steps' process groups if the worker dies. Each step's directory is the worker's own (under its
data dir) and is removed once its result is written.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp_backend.config import Settings
from kfp_backend.executor import ir_steps, sandbox, step_logs
from kfp_backend.executor.artifact_imports import ArtifactImports
from kfp_backend.executor.artifacts import ArtifactStore
from kfp_backend.executor.celery_app import tell
from kfp_backend.executor.dispatch_codec import dispatched_step_from_json, result_to_json
from kfp_backend.executor.launch_records import LOG_FILE
from kfp_backend.executor.launcher import StepHandle, StepResult, StepSpec
from kfp_backend.executor.process_launcher import LocalProcessLauncher
from kfp_backend.executor.step_io import collect_outputs, place_inputs
from kfp_backend.services.step_dispatch import StepDispatchService

log = logging.getLogger(__name__)


class Watchdog:
    """The `orphan_watchdog` process of this worker: told each step's process group as it starts and ends."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("orphan_watchdog.py")
        self._process = subprocess.Popen([sys.executable, "-I", "-S", str(script)], stdin=subprocess.PIPE,
                                         start_new_session=True)  # Ctrl-C of the worker must not stop it first
        self._lock = threading.Lock()

    def _say(self, line: str) -> None:
        assert self._process.stdin is not None
        with self._lock:
            try:
                self._process.stdin.write(line.encode() + b"\n")
                self._process.stdin.flush()
            except OSError:
                log.warning("worker: the orphan watchdog is gone")

    def started(self, group: int) -> None:
        self._say(f"+{group}")

    def ended(self, group: int) -> None:
        self._say(f"-{group}")

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(10)


@dataclass
class _Held:
    """A step this worker runs: its dispatch, its handle once started, its log's upload state."""

    token: str
    spec: StepSpec
    log_key: str
    handle: StepHandle | None = None
    lost: bool = False  # no longer this worker's: killed, its result is not written
    terminating: bool = False
    uploaded_size: int = -1
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # the log's uploads, the last one last


class StepRunner:
    """Runs the steps of one worker process (Celery's threads pool calls `run` from several threads)."""

    def __init__(self, settings: Settings, name: str, dispatches: StepDispatchService, launcher: LocalProcessLauncher,
                 artifacts: ArtifactStore, step_environment: ir_steps.StepEnvironment | None = None,
                 app: Any = None) -> None:
        self.settings = settings
        self.name = name
        self.dispatches = dispatches
        self.launcher = launcher
        self.artifacts = artifacts
        # A KFP v2 step's imported artifacts (dsl.importer) are read here, where the step runs.
        self.imports = ArtifactImports.from_settings(settings, artifacts, dispatches.run_namespace)
        self.step_environment = step_environment
        self.app = app  # the Celery app: its broker carries the "step ended" news to drivers
        self.runs_dir = (Path(settings.data_dir) / "worker-steps").resolve()
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watchdog = Watchdog()
        self._beater = threading.Thread(target=self._beat_loop, name="worker-heartbeat", daemon=True)
        self._beater.start()

    def close(self) -> None:
        self._stopping.set()
        self._beater.join(10)
        self._watchdog.close()

    # -- one step --

    def run(self, key: str, token: str) -> None:
        text = self.dispatches.take(key, token, self.name)
        if text is None:
            log.info("step %s: dropped a message for a dispatch that is no longer queued (taken, finished or "
                     "stale)", key)
            return
        work_dir = self.runs_dir / key
        news, sandbox_required = "", False
        try:
            dispatched = dispatched_step_from_json(text, work_dir)
        except (ValueError, KeyError, TypeError) as exc:  # not a step this version can read
            spec = StepSpec(key=key, argv=[], env={}, work_dir=work_dir, private_paths=[], deadline_seconds=None)
            unreadable: Exception | None = exc
        else:
            spec, news, sandbox_required = dispatched.spec, dispatched.news_queue, dispatched.sandbox_required
            unreadable = None
        held = _Held(token, spec, _log_key(key))
        with self._lock:
            self._held[key] = held
        log.info("step %s: started on %s", key, self.name)
        try:
            if unreadable is not None:
                raise RuntimeError(f"the step's dispatch cannot be read by this worker: {unreadable}")
            if sandbox_required and self.launcher.isolation != sandbox.BWRAP and \
                    not self.settings.unsafe_allow_unisolated_steps:
                # A multi-user deployment's step: never run outside the sandbox that keeps tenants apart.
                raise RuntimeError("the step comes from a multi-user deployment, and this worker does not run steps "
                                   "in the multi-user sandbox (start it with KFP_BACKEND_AUTH=required)")
            result = self._execute(held)
        except Exception as exc:  # the step could not start: its dispatch says why
            log.exception("step %s: could not start", key)
            result = StepResult(None, False, False, message=f"Error (failed to start the step on worker "
                                                            f"{self.name}: {exc})")
        finally:
            with self._lock:
                self._held.pop(key, None)
        result = StepResult(result.exit_code, result.deadline_exceeded, result.terminated, result.vanished,
                            result.message, host=self.name, collected=result.collected)
        if held.lost:
            log.warning("step %s: no longer this worker's (declared lost); its result is dropped", key)
        elif not self.dispatches.finish(key, token, self.name, result_to_json(result)):
            log.warning("step %s: its dispatch was no longer this worker's; its result is dropped", key)
        elif news and self.app is not None:
            try:
                tell(self.app, news, key)
            except Exception:  # its driver reads the result at its next poll anyway
                log.warning("step %s: could not tell its driver that it ended", key, exc_info=True)
        shutil.rmtree(work_dir, ignore_errors=True)
        log.info("step %s: ended (%s)", key, result.message or "succeeded")

    def _execute(self, held: _Held) -> StepResult:
        spec = held.spec
        if spec.work_dir.exists():  # an earlier attempt of this key on this worker
            shutil.rmtree(spec.work_dir)
        if spec.prepare_environment and self.step_environment is not None:
            spec = ir_steps.prepared(spec, self.step_environment)
            held.spec = spec
        place_inputs(spec.io, lambda path: sandbox.host_path(spec.work_dir, path), self.artifacts, self.imports)
        handle = self.launcher.start(spec, lambda _result: None)
        self._watchdog.started(handle.pid)
        held.handle = handle
        if held.terminating or held.lost:  # asked for while it was starting
            self.launcher.terminate(handle)
        result = handle.wait()
        self._watchdog.ended(handle.pid)
        assert result is not None
        collected = None
        if not held.lost:
            collected = collect_outputs(spec.io, lambda path: sandbox.host_path(spec.work_dir, path), self.artifacts)
        self._upload_log(held, final=True)
        return StepResult(result.exit_code, result.deadline_exceeded, result.terminated, result.vanished,
                          result.message, collected=collected)

    # -- heartbeats, terminate flags, logs --

    def _beat_loop(self) -> None:
        beat_every = self.settings.worker_heartbeat_seconds
        upload_every = self.settings.step_log_upload_seconds
        next_upload = time.monotonic() + upload_every
        while not self._stopping.wait(beat_every):
            with self._lock:
                held = dict(self._held)
            if not held:
                continue
            try:
                flags = self.dispatches.beat([(key, h.token) for key, h in held.items()], self.name)
            except Exception:
                log.warning("worker: heartbeat failed", exc_info=True)
                continue
            for key, step in held.items():
                if key not in flags:
                    step.lost = True
                elif flags[key]:
                    step.terminating = True
                else:
                    continue
                if step.handle is not None and not step.handle.done():
                    log.info("step %s: %s", key, "terminated" if not step.lost else "no longer ours: killed")
                    self.launcher.terminate(step.handle)
            if time.monotonic() >= next_upload:
                next_upload = time.monotonic() + upload_every
                for step in held.values():
                    self._upload_log(step, final=False)

    def _upload_log(self, held: _Held, *, final: bool) -> None:
        """The step's log into the store (where the node log endpoint reads it); the final one capped."""
        path = held.spec.work_dir / LOG_FILE
        with held.lock:
            if held.done:
                return
            try:
                if final:
                    held.done = True
                    step_logs.cap_log(path, self.settings.step_log_max_bytes)
                size = path.stat().st_size if path.exists() else -1
                if size < 0 or (size == held.uploaded_size and not final):
                    return
                self.artifacts.put_file(held.log_key, path)
                held.uploaded_size = size
            except Exception:
                log.warning("step %s: could not upload its log", held.spec.key, exc_info=True)


def _log_key(key: str) -> str:
    run_id, _, node_id = key.partition("/")
    return step_logs.log_key(run_id, node_id)


def _waking_request() -> type:
    """Celery's task request, waking the worker's event loop once a message is acknowledged (late, after
    its step). The loop asks the broker for the next message only on its next turn: on Redis nothing else
    starts that turn when every thread was busy, so a freed thread would wait for the loop's next timer
    (up to a second) before it gets another step."""
    from celery.worker.request import Request
    from kombu.asynchronous import get_event_loop

    class WakingRequest(Request):
        def acknowledge(self) -> None:
            super().acknowledge()
            loop = get_event_loop()
            if loop is not None:
                loop.call_soon(_nothing)  # from another thread: wakes the loop

    return WakingRequest


def _nothing() -> None:
    pass


def default_name() -> str:
    return socket.gethostname()


def run_worker(settings: Settings, runner: StepRunner, app: Any, *, concurrency: int, queues: list[str]) -> int:
    """Consume `queues` with `concurrency` threads until stopped (SIGTERM/SIGINT: a warm shutdown, running
    steps finish first); the worker's exit code."""
    from kfp_backend.executor.celery_app import TASK_NAME

    @app.task(name=TASK_NAME, Request=_waking_request())
    def run_step(key: str, token: str) -> None:
        runner.run(key, token)

    worker = app.Worker(
        hostname=f"{runner.name}@{socket.gethostname()}" if "@" not in runner.name else runner.name,
        concurrency=concurrency, pool="threads", queues=queues, loglevel=settings.log_level.upper(),
        without_mingle=True, without_gossip=True, without_heartbeat=True, optimization="fair",
    )
    log.info("kfp-backend worker %s: %d threads on queues %s (broker %s), pid %d", runner.name, concurrency,
             ",".join(queues), app.connection_for_write().as_uri(), os.getpid())
    try:
        worker.start()
    finally:
        runner.close()
    return int(worker.exitcode or 0)
