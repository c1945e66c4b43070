"""The step launcher: runs one attempt of a container template as a host process group.

Every step runs under a tiny wrapper, in its own session (so its process group holds the step and all
its descendants), with its private view of the in-step paths (see `sandbox`). Three wrappers, the first
that works here unless one is asked for (`WRAPPERS`):

- `kfp-step`: the compiled helper (see `kfp_step`), when a C compiler is at hand;
- `python`: its Python twin (see `pyspawner`): the same set-up by system calls in the child its spawner
  clones, then `/bin/sh -c '"$@" >&2; rc=$?; echo $rc; exit $rc' kfp-step ARGV...`;
- `shell`: a `/bin/sh` script doing the set-up with programs:

    [unshare --mount --propagation private] /bin/sh -c \
        '<mounts; cd>; "$@" >&2; rc=$?; echo $rc; exit $rc' kfp-step ARGV...

In multi-user mode the wrapper starts the step in the bwrap sandbox (see `bwrap`): the wrapper itself
stays outside, as the group leader the launcher watches, so everything below holds there too.

The wrapper's stdout is `<work_dir>/exit_code`: the step's exit status is on disk even when the server
died meanwhile. The step's stdout and stderr both go to `<work_dir>/log`. At the launch the launch record
is written ("pid start-time boot-id started-at"; start time = field 22 of /proc/<pid>/stat): by the
wrapper itself, before the step runs, as the first line of `exit_code`; by the launcher right after
the spawn into `<work_dir>/pid` with the shell wrapper. A later server process can then adopt the step
(`adopt`) or learn how it ended (`recorded_result`) without mistaking a reused pid for it. When the
driver has taken a step's result, `mark_collected` renames `exit_code` to `collected` (same content):
a later attempt in that directory starts afresh. When the launcher kills a step (deadline, terminate)
it first writes the reason to `<work_dir>/killed`.

Every file a step costs is an inode to allocate, and on some filesystems (ext4 without a journal,
right after many deletions) that is the most expensive part of launching a tiny step; hence no file
that can be avoided: the launch record shares the exit status file, and "collected" is a rename.

No Python interpreter is spawned per step, and the server runs no Python code between fork and exec.
With `kfp-step` or `python`, a wave of steps (`start_many`) is started by a spawner process in one
request (see `_Spawner`); with the shell wrapper each one is started with `os.posix_spawn` (a
vfork-style clone in the C library; the child opens its stdin, stdout and stderr and calls setsid),
which costs a fraction of `subprocess.Popen` in a busy multi-threaded server (Popen drops and retakes
the GIL several times per launch, and each retake can wait a whole switch interval behind the other
threads).

One reaper thread per launcher watches every step: an epoll set over the steps' pidfds, plus the
timers of their deadlines and kill grace periods. When a wrapper (the group leader) ends, the reaper
collects its exit status, SIGKILLs whatever is left in its process group, as the container runtime
does when a container's main process exits, and calls `on_exit` once that group is gone. There is no
thread per step, and the reaper goes away when no step is left to watch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from kfp_backend.executor import bwrap, kfp_step, pyspawner, sandbox

log = logging.getLogger(__name__)

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
TERMINATED_MESSAGE = "Stopped with strategy 'Terminate'"
VANISHED_MESSAGE = "pod deleted"

LOG_FILE = "log"
EXIT_CODE_FILE = "exit_code"
COLLECTED_FILE = "collected"  # exit_code, renamed once the driver has taken the result
PID_FILE = "pid"  # the launch record, when the launcher writes it (shell wrapper)
KILLED_FILE = "killed"
PLACEHOLDERS_FILE = "placeholders.json"

# What starts each step and records its exit (see the module docstring): the compiled `kfp-step`, its
# Python twin (`pyspawner`, then `sh`), or the shell wrapper started by `posix_spawn`.
AUTO = "auto"
KFP_STEP = "kfp-step"
PYTHON = "python"
SHELL = "shell"
WRAPPERS = (KFP_STEP, PYTHON, SHELL)

_DEADLINE = "deadline"
# Signals the server ignores (Python ignores SIGPIPE and SIGXFSZ) but a step must get by default.
_RESET_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name))
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
        self._child = False  # our own child: its exit status comes from waitpid
        self._status: int | None = None  # its wait status, when reaped before the pass that concludes it
        self._pidfd: int | None = None
        self._reaper: _Reaper | None = None
        self._deadline: float | None = None  # time.monotonic()
        self._kill_at: float | None = None  # time.monotonic() of the SIGKILL after the grace period
        self._kill_reason: str | None = None
        self._group_gone = False
        self._record: LaunchRecord | None = None  # adopted steps: the launch record to check liveness

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
    def start_many(self, steps: list[tuple[StepSpec, OnExit]]) -> list[StepHandle | Exception]: ...
    def terminate(self, handle: StepHandle) -> None: ...
    def is_alive(self, handle: StepHandle) -> bool: ...
    def adopt(self, spec: StepSpec, pid: int, on_exit: OnExit) -> StepHandle | None: ...
    def mark_collected(self, spec: StepSpec) -> None: ...
    def was_collected(self, spec: StepSpec) -> bool: ...
    def launched_pid(self, spec: StepSpec) -> int | None: ...
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
class LaunchRecord:
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


def _read_records(work_dir: Path) -> list[str]:
    """The lines of the step's status file (`exit_code`, or `collected` once the result was taken); only
    whole lines: a line still being written has no newline yet."""
    for name in (EXIT_CODE_FILE, COLLECTED_FILE):
        try:
            text = (Path(work_dir) / name).read_text()
        except FileNotFoundError:
            continue
        except OSError:
            return []
        return text.split("\n")[:-1]
    return []


def read_launch_record(work_dir: Path) -> LaunchRecord | None:
    try:
        line = (Path(work_dir) / PID_FILE).read_text()
    except FileNotFoundError:
        records = _read_records(work_dir)  # written by the wrapper: the first line of the status file
        line = records[0] if records else ""
    except OSError:
        return None
    try:
        pid, ticks, boot_id, started_at = line.split()
        return LaunchRecord(int(pid), int(ticks), boot_id, float(started_at))
    except ValueError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_exit_code(work_dir: Path) -> int | None:
    """The wrapper's recorded exit status: the status file's one-field line (after the launch record)."""
    for line in reversed(_read_records(work_dir)):
        fields = line.split()
        if len(fields) == 1:
            try:
                return int(fields[0])
            except ValueError:
                return None
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
    """Runs steps as host process groups with private paths ("namespace" or "rewrite" isolation), or in the
    multi-user sandbox ("bwrap": see `bwrap`)."""

    def __init__(self, isolation: str = sandbox.AUTO, kill_grace_seconds: float = 2.0, wrapper: str = AUTO,
                 sandbox_options: bwrap.Options | None = None) -> None:
        """`wrapper`: what starts each step and records its exit (see WRAPPERS); AUTO: the first that works
        here. RuntimeError when the one asked for cannot be had. `sandbox_options`: with the "bwrap"
        isolation (required then), checked by running one step (bwrap.IsolationUnavailable if it fails)."""
        if isolation not in sandbox.MODES:
            raise ValueError(f"isolation must be one of {', '.join(sandbox.MODES)}, not {isolation!r}")
        if wrapper not in (AUTO, *WRAPPERS):
            raise ValueError(f"wrapper must be one of {', '.join((AUTO, *WRAPPERS))}, not {wrapper!r}")
        self.kill_grace_seconds = kill_grace_seconds
        self.isolation_note = ""
        self._tools: tuple[str, str] | None = None
        self._reaper = _Reaper(self)
        self.helper: str | None = None  # the compiled kfp-step, with that wrapper
        self._spawner_instance: _Spawner | None = None
        self.sandbox_options = sandbox_options
        self.isolation = self._choose_isolation(isolation)
        self.wrapper = self._choose_wrapper(wrapper)
        if self.isolation == sandbox.BWRAP and self.wrapper == KFP_STEP:
            assert self.sandbox_options is not None
            problem = bwrap.problem(self.sandbox_options, self.helper)
            if problem is not None:
                raise bwrap.IsolationUnavailable(f"the step sandbox does not work with kfp-step here: {problem}")
        # What plans name as the wrapper program (kfp-step's options serve the python wrapper too: its
        # spawner reads them, argv[0] aside), and what starts a wave's wrappers (None: posix_spawn).
        self._program = {KFP_STEP: self.helper, PYTHON: "kfp-step", SHELL: None}[self.wrapper]
        self._spawner_command = {
            KFP_STEP: [self.helper, "--spawner"], PYTHON: pyspawner.command(), SHELL: None,
        }[self.wrapper]

    def _choose_wrapper(self, wanted: str) -> str:
        if wanted in (AUTO, KFP_STEP):
            binary = kfp_step.step_helper()
            if binary is not None and (self.isolation != sandbox.NAMESPACE or kfp_step.namespace_works(binary)):
                self.helper = binary
                return KFP_STEP
            if wanted == KFP_STEP:
                raise RuntimeError("the kfp-step wrapper is not available here (no C compiler, or its check failed)")
        if wanted in (AUTO, PYTHON):
            problem = _python_wrapper_problem(self.isolation == sandbox.NAMESPACE)
            if problem is None:
                return PYTHON
            if wanted == PYTHON:
                raise RuntimeError(f"the python wrapper is not available here: {problem}")
            log.info("python step wrapper not available (%s); steps use the shell wrapper", problem)
        return SHELL

    def _choose_isolation(self, isolation: str) -> str:
        if isolation == sandbox.BWRAP:
            if self.sandbox_options is None:
                raise ValueError("the bwrap isolation needs sandbox_options")
            problem = bwrap.problem(self.sandbox_options)  # kfp-step's own drop is checked with the wrapper
            if problem is not None:
                raise bwrap.IsolationUnavailable(f"the step sandbox does not work here: {problem}")
            user = self.sandbox_options.user
            self.isolation_note = f"bubblewrap sandbox, steps run as {user.name} ({user.uid}:{user.gid})"
            return sandbox.BWRAP
        if isolation == sandbox.REWRITE:
            self.isolation_note = "path rewriting requested"
            return sandbox.REWRITE
        reason = sandbox.namespace_unavailable_reason()
        if reason is None:
            self._tools = sandbox.namespace_tools()
            return sandbox.NAMESPACE
        if isolation == sandbox.NAMESPACE:
            raise RuntimeError(f"private mount namespaces are not available: {reason}")
        self.isolation_note = f"private mount namespaces are not available ({reason}); rewriting paths"
        log.warning("step isolation: %s", self.isolation_note)
        return sandbox.REWRITE

    # -- paths --

    def host_path(self, spec: StepSpec, in_step_path: str) -> Path:
        return sandbox.host_path(spec.work_dir, in_step_path)

    def log_path(self, spec: StepSpec) -> Path:
        return Path(spec.work_dir) / LOG_FILE

    # -- launching --

    def _plan(self, spec: StepSpec) -> sandbox.Plan:
        if self.isolation == sandbox.BWRAP:
            assert self.sandbox_options is not None
            return sandbox.plan_bwrap(
                spec.work_dir, spec.private_paths, spec.argv, spec.env, spec.working_dir, self.sandbox_options,
                helper=self._program,
            )
        if self.isolation == sandbox.NAMESPACE:
            assert self._tools is not None
            unshare, mount = self._tools
            return sandbox.plan_namespace(
                spec.work_dir, spec.private_paths, spec.argv, spec.env, spec.working_dir, unshare, mount,
                helper=self._program,
            )
        return sandbox.plan_rewrite(
            spec.work_dir, spec.private_paths, spec.argv, spec.env, spec.working_dir, helper=self._program
        )

    def start(self, spec: StepSpec, on_exit: OnExit) -> StepHandle:
        """Launch the step; raises sandbox.SandboxError / OSError when it cannot be launched at all."""
        outcome = self.start_many([(spec, on_exit)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def start_many(self, steps: list[tuple[StepSpec, OnExit]]) -> list[StepHandle | Exception]:
        """Launch several steps at once (a wave): with `kfp-step`, one request to its spawner for all of
        them. Each one's handle, or the exception that kept it from starting."""
        prepared: list[tuple[StepSpec, OnExit, Path, sandbox.Plan, list[str]] | Exception] = []
        for spec, on_exit in steps:
            try:
                if not spec.argv:
                    raise ValueError(f"step {spec.key}: empty command")
                work_dir = Path(spec.work_dir)
                try:
                    os.mkdir(work_dir)
                except FileNotFoundError:
                    os.makedirs(work_dir, exist_ok=True)
                except FileExistsError:  # an earlier attempt's records must not be taken for this one's
                    for name in (PID_FILE, KILLED_FILE, PLACEHOLDERS_FILE, COLLECTED_FILE):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(work_dir / name)
                plan = self._plan(spec)
                if self.isolation == sandbox.BWRAP:
                    assert self.sandbox_options is not None
                    bwrap.hand_over(work_dir / sandbox.ROOT_DIR, self.sandbox_options.user)
                if plan.placeholders:
                    _write_atomically(work_dir / PLACEHOLDERS_FILE, json.dumps(plan.placeholders))
                argv = plan.argv
                if self.wrapper != SHELL:  # the wrapper writes the launch record itself, before the step runs
                    argv = [argv[0], "-r", *argv[1:]]
                prepared.append((spec, on_exit, work_dir, plan, argv))
            except Exception as exc:
                prepared.append(exc)
        ready = [item for item in prepared if not isinstance(item, Exception)]
        pids: list[int | Exception]
        spawner = self._spawner() if ready else None
        if spawner is not None:
            pids = spawner.spawn([
                (argv, plan.env, str(work_dir / EXIT_CODE_FILE), str(work_dir / LOG_FILE))
                for _, _, work_dir, plan, argv in ready
            ])
        else:
            pids = [self._posix_spawn(argv, plan.env, work_dir) for _, _, work_dir, plan, argv in ready]
        outcomes: list[StepHandle | Exception] = []
        spawned = iter(pids)
        for item in prepared:
            if isinstance(item, Exception):
                outcomes.append(item)
                continue
            pid = next(spawned)
            if isinstance(pid, Exception):
                outcomes.append(pid)
                continue
            spec, on_exit, work_dir, _, _ = item
            outcomes.append(self._started(spec, on_exit, work_dir, pid))
        return outcomes

    def _spawner(self) -> _Spawner | None:
        """Who starts a wave's wrappers: `kfp-step --spawner`, or its Python twin `pyspawner`, started on
        first use; None (the shell wrapper): `posix_spawn`, one by one."""
        if self._spawner_command is None:
            return None
        if self._spawner_instance is None:
            self._spawner_instance = _Spawner(self._spawner_command)
        return self._spawner_instance

    @staticmethod
    def _posix_spawn(argv: list[str], env: dict[str, str], work_dir: Path) -> int | Exception:
        # The child opens its own files: stdout is the wrapper's exit code record, stderr the step's log.
        try:
            return os.posix_spawn(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(work_dir / EXIT_CODE_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o644),
                    (os.POSIX_SPAWN_OPEN, 2, str(work_dir / LOG_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                ],
                setsid=True,
                setsigdef=_RESET_SIGNALS,
                setsigmask=(),
            )
        except OSError as exc:
            return exc

    def _started(self, spec: StepSpec, on_exit: OnExit, work_dir: Path, pid: int) -> StepHandle:
        started_at = time.time()
        handle = StepHandle(spec.key, pid, work_dir, started_at, adopted=False)
        handle._child = True
        with contextlib.suppress(OSError, AttributeError):
            handle._pidfd = os.pidfd_open(pid)
        if self.wrapper == SHELL:
            stat = _proc_stat(pid)
            ticks = stat[2] if stat is not None else -1
            _write_atomically(work_dir / PID_FILE, f"{pid} {ticks} {_BOOT_ID} {started_at!r}\n")
        if spec.deadline_seconds is not None:
            handle._deadline = time.monotonic() + max(0.0, spec.deadline_seconds)
        self._reaper.watch(handle, on_exit)
        return handle

    def adopt(self, spec: StepSpec, pid: int, on_exit: OnExit) -> StepHandle | None:
        """Re-attach to a step launched by an earlier server process; None when it is not running."""
        record = read_launch_record(spec.work_dir)
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
        self._reaper.watch(handle, on_exit)
        return handle

    def mark_collected(self, spec: StepSpec) -> None:
        """The driver has taken this attempt's result: a later attempt in this directory starts afresh
        (`was_collected`). The records stay readable (`recorded_result`)."""
        work_dir = Path(spec.work_dir)
        try:
            os.rename(work_dir / EXIT_CODE_FILE, work_dir / COLLECTED_FILE)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                os.mknod(work_dir / COLLECTED_FILE, 0o644)
        except OSError:
            log.warning("step %s: could not mark its result as collected", spec.key, exc_info=True)

    def was_collected(self, spec: StepSpec) -> bool:
        return (Path(spec.work_dir) / COLLECTED_FILE).exists()

    def launched_pid(self, spec: StepSpec) -> int | None:
        """The pid of the launch recorded in the step's directory, if any (running or not)."""
        record = read_launch_record(spec.work_dir)
        return None if record is None else record.pid

    def recorded_result(self, spec: StepSpec) -> StepResult | None:
        """How a step ended, from its work dir alone: None if it never started or is still running;
        else its recorded exit code, or `vanished` when it died without one (killed outside our
        control, machine rebooted...). Also removes untouched output placeholders, like on_exit does."""
        record = read_launch_record(spec.work_dir)
        if record is None or record.is_running():
            return None
        self._take_back(Path(spec.work_dir))
        _remove_untouched_placeholders(Path(spec.work_dir))
        return _result(read_exit_code(spec.work_dir), _read_kill_reason(spec.work_dir))

    def _take_back(self, work_dir: Path) -> None:
        """After a sandboxed step: its tree is the server's again, with nothing in it pointing out (see
        `bwrap.take_back`), before anyone reads its outputs."""
        if self.isolation == sandbox.BWRAP:
            bwrap.take_back(work_dir / sandbox.ROOT_DIR)

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
        if handle._reaper is not None:
            handle._reaper.poke()  # it recomputes its wake-up time


# --- the spawner ------------------------------------------------------------------------------------

_python_checked: dict[bool, str | None] = {}
_python_check_lock = threading.Lock()


def _python_wrapper_problem(namespace: bool) -> str | None:
    """None when `pyspawner` starts a step here as it should (checked once per process and isolation
    mode, by running one: launch record, exit status, our child, and with `namespace` a private bind
    mount); else what went wrong."""
    with _python_check_lock:
        if namespace not in _python_checked:
            _python_checked[namespace] = _check_python_wrapper(namespace)
        return _python_checked[namespace]


def _check_python_wrapper(namespace: bool) -> str | None:
    if not pyspawner.supported():
        return "no known clone system call for this architecture"
    spawner = _Spawner(pyspawner.command())
    try:
        with tempfile.TemporaryDirectory(prefix="kfp-pyspawner-check-") as scratch:
            source, target = Path(scratch, "source"), Path(scratch, "target")
            source.mkdir()
            target.mkdir()
            (source / "marker").touch()
            options = ["-m", "-b", str(source), str(target)] if namespace else []
            argv = ["kfp-step", "-r", "-D", str(Path(scratch, "made")), *options, "-C", scratch, "--",
                    "sh", "-c", 'test "$(pwd)" = "$1" && { test -z "$2" || test -e "$2/marker"; } && exit 3',
                    "check", scratch, str(target) if namespace else ""]
            outcome = spawner.spawn([(argv, {"PATH": os.environ.get("PATH", "")},
                                      str(Path(scratch, EXIT_CODE_FILE)), str(Path(scratch, LOG_FILE)))])[0]
            if isinstance(outcome, Exception):
                return f"the spawner failed: {outcome}"
            status = os.waitpid(outcome, 0)[1]  # our child, as the steps will be
            record = read_launch_record(Path(scratch))
            if os.waitstatus_to_exitcode(status) != 3 or read_exit_code(Path(scratch)) != 3 or record is None \
                    or record.pid != outcome or not Path(scratch, "made").is_dir():
                log_text = Path(scratch, LOG_FILE).read_text(errors="replace").strip()[:300]
                return f"its check step ended {os.waitstatus_to_exitcode(status)}: {log_text}"
            if namespace and (target / "marker").exists():
                return "the bind mount leaked out of the private mount namespace"
    except (OSError, ChildProcessError) as exc:
        return f"its check failed: {exc}"
    finally:
        spawner.close()
    return None


class _Spawner:
    """`kfp-step --spawner` (or `pyspawner`, its Python twin), started once per launcher: it starts wrappers
    on request as children of this process (clone with CLONE_PARENT), so a wave of steps costs the server
    one pipe write and one read instead of a `posix_spawn` per step (each of which waits until its child
    has been scheduled and has exec'd, with the GIL held). The steps are this process's children as with
    `posix_spawn`: the reaper waits for them the same way. A spawner found gone before a request is
    started again; one that fails during a request fails that request's steps it had not reported
    started (those it had keep their pids) and is started again on the next one."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._requests: int | None = None  # our end of its stdin
        self._replies: BinaryIO | None = None  # our end of its stdout

    def spawn(self, requests: list[tuple[list[str], dict[str, str], str, str]]) -> list[int | Exception]:
        """(argv, env, stdout path, stderr path) of each wrapper -> its pid, or the error. When the spawner
        fails midway, the steps it reported started keep their pids (they run, and are watched)."""
        pids: list[int | Exception] = []
        with self._lock:
            try:
                self._spawn(requests, pids)
            except (OSError, ValueError) as exc:
                log.warning("kfp-step spawner failed (%s); starting it again", exc)
                self._stop()
                pids += [exc] * (len(requests) - len(pids))
        return pids

    def _spawn(self, requests: list[tuple[list[str], dict[str, str], str, str]], pids: list[int | Exception]) -> None:
        if self._pid is not None and os.waitpid(self._pid, os.WNOHANG)[0] != 0:
            log.warning("kfp-step spawner had ended; starting it again")  # nothing was asked of it: no harm
            self._pid = None
            self._stop()
        if self._pid is None:
            self._start()
        assert self._requests is not None and self._replies is not None
        blob = bytearray()
        for argv, env, stdout_path, stderr_path in requests:
            fields = [stdout_path, stderr_path, str(len(argv)), *argv, str(len(env)),
                      *(f"{name}={value}" for name, value in env.items())]
            payload = b"".join(os.fsencode(field) + b"\0" for field in fields)
            blob += b"%d\n" % len(payload) + payload
        view = memoryview(bytes(blob))
        while view:
            view = view[os.write(self._requests, view):]
        for _ in requests:
            line = self._replies.readline()
            if not line:
                raise OSError("the kfp-step spawner ended")
            value = int(line)
            pids.append(value if value > 0 else OSError(-value, f"kfp-step spawner: {os.strerror(-value)}"))

    def _start(self) -> None:
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        try:
            self._pid = os.posix_spawn(
                self.command[0], self.command, {"PATH": os.environ.get("PATH", "")},
                file_actions=[(os.POSIX_SPAWN_DUP2, stdin_read, 0), (os.POSIX_SPAWN_DUP2, stdout_write, 1)],
                setsigdef=_RESET_SIGNALS, setsigmask=(),
            )
        finally:
            os.close(stdin_read)
            os.close(stdout_write)
        self._requests = stdin_write
        self._replies = os.fdopen(stdout_read, "rb")  # kept open for the spawner's life

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._requests is not None:
            with contextlib.suppress(OSError):
                os.close(self._requests)
        if self._replies is not None:
            with contextlib.suppress(OSError):
                self._replies.close()
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
        self._pid = self._requests = self._replies = None


# --- the reaper -------------------------------------------------------------------------------------

_POLL_SECONDS = 0.05  # steps without a pidfd (old kernels, or adopted without one): checked this often
_DRAIN_SECONDS = 0.01  # a leader is gone but its group is not yet: checked this often


class _Reaper:
    """One thread watching every step of a launcher (see the module docstring).

    `watch` registers a handle; the thread waits on the pidfds, a wake-up eventfd and the nearest timer,
    handles all that is due in one pass, and ends when nothing is left to watch (`watch` starts it again).
    """

    def __init__(self, launcher: LocalProcessLauncher) -> None:
        self._launcher = launcher
        self._lock = threading.Lock()
        self._epoll = select.epoll()
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._epoll.register(self._wake, select.EPOLLIN)
        self._watched: dict[StepHandle, OnExit] = {}
        self._by_fd: dict[int, StepHandle] = {}
        # Leaders that ended while their group lives on: (exit code, signal, give up at).
        self._draining: dict[StepHandle, tuple[int | None, int | None, float]] = {}
        self._thread: threading.Thread | None = None

    def watch(self, handle: StepHandle, on_exit: OnExit) -> None:
        handle._reaper = self
        with self._lock:
            self._watched[handle] = on_exit
            if handle._pidfd is not None:
                self._by_fd[handle._pidfd] = handle
                self._epoll.register(handle._pidfd, select.EPOLLIN)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="step:reaper", daemon=True)
                self._thread.start()
                return
        # A pidfd joins the epoll set at once; only a new timer (or polling) needs the thread to look again.
        if handle._deadline is not None or handle._pidfd is None:
            self.poke()

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
                ended: list[StepHandle] = []
                for fd, _ in self._epoll.poll(timeout):
                    if fd == self._wake:
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(self._wake)
                    elif fd in self._by_fd:
                        ended.append(self._by_fd[fd])
                # Steps without a pidfd are looked at on every pass.
                ended += [h for h in handles if h._pidfd is None and h not in self._draining and self._ended(h)]
                # Everything that ended meanwhile is handled in this one pass.
                for handle in ended:
                    self._leader_done(handle)
                for handle in list(self._draining):
                    self._drain(handle)
            except Exception:  # never leave the engine waiting for an on_exit that never comes
                log.exception("step reaper: unexpected error")
                time.sleep(_POLL_SECONDS)

    def _due(self, handles: list[StepHandle]) -> float:
        """Act on the deadlines and grace periods that are due; seconds until the next one (-1: none)."""
        now = time.monotonic()
        wakeups: list[float] = []
        for handle in handles:
            if handle in self._draining:
                wakeups.append(now + _DRAIN_SECONDS)
                continue
            if handle._deadline is not None and handle._kill_reason is None and now >= handle._deadline:
                self._launcher._kill(handle, _DEADLINE)
            with handle._lock:
                if handle._kill_at is not None and now >= handle._kill_at:
                    _signal_group(handle.pid, signal.SIGKILL)
                    handle._kill_at = None
                if handle._kill_at is not None:
                    wakeups.append(handle._kill_at)
                if handle._kill_reason is None and handle._deadline is not None:
                    wakeups.append(handle._deadline)
            if handle._pidfd is None:
                wakeups.append(now + _POLL_SECONDS)
        return max(0.0, min(wakeups) - now) if wakeups else -1

    @staticmethod
    def _ended(handle: StepHandle) -> bool:
        """The leader of a step without a pidfd has ended (our child: reaped here, its status kept)."""
        if handle._child:
            pid, status = os.waitpid(handle.pid, os.WNOHANG)
            if pid == 0:
                return False
            handle._status = status
            return True
        return handle._record is None or not handle._record.is_running()

    def _leader_done(self, handle: StepHandle) -> None:
        with self._lock:
            if handle._pidfd is not None:
                self._by_fd.pop(handle._pidfd, None)
                with contextlib.suppress(OSError, ValueError):
                    self._epoll.unregister(handle._pidfd)
        code: int | None = None
        signal_number: int | None = None
        try:
            if handle._child:
                status = handle._status if handle._status is not None else os.waitpid(handle.pid, 0)[1]
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
        if _group_alive(handle.pid):
            _signal_group(handle.pid, signal.SIGKILL)
            self._draining[handle] = (code, signal_number, time.monotonic() + _GROUP_GONE_TIMEOUT)
            self._drain(handle)
            return
        self._conclude(handle, code, signal_number)

    def _drain(self, handle: StepHandle) -> None:
        code, signal_number, give_up = self._draining[handle]
        if _group_alive(handle.pid) and time.monotonic() < give_up:
            return
        del self._draining[handle]
        self._conclude(handle, code, signal_number)

    def _conclude(self, handle: StepHandle, code: int | None, signal_number: int | None) -> None:
        try:
            with handle._lock:
                handle._group_gone = True
                kill_reason = handle._kill_reason
            self._launcher._take_back(handle.work_dir)
            _remove_untouched_placeholders(handle.work_dir)
            result = _result(code, kill_reason, signal_number=signal_number)
        except Exception as exc:
            log.exception("step %s: watching the process failed", handle.key)
            result = StepResult(None, False, False, message=f"Error (launcher: {exc})")
        self._finish(handle, result)

    def _finish(self, handle: StepHandle, result: StepResult) -> None:
        with handle._lock:  # _kill checks _group_gone under this lock
            handle._group_gone = True
            if handle._pidfd is not None:
                with contextlib.suppress(OSError):
                    os.close(handle._pidfd)
        with self._lock:
            on_exit = self._watched.pop(handle)
        handle._result = result
        handle._done.set()
        try:
            on_exit(result)
        except Exception:
            log.exception("step %s: on_exit failed", handle.key)
