"""The step launcher: runs one attempt of a container template as a host process group.

Every step runs under a tiny `/bin/sh` wrapper, in its own session (so its process group holds the
step and all its descendants), with its private view of the in-step paths (see `sandbox`):

    [unshare --mount --propagation private] /bin/sh -c \
        '<mounts; cd>; "$@" >&2; rc=$?; echo $rc; exit $rc' kfp-step ARGV...

The wrapper's stdout is `<work_dir>/exit_code`: the step's exit status is on disk even when the server
died meanwhile. The step's stdout and stderr both go to `<work_dir>/log`. Right after the launch the
launcher writes `<work_dir>/pid` ("pid start-time boot-id started-at"; start time = field 22 of
/proc/<pid>/stat), so a later server process can adopt the step (`adopt`) or learn how it ended
(`recorded_result`) without mistaking a reused pid for it. When the launcher kills a step (deadline,
terminate) it first writes the reason to `<work_dir>/killed`.

No Python interpreter is spawned per step, and nothing runs Python code between fork and exec (a
preexec_fn would force a full fork of the server and is unsafe with threads): the namespace is set up
by the `unshare` and `mount` programs.

When the wrapper (the group leader) ends, whatever is left in its process group is SIGKILLed, as the
container runtime does when a container's main process exits; `on_exit` is called once that group is
gone, from the step's watcher thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kfp_backend.executor import sandbox

log = logging.getLogger(__name__)

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
TERMINATED_MESSAGE = "Stopped with strategy 'Terminate'"
VANISHED_MESSAGE = "pod deleted"

LOG_FILE = "log"
EXIT_CODE_FILE = "exit_code"
PID_FILE = "pid"
KILLED_FILE = "killed"
PLACEHOLDERS_FILE = "placeholders.json"

_DEADLINE = "deadline"
_TERMINATED = "terminated"
_GROUP_GONE_TIMEOUT = 5.0


@dataclass(frozen=True)
class StepSpec:
    key: str  # unique per attempt, e.g. "<run_id>/<node_id>"; safe for logs
    argv: list[str]  # command + args after placeholder substitution (in-step paths)
    env: dict[str, str]  # extra env vars on top of PATH, HOME, LANG, PYTHONUNBUFFERED
    work_dir: Path  # the attempt's own directory on the host (created by the launcher)
    private_paths: list[str]  # absolute in-step paths declared by the template (inputs and outputs)
    deadline_seconds: float | None  # kill the step after this long -> result.deadline_exceeded
    working_dir: str | None = None  # in-step cwd (container workingDir); default: a private dir


@dataclass(frozen=True)
class StepResult:
    exit_code: int | None  # None when killed by a signal or unknown
    deadline_exceeded: bool
    terminated: bool  # killed by terminate()
    vanished: bool = False  # an adopted/recorded step that was gone with no recorded exit code
    message: str = ""  # Argo-like: "Error (exit code 1)", DEADLINE_MESSAGE, ...

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not (self.deadline_exceeded or self.terminated or self.vanished)


class StepHandle:
    """One launched (or adopted) step. `pid` is the wrapper's pid, which is also its process group id."""

    def __init__(self, key: str, pid: int, work_dir: Path, started_at: float, adopted: bool) -> None:
        self.key = key
        self.pid = pid
        self.work_dir = work_dir
        self.started_at = started_at  # wall clock (time.time()) of the launch
        self.adopted = adopted
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: StepResult | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._deadline: float | None = None  # time.monotonic()
        self._kill_at: float | None = None  # time.monotonic() of the SIGKILL after the grace period
        self._kill_reason: str | None = None
        self._group_gone = False
        self._record: _PidRecord | None = None  # adopted steps: the launch record to check liveness

    def done(self) -> bool:
        return self._done.is_set()

    @property
    def result(self) -> StepResult | None:
        return self._result

    def wait(self, timeout: float | None = None) -> StepResult | None:
        """The result once `on_exit` has been called, or None on timeout."""
        self._done.wait(timeout)
        return self._result

    def __repr__(self) -> str:
        return f"StepHandle(key={self.key!r}, pid={self.pid}, adopted={self.adopted})"


OnExit = Callable[[StepResult], None]


class StepLauncher(Protocol):
    isolation: str

    def start(self, spec: StepSpec, on_exit: OnExit) -> StepHandle: ...
    def terminate(self, handle: StepHandle) -> None: ...
    def is_alive(self, handle: StepHandle) -> bool: ...
    def adopt(self, spec: StepSpec, pid: int, on_exit: OnExit) -> StepHandle | None: ...
    def recorded_result(self, spec: StepSpec) -> StepResult | None: ...
    def host_path(self, spec: StepSpec, in_step_path: str) -> Path: ...
    def log_path(self, spec: StepSpec) -> Path: ...


# --- /proc helpers ----------------------------------------------------------------------------------


def _read_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


_BOOT_ID = _read_boot_id()


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks since boot) of a process, None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[2]), int(fields[19])


def _group_alive(pgid: int) -> bool:
    """True while the process group has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies may be left (a pid 1 that does not reap them): look at the members.
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = _proc_stat(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
            if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
                return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class _PidRecord:
    pid: int
    start_ticks: int
    boot_id: str
    started_at: float

    def is_running(self) -> bool:
        """The very process recorded at launch is still alive (not a zombie, not a reused pid)."""
        if self.boot_id != _BOOT_ID:
            return False
        stat = _proc_stat(self.pid)
        return stat is not None and stat[0] not in ("Z", "X") and stat[2] == self.start_ticks


def _read_pid_record(work_dir: Path) -> _PidRecord | None:
    try:
        pid, ticks, boot_id, started_at = (Path(work_dir) / PID_FILE).read_text().split()
        return _PidRecord(int(pid), int(ticks), boot_id, float(started_at))
    except (OSError, ValueError):
        return None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_exit_code(work_dir: Path) -> int | None:
    try:
        return int((Path(work_dir) / EXIT_CODE_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _read_kill_reason(work_dir: Path) -> str | None:
    try:
        return (Path(work_dir) / KILLED_FILE).read_text().strip() or None
    except OSError:
        return None


def _remove_untouched_placeholders(work_dir: Path) -> None:
    """Remove the empty host files/dirs made for outputs outside /tmp that the step never wrote."""
    listing = Path(work_dir) / PLACEHOLDERS_FILE
    try:
        paths = json.loads(listing.read_text())
    except FileNotFoundError:
        return
    for path in paths:
        try:
            st = os.lstat(path)
            if st.st_mtime_ns != 0:
                continue
            if os.path.isdir(path):
                os.rmdir(path)  # fails (and is kept) when not empty
            elif st.st_size == 0:
                os.unlink(path)
        except OSError:
            pass
    listing.unlink(missing_ok=True)


def _result(code: int | None, kill_reason: str | None, *, signal_number: int | None = None) -> StepResult:
    if kill_reason == _DEADLINE:
        return StepResult(code, deadline_exceeded=True, terminated=False, message=DEADLINE_MESSAGE)
    if kill_reason == _TERMINATED:
        return StepResult(code, deadline_exceeded=False, terminated=True, message=TERMINATED_MESSAGE)
    if code is None:
        if signal_number is not None:
            # What a container runtime reports for a main process killed by a signal.
            return StepResult(None, False, False, message=f"Error (exit code {128 + signal_number})")
        return StepResult(None, False, False, vanished=True, message=VANISHED_MESSAGE)
    return StepResult(code, False, False, message="" if code == 0 else f"Error (exit code {code})")


# --- the launcher -----------------------------------------------------------------------------------


class LocalProcessLauncher:
    """Runs steps as host process groups with private paths ("namespace" or "rewrite" isolation)."""

    def __init__(self, isolation: str = sandbox.AUTO, kill_grace_seconds: float = 2.0) -> None:
        if isolation not in sandbox.MODES:
            raise ValueError(f"isolation must be one of {', '.join(sandbox.MODES)}, not {isolation!r}")
        self.kill_grace_seconds = kill_grace_seconds
        self.isolation_note = ""
        self._tools: tuple[str, str] | None = None
        if isolation == sandbox.REWRITE:
            self.isolation = sandbox.REWRITE
            self.isolation_note = "path rewriting requested"
            return
        reason = sandbox.namespace_unavailable_reason()
        if reason is None:
            self.isolation = sandbox.NAMESPACE
            self._tools = sandbox.namespace_tools()
        elif isolation == sandbox.NAMESPACE:
            raise RuntimeError(f"private mount namespaces are not available: {reason}")
        else:
            self.isolation = sandbox.REWRITE
            self.isolation_note = f"private mount namespaces are not available ({reason}); rewriting paths"
            log.warning("step isolation: %s", self.isolation_note)

    # -- paths --

    def host_path(self, spec: StepSpec, in_step_path: str) -> Path:
        return sandbox.host_path(spec.work_dir, in_step_path)

    def log_path(self, spec: StepSpec) -> Path:
        return Path(spec.work_dir) / LOG_FILE

    # -- launching --

    def _plan(self, spec: StepSpec) -> sandbox.Plan:
        if self.isolation == sandbox.NAMESPACE:
            assert self._tools is not None
            unshare, mount = self._tools
            return sandbox.plan_namespace(
                spec.work_dir, spec.private_paths, spec.argv, spec.env, spec.working_dir, unshare, mount
            )
        return sandbox.plan_rewrite(spec.work_dir, spec.private_paths, spec.argv, spec.env, spec.working_dir)

    def start(self, spec: StepSpec, on_exit: OnExit) -> StepHandle:
        """Launch the step; raises sandbox.SandboxError / OSError when it cannot be launched at all."""
        if not spec.argv:
            raise ValueError(f"step {spec.key}: empty command")
        work_dir = Path(spec.work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        for name in (EXIT_CODE_FILE, PID_FILE, KILLED_FILE, PLACEHOLDERS_FILE):
            (work_dir / name).unlink(missing_ok=True)
        plan = self._plan(spec)
        if plan.placeholders:
            _write_atomically(work_dir / PLACEHOLDERS_FILE, json.dumps(plan.placeholders))
        log_fd = os.open(work_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            exit_fd = os.open(work_dir / EXIT_CODE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                proc = subprocess.Popen(
                    plan.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=exit_fd,
                    stderr=log_fd,
                    cwd=plan.cwd,
                    env=plan.env,
                    start_new_session=True,
                )
            finally:
                os.close(exit_fd)
        finally:
            os.close(log_fd)
        started_at = time.time()
        stat = _proc_stat(proc.pid)
        ticks = stat[2] if stat is not None else -1
        _write_atomically(work_dir / PID_FILE, f"{proc.pid} {ticks} {_BOOT_ID} {started_at!r}\n")
        handle = StepHandle(spec.key, proc.pid, work_dir, started_at, adopted=False)
        handle._proc = proc
        with contextlib.suppress(OSError, AttributeError):
            handle._pidfd = os.pidfd_open(proc.pid)
        if spec.deadline_seconds is not None:
            handle._deadline = time.monotonic() + max(0.0, spec.deadline_seconds)
        self._watch_in_thread(handle, on_exit)
        return handle

    def adopt(self, spec: StepSpec, pid: int, on_exit: OnExit) -> StepHandle | None:
        """Re-attach to a step launched by an earlier server process; None when it is not running."""
        record = _read_pid_record(spec.work_dir)
        if record is None or record.pid != pid:
            return None
        pidfd: int | None = None
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        except (OSError, AttributeError):
            pidfd = None
        # Checked after pidfd_open, so the pidfd refers to the verified process.
        if not record.is_running():
            if pidfd is not None:
                os.close(pidfd)
            return None
        handle = StepHandle(spec.key, pid, Path(spec.work_dir), record.started_at, adopted=True)
        handle._pidfd = pidfd
        handle._kill_reason = _read_kill_reason(spec.work_dir)
        if handle._kill_reason is not None:  # killed by the previous server; finish the job
            _signal_group(pid, signal.SIGKILL)
        if spec.deadline_seconds is not None:
            remaining = spec.deadline_seconds - (time.time() - record.started_at)
            handle._deadline = time.monotonic() + max(0.0, remaining)
        handle._record = record
        self._watch_in_thread(handle, on_exit)
        return handle

    def recorded_result(self, spec: StepSpec) -> StepResult | None:
        """How a step ended, from its work dir alone: None if it never started or is still running;
        else its recorded exit code, or `vanished` when it died without one (killed outside our
        control, machine rebooted...). Also removes untouched output placeholders, like on_exit does."""
        record = _read_pid_record(spec.work_dir)
        if record is None or record.is_running():
            return None
        _remove_untouched_placeholders(Path(spec.work_dir))
        return _result(_read_exit_code(spec.work_dir), _read_kill_reason(spec.work_dir))

    # -- stopping --

    def terminate(self, handle: StepHandle) -> None:
        """SIGTERM the step's process group, SIGKILL after `kill_grace_seconds`; returns at once."""
        self._kill(handle, _TERMINATED)

    def is_alive(self, handle: StepHandle) -> bool:
        return not handle.done()

    def _kill(self, handle: StepHandle, reason: str) -> None:
        with handle._lock:
            if handle._group_gone or handle._kill_reason is not None:
                return
            handle._kill_reason = reason
            with contextlib.suppress(OSError):
                _write_atomically(handle.work_dir / KILLED_FILE, reason + "\n")
            if self.kill_grace_seconds > 0:
                _signal_group(handle.pid, signal.SIGTERM)
                _signal_group(handle.pid, signal.SIGCONT)
                handle._kill_at = time.monotonic() + self.kill_grace_seconds
            else:
                _signal_group(handle.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.eventfd_write(handle._wake, 1)  # the watcher recomputes its wake-up time

    # -- watching --

    def _watch_in_thread(self, handle: StepHandle, on_exit: OnExit) -> None:
        thread = threading.Thread(
            target=self._watch, args=(handle, on_exit), name=f"step:{handle.key}", daemon=True
        )
        thread.start()

    def _leader_exited(self, handle: StepHandle) -> bool:
        if handle._proc is not None:
            return handle._proc.poll() is not None
        return handle._record is None or not handle._record.is_running()

    def _wait_for_leader(self, handle: StepHandle) -> None:
        poller = select.poll()
        poller.register(handle._wake, select.POLLIN)
        if handle._pidfd is not None:
            poller.register(handle._pidfd, select.POLLIN)
        while True:
            if handle._pidfd is None and self._leader_exited(handle):
                return
            now = time.monotonic()
            if handle._deadline is not None and now >= handle._deadline:
                self._kill(handle, _DEADLINE)
            with handle._lock:
                if handle._kill_at is not None and now >= handle._kill_at:
                    _signal_group(handle.pid, signal.SIGKILL)
                    handle._kill_at = None
                wakeups = [t for t in (handle._kill_at,) if t is not None]
                if handle._kill_reason is None and handle._deadline is not None:
                    wakeups.append(handle._deadline)
            timeout = min(wakeups) - now if wakeups else None
            if handle._pidfd is None:  # no pidfd: poll the process
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            events = poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000)))
            for fd, _ in events:
                if fd == handle._pidfd:
                    return
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(handle._wake)

    def _watch(self, handle: StepHandle, on_exit: OnExit) -> None:
        try:
            self._wait_for_leader(handle)
            signal_number = None
            code: int | None
            if handle._proc is not None:
                returncode = handle._proc.wait()
                code = returncode if returncode >= 0 else None
                signal_number = -returncode if returncode < 0 else None
            else:
                code = _read_exit_code(handle.work_dir)
            # Whatever the leader left in its group dies with it, as in a container.
            if _group_alive(handle.pid):
                _signal_group(handle.pid, signal.SIGKILL)
                give_up = time.monotonic() + _GROUP_GONE_TIMEOUT
                while _group_alive(handle.pid) and time.monotonic() < give_up:
                    time.sleep(0.01)
            with handle._lock:
                handle._group_gone = True
                kill_reason = handle._kill_reason
            _remove_untouched_placeholders(handle.work_dir)
            result = _result(code, kill_reason, signal_number=signal_number)
        except Exception as exc:  # never leave the engine waiting for an on_exit that never comes
            log.exception("step %s: watching the process failed", handle.key)
            result = StepResult(None, False, False, message=f"Error (launcher: {exc})")
        finally:
            with handle._lock:  # _kill checks _group_gone under this lock before touching _wake
                handle._group_gone = True
                for fd in (handle._pidfd, handle._wake):
                    if fd is not None:
                        with contextlib.suppress(OSError):
                            os.close(fd)
        handle._result = result
        handle._done.set()
        try:
            on_exit(result)
        except Exception:
            log.exception("step %s: on_exit failed", handle.key)
