"""Prepared Python environments for kfp 2.x lightweight components, one per requirement, made once.

A step whose command runs `python3 -m pip install 'kfp==X' --no-deps` (and its `packages_to_install`)
runs with PATH starting at the bin dir of a venv that already holds exactly that, so its pip lines are
no-ops that reach no package index and install nothing into the server's interpreter. Environments
live under one directory, named by a hash of the requirement and the base interpreter; the first step
that needs one creates it, every later step (in this process or another on the same directory) reuses
it. See docs/execution.md ("Python environments for kfp 2.x components").
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from kfp_backend.config import Settings
from kfp_backend.executor import bwrap
from kfp_backend.executor.env_builds import BuildSandbox, BuildSession
from kfp_backend.executor.step_requirements import (
    StepRequirement,
    UnsupportedInstall,
    step_requirement,
    without_install_script,
)

log = logging.getLogger(__name__)

READY_FILE = "kfp-backend-env.json"
# Variables of the server's environment that would make pip or the new venv see other packages than
# the venv's own (the server's sys.path, a user-site install) or install elsewhere.
_LEAKING_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "VIRTUAL_ENV", "PIP_USER", "PIP_TARGET",
                      "PIP_PREFIX", "PIP_REQUIRE_VIRTUALENV", "__PYVENV_LAUNCHER__")
# How much of pip's output a failure message keeps (its end, where pip says what went wrong).
_OUTPUT_TAIL_CHARS = 6000
# A failed creation is not retried for this long: the parallel steps of one run fail at once with it.
FAILURE_MEMORY_SECONDS = 60.0


class StepEnvironmentError(RuntimeError):
    """An environment could not be prepared; the message says which and carries pip's output."""


@dataclasses.dataclass(frozen=True)
class PreparedStep:
    """A step ready to run: its argv, and the bin dir to put first on its PATH (None: leave PATH)."""

    argv: list[str]
    bin_dir: Path | None

    def path(self, path: str | None) -> str | None:
        """The step's PATH, given the one it would otherwise get."""
        return path if self.bin_dir is None else prepend_to_path(self.bin_dir, path)

    @property
    def read_only_paths(self) -> list[str]:
        """The environment's directory (none for a step that needs none): the multi-user sandbox shows it
        to the step read-only, and nothing else of the environments (not their lock files, nor the others
        being built)."""
        return [] if self.bin_dir is None else [str(self.bin_dir.parent)]


class StepEnvironments:
    """The environments under `root`: `prepare(requirement)` gives the bin dir of a ready one."""

    def __init__(
        self,
        root: Path,
        *,
        python: str = "",
        pip_options: Sequence[str] = (),
        timeout_seconds: float = 900.0,
        build_sandbox: BuildSandbox | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        # Builds run in the step sandbox as the step user when given (multi-user mode), see env_builds.
        self.build_sandbox = build_sandbox
        # The interpreter the venvs are made from; empty: the one running the server.
        self.python = python or sys.executable
        self.pip_options = tuple(pip_options)
        self.timeout_seconds = timeout_seconds
        self._python_identity: str | None = None
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()
        # pip runs one at a time in this process (and across processes by the file lock beside it).
        self._pip_lock = threading.Lock()
        self._failures: dict[str, tuple[float, str]] = {}
        # Why no environment can serve the steps here (no interpreter the step user can run); "" if fine.
        self.unusable = ""

    @classmethod
    def from_settings(cls, settings: Settings, *, sandbox: bwrap.Options | None = None) -> StepEnvironments | None:
        """The server's environments, or None when KFP_BACKEND_STEP_ENVS turns them off. `sandbox`: the
        multi-user step sandbox, where environments are built (as the step user) and run; the base
        interpreter must then be one the step user can run (a venv's python is a link to it), see
        `python_for_other_users`."""
        if not settings.step_envs:
            return None
        python, unusable = settings.step_envs_python, ""
        if sandbox is not None:
            python, unusable = python_for_other_users(settings.step_envs_python)
        environments = cls(
            settings.effective_step_envs_dir,
            python=python,
            pip_options=shlex.split(settings.step_envs_pip_options),
            timeout_seconds=settings.step_envs_timeout_seconds,
            build_sandbox=BuildSandbox(sandbox) if sandbox is not None else None,
        )
        environments.unusable = unusable
        return environments

    def prepare_step(self, argv: Sequence[str]) -> PreparedStep:
        """What the executor calls for each step (command + args): the environment the step needs,
        prepared, and the argv to run in it (the compiler's install script skipped: its pip lines
        are satisfied there). Raises StepEnvironmentError; the step then fails with its message."""
        bin_dir = self.bin_dir_for(argv)
        if bin_dir is None:
            return PreparedStep(list(argv), None)
        return PreparedStep(without_install_script(argv), bin_dir)

    def bin_dir_for(self, argv: Sequence[str]) -> Path | None:
        """The bin dir the step `argv` (command + args) should find first on PATH, preparing it if
        needed; None for a step that installs nothing. Raises StepEnvironmentError."""
        try:
            requirement = step_requirement(argv)
        except UnsupportedInstall as exc:
            raise StepEnvironmentError(f"the step's Python environment cannot be prepared: {exc}") from None
        return None if requirement is None else self.prepare(requirement)

    def prepare(self, requirement: StepRequirement) -> Path:
        """The bin dir of the ready environment for `requirement`, created first if there is none.

        Callers asking for the same environment at once wait for one creator, across threads and,
        through a lock file, across processes sharing `root`.
        """
        if self.unusable:
            raise StepEnvironmentError(f"could not prepare the step's Python environment "
                                       f"({requirement.describe()}): {self.unusable}")
        env_dir = self.root / self.env_name(requirement)
        if (env_dir / READY_FILE).is_file():
            return env_dir / "bin"
        if not self.root.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o755)  # sandboxed steps, another user, must reach the environments
        with self._key_lock(env_dir.name), _file_lock(self.root / f"{env_dir.name}.lock"):
            if (env_dir / READY_FILE).is_file():
                return env_dir / "bin"
            self._raise_remembered_failure(env_dir.name, requirement)
            try:
                self._create(env_dir, requirement)
            except StepEnvironmentError as exc:
                self._failures[env_dir.name] = (time.monotonic(), str(exc))
                raise
        return env_dir / "bin"

    def env_name(self, requirement: StepRequirement) -> str:
        """The directory name of `requirement`'s environment: the requirement and the base interpreter."""
        text = f"{self._identity()}\n{requirement.key}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def _identity(self) -> str:
        """The base interpreter's real path and version: another Python gets other environments."""
        if self._python_identity is None:
            probe = "import sys; print(getattr(sys, '_base_executable', sys.executable)); print(sys.version)"
            try:
                result = subprocess.run([self.python, "-c", probe], capture_output=True, text=True,
                                        timeout=60, env=_clean_environment(os.environ), check=True)
            except (OSError, subprocess.SubprocessError) as exc:
                raise StepEnvironmentError(f"the Python for step environments ({self.python}) does not run: "
                                           f"{exc}") from None
            executable, _, version = result.stdout.partition("\n")
            self._python_identity = f"{os.path.realpath(executable.strip())} {version.strip()}"
        return self._python_identity

    def _key_lock(self, name: str) -> threading.Lock:
        with self._key_locks_guard:
            return self._key_locks.setdefault(name, threading.Lock())

    def _raise_remembered_failure(self, name: str, requirement: StepRequirement) -> None:
        failed_at, message = self._failures.get(name, (0.0, ""))
        age = time.monotonic() - failed_at
        if message and age < FAILURE_MEMORY_SECONDS:
            raise StepEnvironmentError(f"{message}\n(failed {age:.0f} s ago; not retried for "
                                       f"{FAILURE_MEMORY_SECONDS:.0f} s)")
        self._failures.pop(name, None)

    def _create(self, env_dir: Path, requirement: StepRequirement) -> None:
        """Build the venv in place; only the ready file, written last, makes it count."""
        started = time.monotonic()
        log.info("Preparing the step environment %s (%s)", env_dir.name, requirement.describe())
        with self._pip_turn():
            if env_dir.exists():  # left by a creator that crashed or was killed: start again
                shutil.rmtree(env_dir)
            try:
                with self._building(env_dir) as session:
                    self._run(requirement, [self.python, "-m", "venv", str(env_dir)], "creating the venv",
                              session=session)
                    python = str(env_dir / "bin" / "python")
                    for install in requirement.installs:
                        command = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                                   "--no-warn-script-location", *install.pip_arguments(), *self.pip_options]
                        self._run(requirement, command, "pip install " + " ".join(install.requirements),
                                  session=session)
                    if requirement.kfp_version:
                        # kfp without its dependencies imports its executor only in its runtime mode.
                        self._run(requirement, [python, "-c", "import kfp.dsl.executor_main"],
                                  "importing kfp.dsl.executor_main", extra_env={"_KFP_RUNTIME": "true"},
                                  session=session)
                _open_for_reading(env_dir)
            except BaseException:
                shutil.rmtree(env_dir, ignore_errors=True)
                raise
        seconds = time.monotonic() - started
        ready = {"requirement": requirement.describe(), "installs": [install.pip_arguments()
                                                                    for install in requirement.installs],
                 "python": self._identity(), "created_at": time.time(), "seconds": round(seconds, 3)}
        _write_atomically(env_dir / READY_FILE, json.dumps(ready, indent=1) + "\n")
        log.info("Step environment %s ready in %.1f s", env_dir.name, seconds)

    @contextlib.contextmanager
    def _pip_turn(self) -> Iterator[None]:
        """One environment is built at a time: in this process, and across processes sharing the root."""
        with self._pip_lock, _file_lock(self.root / ".pip.lock"):
            yield

    def _building(self, env_dir: Path) -> contextlib.AbstractContextManager[BuildSession | None]:
        """Where the build's commands run: in the step sandbox as the step user (multi-user mode: what a
        tenant's pip lines name never runs with the server's rights), else as the server."""
        if self.build_sandbox is None:
            return contextlib.nullcontext()
        return self.build_sandbox.building(env_dir)

    def _run(self, requirement: StepRequirement, command: list[str], what: str,
             extra_env: Mapping[str, str] | None = None, session: BuildSession | None = None) -> None:
        environment = _clean_environment(os.environ) | dict(extra_env or {})
        if session is not None:
            command, environment = session.command(command, environment, dict(extra_env or {}))
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, env=environment, start_new_session=True)
        except OSError as exc:
            raise StepEnvironmentError(self._failure(requirement, what, str(exc))) from None
        try:
            output, _ = process.communicate(timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # pip and whatever builds it started
            output, _ = process.communicate()
            raise StepEnvironmentError(self._failure(
                requirement, what, f"timed out after {self.timeout_seconds:g} s\n" + _tail(output))) from None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        if process.returncode != 0:
            raise StepEnvironmentError(self._failure(
                requirement, what, f"exit code {process.returncode}\n" + _tail(output)))

    @staticmethod
    def _failure(requirement: StepRequirement, what: str, detail: str) -> str:
        return (f"could not prepare the step's Python environment ({requirement.describe()}): "
                f"{what} failed: {detail}")


# Where a multi-user server looks for a base interpreter its step user can run, in this order.
_SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")


def python_for_other_users(configured: str) -> tuple[str, str]:
    """The base interpreter for the environments of steps that run as another user, and why there is none
    ("" when there is one). A venv's `python3` is a link to its base interpreter, so the step user must
    be able to run that: every directory on its real path and the file itself executable by others (a
    pyenv Python under `/root`, mode 0700, is not). KFP_BACKEND_STEP_ENVS_PYTHON, when set, is used as
    given (a warning when the step user cannot run it); else the server's own interpreter if it passes,
    else the first system `python3` that does."""
    if configured:
        found = shutil.which(configured) or configured
        if not runnable_by_others(found):
            log.warning("KFP_BACKEND_STEP_ENVS_PYTHON=%s: the step user cannot run %s (a directory on its path or "
                        "the file is not executable by others): kfp 2.x lightweight components will fail",
                        configured, os.path.realpath(found))
        return configured, ""
    server_python = getattr(sys, "_base_executable", sys.executable)
    if runnable_by_others(server_python):
        return sys.executable, ""
    for candidate in _SYSTEM_PYTHONS:
        if runnable_by_others(candidate):
            log.info("Step environments are made from %s: the server's interpreter %s cannot be run by the step "
                     "user (KFP_BACKEND_STEP_ENVS_PYTHON chooses another)", candidate, os.path.realpath(server_python))
            return candidate, ""
    why = (f"no Python the step user can run: the server's ({os.path.realpath(server_python)}) is not executable "
           f"by others, and none of {', '.join(_SYSTEM_PYTHONS)} is; install python3 (with its venv module) or "
           "set KFP_BACKEND_STEP_ENVS_PYTHON")
    log.error("kfp 2.x lightweight components cannot run in the sandbox: %s", why)
    return "", why


def runnable_by_others(program: str) -> bool:
    """True when a user of no group of the owner's can execute `program` (its real path, every directory
    on it searchable by others and the file executable by others)."""
    path = os.path.realpath(program)
    try:
        if not (os.path.isfile(path) and os.stat(path).st_mode & stat.S_IXOTH):
            return False
        return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in Path(path).parents)
    except OSError:
        return False


def prepend_to_path(bin_dir: Path, path: str | None) -> str:
    """PATH with `bin_dir` first, so that the step's `python3` and `pip` are the environment's."""
    return f"{bin_dir}{os.pathsep}{path}" if path else str(bin_dir)


def _clean_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name not in _LEAKING_VARIABLES}


def _tail(output: bytes | None) -> str:
    text = (output or b"").decode(errors="replace").strip()
    return text if len(text) <= _OUTPUT_TAIL_CHARS else "...\n" + text[-_OUTPUT_TAIL_CHARS:]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`: released by the kernel when its holder dies, so a crash never
    leaves it held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The server's alone (0600): anyone who could open it could take the lock and stall every creation.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        with contextlib.suppress(OSError):
            os.fchmod(descriptor, 0o600)  # a lock file left by an older server
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _open_for_reading(env_dir: Path) -> None:
    """Let every user read and run the environment whatever the server's umask: sandboxed steps run as
    another user. Nobody but the server may write it."""
    for directory, _, files in os.walk(env_dir):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, 0o755 if mode & 0o100 else 0o644)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # whatever a build left there, a link above all: "x" then follows none
    with open(temporary, "x") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
