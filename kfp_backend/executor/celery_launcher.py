"""Steps sent to Celery workers: `CeleryStepLauncher`, the `StepLauncher` of a `serve` or `executor`
process with KFP_BACKEND_STEP_BACKEND=celery.

A wave of steps is recorded in the dispatch table (`services.step_dispatch`), one row per attempt with a
fresh token, then sent as Celery messages (key and token only) to the step's queue. A worker takes a
dispatch once, runs the step with the local launcher, and writes its result into the row (see
`celery_worker`). One poller thread per launcher reads the rows of the steps in flight: a finished row
ends its step; a running row whose worker stopped beating for `worker_lost_seconds` is declared lost, and
the step fails with a message naming the worker (the run's retryStrategy retries it as a new attempt).
Terminating a step sets the row's flag (the worker kills it) or ends it at once while no worker has it.
Implements `StepRecovery` from the rows alone, so any later driver, on any host, takes the steps back.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from kfp_backend.config import Settings
from kfp_backend.executor import sandbox, step_logs
from kfp_backend.executor.dispatch_codec import result_from_json, result_to_json, spec_to_json
from kfp_backend.executor.launch_records import LOG_FILE
from kfp_backend.executor.launcher import (
    DEADLINE_MESSAGE,
    TERMINATED_MESSAGE,
    OnExit,
    StepHandle,
    StepResult,
    StepSpec,
)
from kfp_backend.services.step_dispatch import COLLECTED, FINISHED, QUEUED, RUNNING, Dispatch, StepDispatchService

log = logging.getLogger(__name__)

RESEND_MAX_SECONDS = 3600.0


class DispatchHandle(StepHandle):
    """A step sent to a worker: `pid` is 0 (its process is on another machine); `token` names the dispatch."""

    def __init__(self, spec: StepSpec, token: str, started_at: float, adopted: bool) -> None:
        super().__init__(spec.key, 0, Path(spec.work_dir), started_at, adopted)
        self.token = token
        self.deadline_seconds = spec.deadline_seconds
        self.worker = ""
        self.reported_worker = ""  # the worker last told to `on_placed`
        self.queue = ""
        self.resend_after = 0.0  # seconds a queued dispatch waits before its message is sent again
        self.resend_at = 0.0  # time.time() of that


def lost_message(worker: str, seconds: float) -> str:
    return f"the worker {worker or '(unknown)'} running the step was lost (no heartbeat for {seconds:g} s)"


class CeleryStepLauncher:
    """Implements `StepLauncher`, `StepRecovery` and `RemoteSteps` over Celery and the dispatch table."""

    def __init__(self, settings: Settings, dispatches: StepDispatchService, app: Any) -> None:
        self._settings = settings
        self._dispatches = dispatches
        self._app = app
        self._lost_seconds = settings.worker_lost_seconds
        self._poll_seconds = settings.dispatch_poll_seconds
        self._lock = threading.Lock()
        self._watched: dict[str, tuple[DispatchHandle, OnExit]] = {}
        # Results the driver took, to be marked collected: with the next dispatch's transaction (off the
        # step's path) or by the poller once they wait `dispatch_poll_seconds`. (key, token, monotonic time).
        self._marks: list[tuple[str, str, float]] = []
        self._ended_tokens: dict[str, str] = {}  # key -> the token of its dispatch whose result was handed over
        self._news_declared = False
        _LAUNCHERS.add(self)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Where workers say that a step ended, so that its result is read at once, not at the next poll.
        self._news_name = f"kfp-backend.ended.{uuid.uuid4().hex}"
        self._news: Any = None  # the kombu queue, opened by the poller thread (its only user)
        self._news_connection: Any = None

    # -- paths (nothing of a remote step is on this machine) --

    def host_path(self, spec: StepSpec, in_step_path: str) -> Path:
        return sandbox.host_path(spec.work_dir, in_step_path)

    def log_path(self, spec: StepSpec) -> Path:
        return Path(spec.work_dir) / LOG_FILE

    def log_key(self, spec: StepSpec) -> str:
        run_id, _, node_id = spec.key.partition("/")
        return step_logs.log_key(run_id, node_id)

    # -- launching --

    def start_many(self, steps: list[tuple[StepSpec, OnExit]]) -> list[StepHandle | Exception]:
        rows = [(spec.key, spec.key.partition("/")[0], uuid.uuid4().hex, spec.queue or self._settings.celery_queue,
                 spec_to_json(spec, sandbox_required=self._settings.auth_required, news_queue=self._news_name))
                for spec, _ in steps]
        self._declare_news()
        marks = self._take_marks()
        try:
            standing = self._dispatches.dispatch(rows, collected=[(key, token) for key, token, _ in marks])
        except Exception as exc:
            self._restore_marks(marks)
            return [exc for _ in steps]
        outcomes: list[StepHandle | Exception] = []
        for spec, on_exit in steps:
            dispatch = standing[spec.key]
            handle = DispatchHandle(spec, dispatch.token, time.time(), adopted=False)
            self._plan_resend(handle, dispatch)
            try:
                if dispatch.state == QUEUED:
                    self._send(dispatch)
            except Exception as exc:
                self._dispatches.end_queued(dispatch.key, dispatch.token, result_to_json(
                    StepResult(None, False, False, message=f"Error (could not send the step to a worker: {exc})")))
            self._watch(handle, on_exit)
            outcomes.append(handle)
        return outcomes

    def _plan_resend(self, handle: DispatchHandle, dispatch: Dispatch) -> None:
        """A message the broker lost (a Redis without persistence restarted, say) is sent again while the step
        waits: after twice `worker_lost_seconds`, then twice as long each time, at most hourly (a long
        backlog gets few duplicates; a duplicate finds the dispatch taken and is dropped)."""
        handle.queue = dispatch.queue
        handle.resend_after = 2 * self._lost_seconds
        handle.resend_at = time.time() + handle.resend_after

    def _declare_news(self) -> None:
        """Declare this launcher's news queue before its first step goes out: a worker publishes the news
        without declaring anything (RabbitMQ drops a message for a queue that does not exist yet)."""
        if self._news_declared:
            return
        from kfp_backend.executor.celery_app import declare_news_queue

        try:
            declare_news_queue(self._app, self._news_name)
            self._news_declared = True
        except Exception:  # the poll carries on without news; sending the step says what is wrong
            log.warning("celery steps: could not declare the news queue %s", self._news_name, exc_info=True)

    def _send(self, dispatch: Dispatch) -> None:
        from kfp_backend.executor.celery_app import TASK_NAME

        self._app.send_task(TASK_NAME, args=[dispatch.key, dispatch.token], queue=dispatch.queue or None)

    def _watch(self, handle: DispatchHandle, on_exit: OnExit) -> None:
        with self._lock:
            self._watched[handle.key] = (handle, on_exit)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._poll_loop, name="celery-dispatch-poller", daemon=True)
                self._thread.start()
        self._wake.set()

    def terminate(self, handle: StepHandle) -> None:
        assert isinstance(handle, DispatchHandle)
        self._dispatches.request_terminate(handle.key, handle.token)
        self._dispatches.end_queued(handle.key, handle.token,
                                    result_to_json(StepResult(None, False, True, message=TERMINATED_MESSAGE)))
        self._wake.set()

    # -- the poller --

    def _poll_loop(self) -> None:
        next_full = 0.0
        while True:
            news = self._wait_for_news()
            self._wake.clear()
            with self._lock:
                watched = dict(self._watched)
                if not watched and not self._marks and not news:
                    self._thread = None
                    return
            now = time.monotonic()
            if news is None or now >= next_full:  # every step in flight: what no news says
                next_full = now + self._poll_seconds
            else:  # the steps a worker said ended, at once
                watched = {key: watched[key] for key in news if key in watched}
            try:
                if watched:
                    self._poll(watched)
                self._flush_marks(older_than=self._poll_seconds)
            except Exception:
                log.exception("celery steps: reading the dispatches failed")
                time.sleep(self._poll_seconds)

    def _wait_for_news(self) -> set[str] | None:
        """The keys of the steps that workers said ended, waiting at most `dispatch_poll_seconds` for one
        (an empty set: no news); None when the news cannot be read (the broker is gone for now)."""
        from kfp_backend.executor.celery_app import news_queue

        try:
            if self._news is None:
                self._news_connection = self._app.connection_for_read()
                self._news = news_queue(self._news_connection, self._news_name)
            messages = [self._news.get(block=True, timeout=self._poll_seconds)]
        except Exception as exc:  # Empty, or the broker is gone for now: the poll carries on
            if type(exc).__name__ == "Empty":
                return set()
            self._close_news()
            self._wake.wait(self._poll_seconds)
            return None
        while self._news.buffer:  # what else came with it (no round trip: the rest is read next time)
            messages.append(self._news.buffer.popleft())
        keys: set[str] = set()
        for message in messages:
            try:
                keys.add(str(message.payload["key"]))
            except Exception:  # not ours to read: read every row
                return None
        return keys

    def _close_news(self) -> None:
        news, self._news = self._news, None
        connection, self._news_connection = self._news_connection, None
        try:
            if news is not None:
                news.close()
            if connection is not None:
                connection.release()
        except Exception:
                log.debug("celery steps: closing the news queue failed", exc_info=True)

    def _poll(self, watched: dict[str, tuple[DispatchHandle, OnExit]]) -> None:
        rows = self._dispatches.get(watched)
        now = time.time()
        for key, (handle, on_exit) in watched.items():
            row = rows.get(key)
            result: StepResult | None = None
            if row is None or row.token != handle.token:
                result = StepResult(None, False, False, vanished=True, message="the step's dispatch is gone")
            elif row.state in (FINISHED, COLLECTED):
                result = result_from_json(row.result) if row.result else StepResult(None, False, False, vanished=True)
            elif row.state == RUNNING:
                handle.worker = row.worker
                if handle.on_placed is not None and row.worker != handle.reported_worker:
                    handle.reported_worker = row.worker
                    handle.on_placed(row.worker)
                if row.heartbeat_at_ms is not None and row.heartbeat_at_ms < (now - self._lost_seconds) * 1000:
                    lost = StepResult(None, False, False, message=lost_message(row.worker, self._lost_seconds),
                                      host=row.worker)
                    if self._dispatches.declare_lost(key, handle.token, self._lost_seconds, result_to_json(lost)):
                        log.warning("step %s: %s", key, lost.message)
                        result = lost
            elif row.state == QUEUED and handle.deadline_seconds is not None and \
                    now - handle.started_at > handle.deadline_seconds:
                # No worker took it within its deadline (Argo counts the pod's pending time too).
                expired = StepResult(None, True, False, message=DEADLINE_MESSAGE)
                if self._dispatches.end_queued(key, handle.token, result_to_json(expired)):
                    result = expired
            elif row.state == QUEUED and now >= handle.resend_at:
                handle.resend_after = min(2 * handle.resend_after, RESEND_MAX_SECONDS)
                handle.resend_at = now + handle.resend_after
                try:
                    self._send(row)
                    log.info("step %s: still queued; its message sent again", key)
                except Exception:
                    log.warning("step %s: could not send it again", key, exc_info=True)
            if result is None:
                continue
            with self._lock:
                if self._watched.get(key, (None,))[0] is not handle:
                    continue
                del self._watched[key]
            with self._lock:
                self._ended_tokens[key] = handle.token
            handle.finish(result)
            on_exit(result)

    # -- recovery (StepRecovery) --

    def launched_pid(self, spec: StepSpec) -> int | None:
        self._flush_marks(older_than=0.0)
        row = self._dispatches.get([spec.key]).get(spec.key)
        return 0 if row is not None and row.state != COLLECTED else None

    def adopt(self, spec: StepSpec, pid: int, on_exit: OnExit) -> StepHandle | None:
        """Take back a dispatch an earlier driver made (sent again while no worker has it: the message may
        be lost; a duplicate is dropped by the worker that finds it taken)."""
        self._flush_marks(older_than=0.0)
        row = self._dispatches.get([spec.key]).get(spec.key)
        if row is None or row.state == COLLECTED:
            return None
        handle = DispatchHandle(spec, row.token, time.time(), adopted=True)
        self._plan_resend(handle, row)
        if row.state == QUEUED:
            self._declare_news()
            try:
                self._send(row)
            except Exception:
                log.warning("step %s: could not send it again", spec.key, exc_info=True)
        self._watch(handle, on_exit)
        return handle

    def recorded_result(self, spec: StepSpec) -> StepResult | None:
        row = self._dispatches.get([spec.key]).get(spec.key)
        if row is None or row.state not in (FINISHED, COLLECTED) or not row.result:
            return None
        with self._lock:
            self._ended_tokens[spec.key] = row.token
        return result_from_json(row.result)

    def mark_collected(self, spec: StepSpec) -> None:
        """Marked with the next dispatch (or by the poller soon after): until then a restarted driver takes
        the result again, as it does when it dies between taking a result and this call."""
        with self._lock:
            token = self._ended_tokens.pop(spec.key, None)
            if token is not None and self._thread is not None:
                self._marks.append((spec.key, token, time.monotonic()))
                return
        if token is None:
            row = self._dispatches.get([spec.key]).get(spec.key)
            if row is None:
                return
            token = row.token
        self._dispatches.collected([(spec.key, token)])  # no poller to do it later

    def _take_marks(self) -> list[tuple[str, str, float]]:
        with self._lock:
            marks, self._marks = self._marks, []
        return marks

    def _restore_marks(self, marks: list[tuple[str, str, float]]) -> None:
        with self._lock:
            self._marks[:0] = marks

    def _flush_marks(self, *, older_than: float) -> None:
        with self._lock:
            if not self._marks or self._marks[0][2] > time.monotonic() - older_than:
                return
        marks = self._take_marks()
        try:
            self._dispatches.collected([(key, token) for key, token, _ in marks])
        except Exception:
            self._restore_marks(marks)
            raise

    def flush_marks_at_exit(self) -> None:
        try:
            self._flush_marks(older_than=0.0)
        except Exception:  # the database is gone: a restarted driver takes those results again
            log.warning("celery steps: could not mark the results taken as collected", exc_info=True)

    def was_collected(self, spec: StepSpec) -> bool:
        self._flush_marks(older_than=0.0)
        row = self._dispatches.get([spec.key]).get(spec.key)
        return row is not None and row.state == COLLECTED

    def is_alive(self, handle: StepHandle) -> bool:
        return not handle.done()


# A process that stops (a graceful shutdown) marks what its launchers still hold: a run retried later
# then starts its steps afresh instead of taking back an old result.
_LAUNCHERS: weakref.WeakSet[CeleryStepLauncher] = weakref.WeakSet()
atexit.register(lambda: [launcher.flush_marks_at_exit() for launcher in list(_LAUNCHERS)])
