"""Starting wrapper processes without running Python code between fork and exec: a wave at a time
through a spawner process (`Spawner`), or one at a time with `posix_spawn` (the shell wrapper)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from pathlib import Path
from typing import BinaryIO

from kfp_backend.executor.launch_records import EXIT_CODE_FILE, LOG_FILE

log = logging.getLogger(__name__)

# Signals the server ignores (Python ignores SIGPIPE and SIGXFSZ) but a step must get by default.
RESET_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name))

# (argv, env, stdout path, stderr path) of one wrapper to start.
SpawnRequest = tuple[list[str], dict[str, str], str, str]


def posix_spawn_wrapper(argv: list[str], env: dict[str, str], work_dir: Path) -> int | Exception:
    """Start one wrapper in its own session; its pid, or the error."""
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
            setsigdef=RESET_SIGNALS,
            setsigmask=(),
        )
    except OSError as exc:
        return exc


class Spawner:
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

    def spawn(self, requests: list[SpawnRequest]) -> list[int | Exception]:
        """Each wrapper's pid, or the error. When the spawner fails midway, the steps it reported started
        keep their pids (they run, and are watched)."""
        pids: list[int | Exception] = []
        with self._lock:
            try:
                self._spawn(requests, pids)
            except (OSError, ValueError) as exc:
                log.warning("kfp-step spawner failed (%s); starting it again", exc)
                self._stop()
                pids += [exc] * (len(requests) - len(pids))
        return pids

    def _spawn(self, requests: list[SpawnRequest], pids: list[int | Exception]) -> None:
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
                setsigdef=RESET_SIGNALS, setsigmask=(),
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
