"""`kfp-step` for hosts without a C compiler: its spawner and its options, in Python (plus `sh`).

Run as a script (`command()`), it speaks `kfp-step --spawner`'s protocol: each request starts one step
as a child of the server (a raw `clone` with CLONE_PARENT), set up by system calls as `kfp-step`'s
options say, then `sh` runs the step and records its exit status. The protocol and why:
docs/execution.md ("`pyspawner`").
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import sys
import time

# clone(2)'s number; the flags are its first argument on every architecture listed.
SYSCALL_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine())
CLONE_PARENT = 0x00008000
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
SETUP_FAILED = 125  # as kfp-step
SH = "/bin/sh"
# The shell wrapper's tail: survive SIGTERM (the step gets it), run the step with its stdout on the log,
# record its exit status after the launch record.
RECORD_AND_EXIT = 'trap : TERM\n"$@" >&2\nrc=$?\necho $rc\nexit $rc\n'
# The same with `-I`: the shell and the step's sandbox ignore SIGTERM (the sandbox gives the step the
# default action back; see `bwrap`).
RECORD_AND_EXIT_IGNORING_TERM = RECORD_AND_EXIT.replace("trap : TERM", "trap '' TERM")
SETUP_MESSAGE = "could not set up the step's private paths"


def command() -> list[str]:
    """How to start this spawner: this interpreter, isolated (-I: no script directory on sys.path, where
    a module of this package could shadow one of the standard library), without site-packages (-S)."""
    return [sys.executable, "-I", "-S", __file__]


def supported() -> bool:
    """Whether this machine's architecture is one the raw clone is known for."""
    return SYSCALL_CLONE is not None and sys.platform.startswith("linux") and os.access(SH, os.X_OK)


class _SetupFailed(Exception):
    pass


class _Libc:
    """The system calls the child makes, bound before any clone."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.syscall = libc.syscall
        self.syscall.restype = ctypes.c_long
        self.syscall.argtypes = [ctypes.c_long] * 6
        self.unshare = libc.unshare
        self.unshare.argtypes = [ctypes.c_int]
        self.mount = libc.mount
        self.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]

    def clone(self) -> int:
        """0 in the child, its pid in the parent, -errno on failure."""
        assert SYSCALL_CLONE is not None
        pid = self.syscall(SYSCALL_CLONE, CLONE_PARENT | signal.SIGCHLD, 0, 0, 0, 0)
        return pid if pid >= 0 else -ctypes.get_errno()

    def check(self, result: int, what: str) -> None:
        if result != 0:
            raise _SetupFailed(f"{what}: {os.strerror(ctypes.get_errno())}")


def _parse(data: bytes) -> tuple[bytes, bytes, list[bytes], list[bytes]] | None:
    fields = data.split(b"\0")[:-1]
    try:
        nargs = int(fields[2])
        nenv = int(fields[3 + nargs])
    except (IndexError, ValueError):
        return None
    if nargs < 2 or nenv < 0 or len(fields) != 4 + nargs + nenv:
        return None
    return fields[0], fields[1], fields[3 : 3 + nargs], fields[4 + nargs :]


def _launch_record() -> bytes:
    """"pid start-time boot-id started-at", as kfp-step writes it (start time: field 22 of /proc/self/stat)."""
    with open("/proc/self/stat", "rb") as stat:
        raw = stat.read()
    ticks = raw[raw.rindex(b")") + 2 :].split()[19]
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as boot:
            boot_id = boot.read().strip()
    except OSError:
        boot_id = b"unknown"
    return b"%d %s %s %.6f\n" % (os.getpid(), ticks, boot_id, time.time())


def _set_up(libc: _Libc, options: list[bytes]) -> tuple[list[bytes], bool]:
    """Carry out kfp-step's options in order; the step's argv (after `--`), and whether `-I` was given."""
    at = 0
    ignore_term = False
    while at < len(options):
        option = options[at]
        if option == b"--":
            if at + 1 >= len(options):
                raise _SetupFailed("kfp-step: no command")
            return options[at + 1 :], ignore_term
        if option == b"-I":
            ignore_term = True
        elif option == b"-r":
            record = _launch_record()
            if os.write(1, record) != len(record):
                raise _SetupFailed("kfp-step: cannot write the launch record")
        elif option == b"-D" and at + 1 < len(options):
            at += 1
            try:
                os.makedirs(options[at], exist_ok=True)
            except OSError as exc:
                raise _SetupFailed(f"cannot create {os.fsdecode(options[at])}: {exc.strerror}") from None
        elif option == b"-m":
            libc.check(libc.unshare(CLONE_NEWNS), f"{SETUP_MESSAGE} (unshare)")
            libc.check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), f"{SETUP_MESSAGE} (private /)")
        elif option == b"-b" and at + 2 < len(options):
            source, target = options[at + 1], options[at + 2]
            libc.check(libc.mount(source, target, None, MS_BIND, None), f"{SETUP_MESSAGE} {os.fsdecode(target)}")
            at += 2
        elif option == b"-C" and at + 1 < len(options):
            at += 1
            try:
                try:
                    os.chdir(options[at])
                except FileNotFoundError:
                    os.makedirs(options[at], exist_ok=True)
                    os.chdir(options[at])
            except OSError as exc:
                raise _SetupFailed(f"cannot enter {os.fsdecode(options[at])}: {exc.strerror}") from None
        else:
            raise _SetupFailed(f"kfp-step: bad argument {os.fsdecode(option)}")
        at += 1
    raise _SetupFailed("kfp-step: no command")


def _become_the_wrapper(libc: _Libc, stdout_path: bytes, stderr_path: bytes, argv: list[bytes],
                        env: dict[bytes, bytes]) -> None:
    """In the child: its stdio, the options, then `sh` running the step. Never returns."""
    try:
        os.setsid()
        stdin = os.open(os.devnull, os.O_RDONLY)
        stdout = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        stderr = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for source, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(source, target)
    except BaseException:
        os._exit(SETUP_FAILED)
    try:
        step, ignore_term = _set_up(libc, argv[1:])
        script = RECORD_AND_EXIT_IGNORING_TERM if ignore_term else RECORD_AND_EXIT
        os.execve(SH, [SH, "-c", script, "kfp-step", *step], env)
    except _SetupFailed as failure:
        os.write(2, b"kfp-backend: %s\n" % str(failure).encode(errors="replace"))
    except BaseException as exc:
        os.write(2, b"kfp-backend: %s\n" % str(exc).encode(errors="replace"))
    os.write(1, b"%d\n" % SETUP_FAILED)
    os._exit(SETUP_FAILED)


def main() -> int:
    if not supported():
        return 2
    # The server spawned us with the default actions; Python's start-up ignores these two, and an
    # ignored signal stays ignored across exec: a step must get them by default.
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    libc = _Libc()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = requests.readline()
        if not header:
            return 0
        try:
            length = int(header)
        except ValueError:
            return 1
        data = requests.read(length)
        if len(data) != length:
            return 1
        request = _parse(data)
        if request is None:
            pid = -errno.EINVAL
        else:
            stdout_path, stderr_path, argv, env = request
            environment = dict(item.split(b"=", 1) for item in env if b"=" in item)
            pid = libc.clone()
            if pid == 0:
                _become_the_wrapper(libc, stdout_path, stderr_path, argv, environment)
        replies.write(b"%d\n" % pid)
        replies.flush()


if __name__ == "__main__":
    sys.exit(main())
