"""The reaper: one thread per launcher watching every step it started or adopted.

An epoll set over the steps' pidfds, plus the timers of their deadlines and kill grace periods. When a
wrapper (the group leader) ends, the reaper collects its exit status, SIGKILLs whatever is left in its
process group, as the container runtime does when a container's main process exits, and calls
`on_exit` once that group is gone. There is no thread per step, and the thread goes away when no step
is left to watch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kfp_backend.executor.launch_records import (
    DEADLINE,
    KILLED_FILE,
    LaunchRecord,
    read_exit_code,
    remove_untouched_placeholders,
    step_result,
    write_atomically,
)
from kfp_backend.executor.launcher import OnExit, StepHandle, StepResult
from kfp_backend.executor.process_groups import group_alive, signal_group

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05  # steps without a pidfd (old kernels, or adopted without one): checked this often
_DRAIN_SECONDS = 0.01  # a leader is gone but its group is not yet: checked this often
_GROUP_GONE_TIMEOUT = 5.0


class ProcessHandle(StepHandle):
    """A step run as a host process group, with what the reaper watches it by."""

    def __init__(
        self, key: str, pid: int, work_dir: Path, started_at: float, *,
        child: bool, pidfd: int | None, deadline: float | None,
        kill_reason: str | None = None, record: LaunchRecord | None = None,
    ) -> None:
        super().__init__(key, pid, work_dir, started_at, adopted=not child)
        self.lock = threading.Lock()
        self.child = child  # our own child: its exit status comes from waitpid
        self.pidfd = pidfd
        self.deadline = deadline  # time.monotonic()
        self.kill_reason = kill_reason
        self.record = record  # adopted steps: the launch record to check liveness
        self.status: int | None = None  # its wait status, when reaped before the pass that concludes it
        self.kill_at: float | None = None  # time.monotonic() of the SIGKILL after the grace period
        self.group_gone = False


class Reaper:
    """`watch` registers a handle; the thread waits on the pidfds, a wake-up eventfd and the nearest timer,
    handles all that is due in one pass, and ends when nothing is left to watch (`watch` starts it again).

    `take_back(work_dir)` is called once a step's group is gone, before its result is read."""

    def __init__(self, kill_grace_seconds: float, take_back: Callable[[Path], None]) -> None:
        self.kill_grace_seconds = kill_grace_seconds
        self._take_back = take_back
        self._lock = threading.Lock()
        self._epoll = select.epoll()
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._epoll.register(self._wake, select.EPOLLIN)
        self._watched: dict[ProcessHandle, OnExit] = {}
        self._by_fd: dict[int, ProcessHandle] = {}
        # Leaders that ended while their group lives on: (exit code, signal, give up at).
        self._draining: dict[ProcessHandle, tuple[int | None, int | None, float]] = {}
        self._thread: threading.Thread | None = None

    def watch(self, handle: ProcessHandle, on_exit: OnExit) -> None:
        with self._lock:
            self._watched[handle] = on_exit
            if handle.pidfd is not None:
                self._by_fd[handle.pidfd] = handle
                self._epoll.register(handle.pidfd, select.EPOLLIN)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="step:reaper", daemon=True)
                self._thread.start()
                return
        # A pidfd joins the epoll set at once; only a new timer (or polling) needs the thread to look again.
        if handle.deadline is not None or handle.pidfd is None:
            self.poke()

    def kill(self, handle: ProcessHandle, reason: str) -> None:
        """SIGTERM the step's process group, SIGKILL after `kill_grace_seconds`; returns at once. The
        reason is written down first (`killed`), for the result and for a later server process."""
        with handle.lock:
            if handle.group_gone or handle.kill_reason is not None:
                return
            handle.kill_reason = reason
            with contextlib.suppress(OSError):
                write_atomically(handle.work_dir / KILLED_FILE, reason + "\n")
            if self.kill_grace_seconds > 0:
                signal_group(handle.pid, signal.SIGTERM)
                signal_group(handle.pid, signal.SIGCONT)
                handle.kill_at = time.monotonic() + self.kill_grace_seconds
            else:
                signal_group(handle.pid, signal.SIGKILL)
        self.poke()  # it recomputes its wake-up time

    def poke(self) -> None:
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._watched:
                    self._thread = None
                    return
                handles = list(self._watched)
            try:
                timeout = self._due(handles)
                ended: list[ProcessHandle] = []
                for fd, _ in self._epoll.poll(timeout):
                    if fd == self._wake:
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(self._wake)
                    elif fd in self._by_fd:
                        ended.append(self._by_fd[fd])
                # Steps without a pidfd are looked at on every pass.
                ended += [h for h in handles if h.pidfd is None and h not in self._draining and self._ended(h)]
                # Everything that ended meanwhile is handled in this one pass.
                for handle in ended:
                    self._leader_done(handle)
                for handle in list(self._draining):
                    self._drain(handle)
            except Exception:  # never leave the engine waiting for an on_exit that never comes
                log.exception("step reaper: unexpected error")
                time.sleep(_POLL_SECONDS)

    def _due(self, handles: list[ProcessHandle]) -> float:
        """Act on the deadlines and grace periods that are due; seconds until the next one (-1: none)."""
        now = time.monotonic()
        wakeups: list[float] = []
        for handle in handles:
            if handle in self._draining:
                wakeups.append(now + _DRAIN_SECONDS)
                continue
            if handle.deadline is not None and handle.kill_reason is None and now >= handle.deadline:
                self.kill(handle, DEADLINE)
            with handle.lock:
                if handle.kill_at is not None and now >= handle.kill_at:
                    signal_group(handle.pid, signal.SIGKILL)
                    handle.kill_at = None
                if handle.kill_at is not None:
                    wakeups.append(handle.kill_at)
                if handle.kill_reason is None and handle.deadline is not None:
                    wakeups.append(handle.deadline)
            if handle.pidfd is None:
                wakeups.append(now + _POLL_SECONDS)
        return max(0.0, min(wakeups) - now) if wakeups else -1

    @staticmethod
    def _ended(handle: ProcessHandle) -> bool:
        """The leader of a step without a pidfd has ended (our child: reaped here, its status kept)."""
        if handle.child:
            pid, status = os.waitpid(handle.pid, os.WNOHANG)
            if pid == 0:
                return False
            handle.status = status
            return True
        return handle.record is None or not handle.record.is_running()

    def _leader_done(self, handle: ProcessHandle) -> None:
        with self._lock:
            if handle.pidfd is not None:
                self._by_fd.pop(handle.pidfd, None)
                with contextlib.suppress(OSError, ValueError):
                    self._epoll.unregister(handle.pidfd)
        code: int | None = None
        signal_number: int | None = None
        try:
            if handle.child:
                status = handle.status if handle.status is not None else os.waitpid(handle.pid, 0)[1]
                returncode = os.waitstatus_to_exitcode(status)
                code = returncode if returncode >= 0 else None
                signal_number = -returncode if returncode < 0 else None
            else:
                code = read_exit_code(handle.work_dir)
        except ChildProcessError:
            code = read_exit_code(handle.work_dir)
        except Exception as exc:
            log.exception("step %s: collecting its exit failed", handle.key)
            self._finish(handle, StepResult(None, False, False, message=f"Error (launcher: {exc})"))
            return
        # Whatever the leader left in its group dies with it, as in a container.
        if group_alive(handle.pid):
            signal_group(handle.pid, signal.SIGKILL)
            self._draining[handle] = (code, signal_number, time.monotonic() + _GROUP_GONE_TIMEOUT)
            self._drain(handle)
            return
        self._conclude(handle, code, signal_number)

    def _drain(self, handle: ProcessHandle) -> None:
        code, signal_number, give_up = self._draining[handle]
        if group_alive(handle.pid) and time.monotonic() < give_up:
            return
        del self._draining[handle]
        self._conclude(handle, code, signal_number)

    def _conclude(self, handle: ProcessHandle, code: int | None, signal_number: int | None) -> None:
        try:
            with handle.lock:
                handle.group_gone = True
                kill_reason = handle.kill_reason
            self._take_back(handle.work_dir)
            remove_untouched_placeholders(handle.work_dir)
            result = step_result(code, kill_reason, signal_number=signal_number)
        except Exception as exc:
            log.exception("step %s: watching the process failed", handle.key)
            result = StepResult(None, False, False, message=f"Error (launcher: {exc})")
        self._finish(handle, result)

    def _finish(self, handle: ProcessHandle, result: StepResult) -> None:
        with handle.lock:  # kill checks group_gone under this lock
            handle.group_gone = True
            if handle.pidfd is not None:
                with contextlib.suppress(OSError):
                    os.close(handle.pidfd)
        with self._lock:
            on_exit = self._watched.pop(handle)
        handle.finish(result)
        try:
            on_exit(result)
        except Exception:
            log.exception("step %s: on_exit failed", handle.key)
