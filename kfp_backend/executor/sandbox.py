"""Private views of the fixed absolute paths that kfp 1.8 steps read and write.

Every in-step path P has a host path `<work_dir>/root/<P without the leading />`. A plan (`Plan`) says how
a step is started so that it sees its own files there: in a private mount namespace (`plan_namespace`),
with its paths rewritten (`plan_rewrite`), or in the multi-user sandbox (`plan_bwrap`, see `bwrap`).
The three modes in detail: docs/execution.md ("Private paths").
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kfp_backend.executor import bwrap

NAMESPACE = "namespace"
REWRITE = "rewrite"
BWRAP = "bwrap"
AUTO = "auto"
MODES = (AUTO, NAMESPACE, REWRITE, BWRAP)

TMP = "/tmp"
# In a step's directory: where its in-step paths live on the host (its scratch).
ROOT_DIR = "root"
# The step's HOME and default working directory: its private /tmp, in both modes.
HOME_IN_STEP = TMP
# Exit status recorded when the wrapper could not set up the step's private paths.
SETUP_FAILED_EXIT_CODE = 125

SH = "/bin/sh"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(Exception):
    """A step's private paths cannot be prepared (bad path, conflicting file types, read-only fs...)."""


def check_in_step_path(path: str) -> str:
    """Return `path` if it is a clean absolute in-step path, else raise SandboxError."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise SandboxError(f"in-step path must be absolute: {path!r}")
    if path == "/" or posixpath.normpath(path) != path or path.startswith("//"):
        raise SandboxError(f"in-step path must be a normalized path below /: {path!r}")
    return path


def host_path(work_dir: Path, in_step_path: str) -> Path:
    """Where in-step path P lives on the host: `<work_dir>/root/<P without the leading />`."""
    return Path(work_dir) / ROOT_DIR / check_in_step_path(in_step_path).lstrip("/")


def is_under(path: str, directory: str) -> bool:
    """True when `path` is `directory` or lies below it (plain string logic, normalized paths)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@dataclass
class Plan:
    """How to launch one step: the wrapper argv (ending with the step's argv), env and host cwd (the
    wrapper enters its working directory itself: the launcher does not chdir)."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    # Host files/dirs created empty (mtime 0) as bind sources for declared outputs outside /tmp;
    # removed after the step when still untouched.
    placeholders: list[str] = field(default_factory=list)


def _record_and_exit(body: list[str]) -> str:
    """The wrapper script: run the step with stdout on the log (fd 2), write its status on fd 1.

    The wrapper survives the SIGTERM sent to the whole group (a no-op trap, reset to the default in the
    step by exec), so a step that handles SIGTERM gets its grace period and its status is recorded."""
    return "\n".join(["trap : TERM", *body, '"$@" >&2', "rc=$?", "echo $rc", "exit $rc", ""])


def _fail(what: str) -> str:
    message = shlex.quote(f"kfp-backend: {what}")
    return f"{{ echo {message} >&2; echo {SETUP_FAILED_EXIT_CODE}; exit {SETUP_FAILED_EXIT_CODE}; }}"


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths lying below another path of the list (their host paths are inside its host path)."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(is_under(path, parent) for parent in kept):
            kept.append(path)
    return kept


def base_env(home: str, extra: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH") or _DEFAULT_PATH,
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def _make_parent_dirs(root: Path, paths: list[str]) -> None:
    for path in paths:
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)


def _outside_tmp_binds(root: Path, paths: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The (host source, in-step target) binds of the declared paths outside /tmp, their mount points made
    on the host when missing, and the placeholders made as their sources (see the module docstring).
    Paths outside /tmp come first: their host paths may lie under the host's /tmp, which is hidden once
    the private /tmp is mounted."""
    binds: list[tuple[str, str]] = []
    placeholders: list[str] = []
    for path in _outermost([p for p in paths if not is_under(p, TMP)]):
        source = root / path.lstrip("/")
        real = Path(path)
        if source.exists():
            is_dir = source.is_dir()
        else:
            is_dir = real.is_dir()
            try:
                if is_dir:
                    source.mkdir()
                else:
                    source.touch()
                os.utime(source, ns=(0, 0))
            except OSError as exc:
                raise SandboxError(f"cannot create {source}: {exc}") from exc
            placeholders.append(str(source))
        try:
            if not os.path.lexists(path):
                real.parent.mkdir(parents=True, exist_ok=True)
                if is_dir:
                    real.mkdir(exist_ok=True)
                else:
                    real.touch()
        except OSError as exc:
            raise SandboxError(f"cannot create the mount point {path} on the host: {exc}") from exc
        if real.is_dir() != is_dir:
            kind = "a directory" if is_dir else "a file"
            raise SandboxError(f"{path} is {kind} in the step but not on the host")
        binds.append((str(source), path))
    return binds, placeholders


def plan_namespace(
    work_dir: Path,
    private_paths: list[str],
    argv: list[str],
    env: dict[str, str],
    working_dir: str | None,
    unshare: str,
    mount: str,
    helper: str | None = None,
) -> Plan:
    """`helper`: the path of `kfp-step` (see `kfp_step`), used instead of the shell wrapper when given."""
    paths = [check_in_step_path(p) for p in private_paths]
    root = Path(work_dir) / ROOT_DIR
    host_tmp = root / "tmp"
    if helper is None:
        host_tmp.mkdir(parents=True, exist_ok=True)
    # else kfp-step makes the private /tmp (-D) and enters the working directory (-C)
    _make_parent_dirs(root, paths)
    binds, placeholders = _outside_tmp_binds(root, paths)
    binds.append((str(host_tmp), TMP))
    # -n: no /etc/mtab update, -c: the paths are ours and absolute (skips realpath work).
    mount_cmd = f"{shlex.quote(mount)} -n -c --bind"
    steps = [f"{mount_cmd} {shlex.quote(source)} {shlex.quote(target)}" for source, target in binds]
    cwd = working_dir or HOME_IN_STEP
    if helper is not None:
        options = [helper, "-D", str(host_tmp), "-m"]
        for source_path, target in binds:
            options += ["-b", source_path, target]
        return Plan(
            argv=[*options, "-C", cwd, "--", *argv],
            env=base_env(HOME_IN_STEP, env),
            cwd=str(work_dir),
            placeholders=placeholders,
        )
    body = [" &&\n".join(steps) + " ||\n" + _fail("could not set up the step's private paths")]
    q = shlex.quote(cwd)
    body.append(f"cd {q} 2>/dev/null || {{ mkdir -p {q} && cd {q}; }} || " + _fail(f"cannot enter {cwd}"))
    wrapper = [unshare, "--mount", "--propagation", "private", SH, "-c", _record_and_exit(body), "kfp-step"]
    return Plan(
        argv=[*wrapper, *argv],
        env=base_env(HOME_IN_STEP, env),
        cwd=str(work_dir),
        placeholders=placeholders,
    )


# Top-level directories where a tenant's declared output path must not make the server create an empty
# mount point on the host (an empty /etc/nologin alone locks users out).
_SYSTEM_DIRS = frozenset({"bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "proc", "root",
                          "run", "sbin", "srv", "sys", "usr", "var"})


def _check_mount_point_allowed(path: str, options: bwrap.Options) -> None:
    """In the multi-user sandbox a declared path (or working directory) outside /tmp that does not exist on
    the host is created there (empty) only outside the system's directories and the hidden ones."""
    if is_under(path, TMP) or os.path.lexists(path):
        return
    top = path.split("/")[1]
    if top in _SYSTEM_DIRS or any(is_under(path, hidden) for hidden in options.hidden):
        raise SandboxError(f"{path} does not exist on this host, and in multi-user mode nothing is made for it "
                           f"under /{top}: declare paths under /tmp, or in a directory of their own")


def plan_bwrap(
    work_dir: Path,
    private_paths: list[str],
    argv: list[str],
    env: dict[str, str],
    working_dir: str | None,
    options: bwrap.Options,
    helper: str | None = None,
    read_only_paths: Sequence[str] = (),
) -> Plan:
    """The multi-user sandbox (see `bwrap`): the same private paths as "namespace", bound by bwrap, the
    step run as `options.user` in its own PID namespace, the host read-only and the hidden paths empty
    but for `read_only_paths` (host directories shown read-only at the same path: its Python environment).
    `helper`: the wrapper program (`kfp-step`), else the shell wrapper. The launcher hands the step's tree
    over to the step's user once its inputs are in place (`bwrap.hand_over`)."""
    paths = [check_in_step_path(p) for p in private_paths]
    for path in paths:
        _check_mount_point_allowed(path, options)
    root = Path(work_dir) / ROOT_DIR
    host_tmp = root / "tmp"
    host_tmp.mkdir(parents=True, exist_ok=True)
    _make_parent_dirs(root, paths)
    binds, placeholders = _outside_tmp_binds(root, paths)
    binds.append((str(host_tmp), TMP))
    cwd = working_dir or HOME_IN_STEP
    _check_mount_point_allowed(check_in_step_path(cwd), options)
    try:
        if is_under(cwd, TMP):
            (root / cwd.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif not os.path.isdir(cwd):
            os.makedirs(cwd, exist_ok=True)  # the host's own directory, as in the other modes (read-only here)
    except OSError as exc:
        raise SandboxError(f"cannot create the working directory {cwd}: {exc}") from exc
    # The python wrapper's "kfp-step" is no program: there setpriv and env drop the privileges.
    dropper = helper if helper is not None and os.path.isabs(helper) else None
    sandboxed = [*bwrap.sandbox_argv(options, binds, cwd, dropper, read_only=read_only_paths), *argv]
    # The wrapper starts bwrap with SIGTERM ignored (see `bwrap`): -I, or the shell's `trap '' TERM`.
    wrapper = [helper, "-I", "--"] if helper is not None else [
        SH, "-c", _record_and_exit([]).replace("trap : TERM", "trap '' TERM"), "kfp-step"]
    step_env = base_env(HOME_IN_STEP, env)
    step_env["PATH"] = _standard_path(env.get("PATH"))
    return Plan(argv=[*wrapper, *sandboxed], env=step_env, cwd=str(work_dir), placeholders=placeholders)


def _standard_path(path: str | None) -> str:
    """A sandboxed step's PATH: the standard one, not the server's; the step's own when it set one, but a
    PATH built on the server's (a prepared Python environment's bin dir before it) ends with the
    standard one instead."""
    server_path = os.environ.get("PATH") or ""
    if path is None:
        return _DEFAULT_PATH
    if server_path and (path == server_path or path.endswith(os.pathsep + server_path)):
        return path[: len(path) - len(server_path)] + _DEFAULT_PATH
    return path


class PathRewriter:
    """Replaces declared in-step paths (whole components only) by their host paths in strings."""

    _PATH_CHARS = r"A-Za-z0-9_.\-"

    def __init__(self, root: Path, paths: list[str]) -> None:
        self._root = str(root)
        targets: set[str] = set()
        for path in paths:
            targets.add(path)
            if is_under(path, TMP):
                parent = posixpath.dirname(path)
                while parent != TMP and is_under(parent, TMP):
                    targets.add(parent)
                    parent = posixpath.dirname(parent)
        ordered = sorted(targets, key=len, reverse=True)
        self._pattern = (
            re.compile(
                rf"(?<![{self._PATH_CHARS}/])(?:{'|'.join(map(re.escape, ordered))})(?![{self._PATH_CHARS}])"
            )
            if ordered
            else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._root + m.group(0), text)


def plan_rewrite(
    work_dir: Path,
    private_paths: list[str],
    argv: list[str],
    env: dict[str, str],
    working_dir: str | None,
    helper: str | None = None,
) -> Plan:
    paths = [check_in_step_path(p) for p in private_paths]
    root = Path(work_dir) / ROOT_DIR
    host_tmp = root / "tmp"
    home = root / HOME_IN_STEP.lstrip("/")
    if helper is None or working_dir is not None:
        home.mkdir(parents=True, exist_ok=True)
    _make_parent_dirs(root, paths)
    rewrite = PathRewriter(root, paths)

    if working_dir is None:
        cwd = home
    else:
        check_in_step_path(working_dir)
        cwd = root / working_dir.lstrip("/") if is_under(working_dir, TMP) else Path(working_dir)
        try:
            cwd.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SandboxError(f"cannot create the working directory {working_dir}: {exc}") from exc
    step_env = base_env(str(home), {k: rewrite(v) for k, v in env.items()})
    step_env["TMPDIR"] = str(host_tmp)
    if helper is not None:
        return Plan(
            argv=[helper, "-C", str(cwd), "--", *(rewrite(a) for a in argv)],
            env=step_env,
            cwd=str(cwd),
        )
    q = shlex.quote(str(cwd))
    return Plan(
        argv=[SH, "-c", _record_and_exit([f"cd {q} || " + _fail(f"cannot enter {cwd}")]), "kfp-step",
              *(rewrite(a) for a in argv)],
        env=step_env,
        cwd=str(cwd),
    )


_probe_lock = threading.Lock()
_probe_result: list[str | None] = []  # [] = not probed yet; [None] = available; [reason] = not


def namespace_tools() -> tuple[str, str] | None:
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        return None
    return unshare, mount


def namespace_unavailable_reason() -> str | None:
    """None when steps can run in private mount namespaces here, else why not. Probed once per process."""
    with _probe_lock:
        if not _probe_result:
            _probe_result.append(_probe())
        return _probe_result[0]


def _probe() -> str | None:
    tools = namespace_tools()
    if tools is None:
        return "the unshare and mount programs are not both on PATH"
    unshare, mount = tools
    with tempfile.TemporaryDirectory(prefix="kfp-ns-probe-") as scratch:
        source, target = Path(scratch, "a"), Path(scratch, "b")
        source.mkdir()
        target.mkdir()
        (source / "marker").touch()
        script = f'{shlex.quote(mount)} -n -c --bind "$1" "$2" && test -e "$2/marker"'
        try:
            done = subprocess.run(
                [unshare, "--mount", "--propagation", "private", SH, "-c", script, "probe", str(source), str(target)],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"unshare failed: {exc}"
        if done.returncode != 0:
            return f"unshare --mount failed: {(done.stderr or '').strip() or f'exit code {done.returncode}'}"
        if (target / "marker").exists():
            return "the bind mount leaked out of the private mount namespace"
    return None
