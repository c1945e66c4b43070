"""The multi-user sandbox: each step in bubblewrap (`bwrap`) as an unprivileged user, seeing nothing of the server.

A step of one tenant must not reach the server (its database, its data dir, its environment, its
processes) nor another tenant's steps. This module builds the sandbox's command line (`sandbox_argv`),
checks that it works here (`problem`), and hands a step's tree to the step's user and back (`hand_over`,
`take_back`). How it is built and why: docs/execution.md ("The multi-user sandbox").
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEDICATED_USER = "kfp-runner"  # used by default when it exists, else `nobody`
FALLBACK_USER = "nobody"


class IsolationUnavailable(RuntimeError):
    """The sandbox cannot be had here; the message names what is missing."""


@dataclass(frozen=True)
class StepUser:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Options:
    """What a launcher needs to start steps in the sandbox (built by `options`, checked by `problem`)."""

    bwrap: str
    setpriv: str
    env: str
    user: StepUser
    hidden: tuple[str, ...]  # absolute directories (or files) the step must not see
    network: bool = True  # share the host's network (False: a network namespace of its own)


def resolve_user(wanted: str) -> StepUser:
    """`wanted`: a user name, a uid, `uid:gid`, or "" for the default (DEDICATED_USER, else nobody)."""
    if not wanted:
        for name in (DEDICATED_USER, FALLBACK_USER):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return _checked(StepUser(entry.pw_name, entry.pw_uid, entry.pw_gid))
        raise IsolationUnavailable(f"neither the user {DEDICATED_USER!r} nor {FALLBACK_USER!r} exists; "
                                   "set KFP_BACKEND_STEP_USER")
    uid_text, _, gid_text = wanted.partition(":")
    try:
        if uid_text.isdigit():
            uid = int(uid_text)
            try:
                entry = pwd.getpwuid(uid)
                name, gid = entry.pw_name, entry.pw_gid
            except KeyError:
                name, gid = uid_text, uid
        else:
            entry = pwd.getpwnam(uid_text)
            name, uid, gid = entry.pw_name, entry.pw_uid, entry.pw_gid
    except KeyError:
        raise IsolationUnavailable(f"the step user {uid_text!r} does not exist (KFP_BACKEND_STEP_USER)") from None
    if gid_text:
        if not gid_text.isdigit():
            raise IsolationUnavailable(f"KFP_BACKEND_STEP_USER: the group of {wanted!r} must be a number")
        gid = int(gid_text)
    return _checked(StepUser(name, uid, gid))


def _checked(user: StepUser) -> StepUser:
    if user.uid == 0 or user.gid == 0:
        raise IsolationUnavailable(f"the step user {user.name!r} is root (uid {user.uid}, gid {user.gid}): "
                                   "steps must run as an unprivileged user (KFP_BACKEND_STEP_USER)")
    if user.uid == os.geteuid():
        raise IsolationUnavailable(f"the step user {user.name!r} is the server's own user: its files would be "
                                   "the steps' (KFP_BACKEND_STEP_USER)")
    return user


def options(bwrap: str, user: str, hidden: list[Path | str], network: bool = True) -> Options:
    """Find the programs and the user; IsolationUnavailable naming what is missing."""
    if os.geteuid() != 0:
        raise IsolationUnavailable(f"the server runs as uid {os.geteuid()}, not root: only root can start "
                                   "steps as another user in a sandbox")
    found = shutil.which(bwrap)
    if found is None:
        raise IsolationUnavailable(f"bubblewrap is not installed: no {bwrap!r} program (KFP_BACKEND_BWRAP; "
                                   "install the `bubblewrap` package)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise IsolationUnavailable("the setpriv program (util-linux) is not on PATH")
    env = shutil.which("env")
    if env is None:
        raise IsolationUnavailable("the env program (coreutils) is not on PATH")
    paths = sorted({os.path.realpath(path) for path in hidden})
    if "/" in paths:
        raise IsolationUnavailable("a hidden path is the root directory")
    return Options(found, setpriv, env, resolve_user(user), tuple(paths), network)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _missing_parents(path: str, hidden: Sequence[str]) -> list[str]:
    """The directories above `path`, outermost first, that are not there in the sandbox: those below a
    hidden path (an empty tmpfs) or below /tmp (the step's private one)."""
    parents = []
    parent = os.path.dirname(path)
    while parent not in ("/", ""):
        if any(_under(parent, top) and parent != top for top in (*hidden, "/tmp")):
            parents.append(parent)
        parent = os.path.dirname(parent)
    return parents[::-1]


def sandbox_argv(opts: Options, binds: list[tuple[str, str]], cwd: str, helper: str | None = None,
                 read_only: Sequence[str] = (), writable: Sequence[str] = ()) -> list[str]:
    """bwrap ... -- setpriv ... -- env --default-signal=TERM --, to be followed by the step's argv.
    `binds`: (host source, in-step target), the step's private /tmp last. `helper`: the compiled `kfp-step`,
    which does the work of setpriv and env in one program load (`-g GID -u UID -x`). `read_only`: host
    directories the step reads at the same path and may not change (its prepared Python environment), shown
    even under a hidden path or the private /tmp. `writable`: the same, read-write (an environment being
    built by the step user, see `env_builds`)."""
    shown = [(os.path.realpath(path), "--ro-bind") for path in read_only]
    shown += [(os.path.realpath(path), "--bind") for path in writable]
    # --as-pid-1: no init of bwrap's in between, so bwrap ends when the step's namespace is gone (its init
    # would report the exit first and die later, an orphan: its zombie would outlive the step's group).
    argv = [opts.bwrap, "--die-with-parent", "--unshare-pid", "--as-pid-1", "--unshare-ipc"]
    if not opts.network:
        argv.append("--unshare-net")
    argv += ["--ro-bind", "/", "/"]
    for path in opts.hidden:
        if _under(path, "/tmp"):
            continue  # the private /tmp hides the host's already
        if os.path.isdir(path):
            # Empty, and root's: not even listed. Traversable (not listable) when a read-only path below it
            # is shown, whose mount point bwrap makes there.
            perms = "0711" if any(_under(inner, path) for inner, _ in shown) else "0700"
            argv += ["--perms", perms, "--tmpfs", path]
        elif os.path.lexists(path):
            argv += ["--ro-bind", "/dev/null", path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
    for source, target in binds:
        argv += ["--bind", source, target]
    made: set[str] = set()
    for path, how in shown:  # last: over the hidden paths and the private /tmp alike
        # bwrap would make the missing directories on the way root's, mode 0700: the step could not pass.
        for parent in _missing_parents(path, opts.hidden):
            if parent not in made:
                made.add(parent)
                argv += ["--perms", "0711", "--dir", parent]
        argv += [how, path, path]
    argv += ["--chdir", cwd, "--"]
    if helper is not None:
        return [*argv, helper, "-g", str(opts.user.gid), "-u", str(opts.user.uid), "-x", "--"]
    return [*argv, opts.setpriv, f"--reuid={opts.user.uid}", f"--regid={opts.user.gid}", "--clear-groups",
            "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--", opts.env, "--default-signal=TERM", "--"]


# --- the step's files -------------------------------------------------------------------------------


def hand_over(root: Path, user: StepUser) -> None:
    """Give the step's user its private tree (inputs, output directories, placeholders) before it starts."""
    os.lchown(root, user.uid, user.gid)
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(directory, name), user.uid, user.gid)


def take_back(root: Path) -> None:
    """After the step: the tree is the server's again (no process of the step's user can add to it, even one
    that kept a descriptor of it), then every link pointing out of it and every special file (fifo,
    socket) is removed, so that reading the outputs as root follows nothing the step planted."""
    if not os.path.isdir(root) or os.path.islink(root):
        return
    uid, gid = os.geteuid(), os.getegid()
    top = os.path.realpath(root)
    with contextlib.suppress(OSError):
        os.lchown(root, uid, gid)
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(directory, name), uid, gid)
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(directory, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                if not _under(os.path.realpath(path), top):
                    os.unlink(path)
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                os.unlink(path)


# --- the start-up check -----------------------------------------------------------------------------

_CHECK_SCRIPT = r"""
test "$(id -u):$(id -g)" = "$1" || { echo "runs as $(id -u):$(id -g), not $1"; exit 10; }
test "$(id -G)" = "${1#*:}" || { echo "has the supplementary groups $(id -G)"; exit 11; }
cat /tmp/secret >/dev/null 2>&1 && { echo "could read a file of the server's user (mode 0600)"; exit 12; }
test -e "/proc/$2" && { echo "sees the server's process $2 in /proc"; exit 13; }
kill -0 "$2" 2>/dev/null && { echo "can signal the server's process $2"; exit 14; }
grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status || { echo "no_new_privs is not set"; exit 15; }
grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status || { echo "has capabilities"; exit 16; }
sigign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status)
test $((0x$sigign & 0x4000)) -eq 0 || { echo "SIGTERM is ignored"; exit 17; }
echo ok > /tmp/written || { echo "cannot write its private /tmp"; exit 18; }
shift 2
for hidden in "$@"; do
  if test -d "$hidden" && test -n "$(ls -A "$hidden" 2>/dev/null)"; then
    echo "sees the contents of $hidden"; exit 19
  fi
  if test -f "$hidden" && test -s "$hidden"; then echo "sees $hidden"; exit 19; fi
done
exit 0
"""


def problem(opts: Options, helper: str | None = None) -> str | None:
    """None when a step started in this sandbox runs as it must here (checked by running one: its user, no
    supplementary groups, no capabilities, no_new_privs, no view of the server's process, the hidden
    paths empty, a root-owned 0600 file unreadable, SIGTERM not ignored, its /tmp writable); else what is
    wrong. `helper`: checked with the compiled `kfp-step` dropping the privileges (see `sandbox_argv`)."""
    with tempfile.TemporaryDirectory(prefix="kfp-bwrap-check-") as scratch:
        root = Path(scratch) / "root"
        tmp = root / "tmp"
        tmp.mkdir(parents=True)
        secret = tmp / "secret"
        secret.write_text("secret\n")
        os.chmod(secret, 0o600)
        hand_over(root, opts.user)
        os.lchown(secret, os.geteuid(), os.getegid())  # the server's file, in a place the step can reach
        visible = [path for path in opts.hidden if not _under(path, "/tmp")]
        # Started as the wrappers start it: with SIGTERM ignored (`-I`).
        argv = ["/bin/sh", "-c", "trap '' TERM; exec \"$@\"", "kfp-step",
                *sandbox_argv(opts, [(str(tmp), "/tmp")], "/tmp", helper), "/bin/sh", "-c", _CHECK_SCRIPT, "check",
                f"{opts.user.uid}:{opts.user.gid}", str(os.getpid()), *visible]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bwrap could not be run: {exc}"
        if done.returncode != 0:
            said = (done.stdout.strip() + " " + done.stderr.strip()).strip()[:400]
            return f"a check step in the sandbox failed (exit code {done.returncode}): {said}"
        if not (tmp / "written").is_file():
            return "the check step's /tmp was not its own directory"
    return None

