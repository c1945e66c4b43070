"""Which wrapper starts each step and records its exit: the first that works here unless one is asked for.

- `kfp-step`: the compiled C wrapper (see `kfp_step`), when a C compiler is at hand;
- `python`: its Python twin (see `pyspawner`): the same set-up by system calls in the child its spawner
  clones, then `/bin/sh` runs the step and records its exit;
- `shell`: a `/bin/sh` script doing the set-up with programs, started with `posix_spawn`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from kfp_backend.executor import kfp_step, pyspawner
from kfp_backend.executor.launch_records import EXIT_CODE_FILE, LOG_FILE, read_exit_code, read_launch_record
from kfp_backend.executor.spawner import Spawner

log = logging.getLogger(__name__)

AUTO = "auto"
KFP_STEP = "kfp-step"
PYTHON = "python"
SHELL = "shell"
WRAPPERS = (KFP_STEP, PYTHON, SHELL)


@dataclass(frozen=True)
class StepWrapper:
    name: str  # one of WRAPPERS
    binary: str | None  # the compiled kfp-step, with that wrapper
    # What plans name as the wrapper program (kfp-step's options serve the python wrapper too: its spawner
    # reads them, argv[0] aside); None: the shell wrapper.
    program: str | None
    spawner_command: list[str] | None  # what starts a wave's wrappers; None: posix_spawn, one by one

    @property
    def writes_launch_record(self) -> bool:
        """The wrapper writes the launch record itself, before the step runs (else the launcher does)."""
        return self.name != SHELL


def choose_wrapper(wanted: str, namespace: bool) -> StepWrapper:
    """`wanted`: one of WRAPPERS, or AUTO (the first that works here); `namespace`: steps get private mount
    namespaces. RuntimeError when the one asked for cannot be had."""
    if wanted in (AUTO, KFP_STEP):
        binary = kfp_step.step_helper()
        if binary is not None and (not namespace or kfp_step.namespace_works(binary)):
            return StepWrapper(KFP_STEP, binary, binary, [binary, "--spawner"])
        if wanted == KFP_STEP:
            raise RuntimeError("the kfp-step wrapper is not available here (no C compiler, or its check failed)")
    if wanted in (AUTO, PYTHON):
        problem = _python_wrapper_problem(namespace)
        if problem is None:
            return StepWrapper(PYTHON, None, "kfp-step", pyspawner.command())
        if wanted == PYTHON:
            raise RuntimeError(f"the python wrapper is not available here: {problem}")
        log.info("python step wrapper not available (%s); steps use the shell wrapper", problem)
    return StepWrapper(SHELL, None, None, None)


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
    spawner = Spawner(pyspawner.command())
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
