"""Runs steps as host process groups: `LocalProcessLauncher`, the `StepLauncher` of a `serve` process.

Every step runs under a tiny wrapper (see `step_wrappers`), in its own session (so its process group
holds the step and all its descendants), with its private view of the in-step paths (see `sandbox`).
In multi-user mode the wrapper starts the step in the bwrap sandbox (see `bwrap`). The wrapper's stdout
is the step's exit status record and its launch record (see `launch_records`), so a later server process
can adopt the step or learn how it ended. The `reaper` watches every step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from kfp_backend.executor import bwrap, launch_records, sandbox
from kfp_backend.executor.launch_records import (
    EXIT_CODE_FILE,
    LOG_FILE,
    TERMINATED,
    read_exit_code,
    read_kill_reason,
    read_launch_record,
    remove_untouched_placeholders,
    step_result,
    write_launch_record,
    write_placeholders,
)
from kfp_backend.executor.launcher import OnExit, StepHandle, StepResult, StepSpec
from kfp_backend.executor.process_groups import signal_group
from kfp_backend.executor.reaper import ProcessHandle, Reaper
from kfp_backend.executor.spawner import Spawner, posix_spawn_wrapper
from kfp_backend.executor.step_wrappers import AUTO, KFP_STEP, WRAPPERS, choose_wrapper

log = logging.getLogger(__name__)


class LocalProcessLauncher:
    """Runs steps as host process groups with private paths ("namespace" or "rewrite" isolation), or in the
    multi-user sandbox ("bwrap": see `bwrap`). Implements `StepLauncher` and `StepRecovery`."""

    def __init__(self, isolation: str = sandbox.AUTO, kill_grace_seconds: float = 2.0, wrapper: str = AUTO,
                 sandbox_options: bwrap.Options | None = None) -> None:
        """`wrapper`: what starts each step and records its exit (see WRAPPERS); AUTO: the first that works
        here. RuntimeError when the one asked for cannot be had. `sandbox_options`: with the "bwrap"
        isolation (required then), checked by running one step (bwrap.IsolationUnavailable if it fails)."""
        if isolation not in sandbox.MODES:
            raise ValueError(f"isolation must be one of {', '.join(sandbox.MODES)}, not {isolation!r}")
        if wrapper not in (AUTO, *WRAPPERS):
            raise ValueError(f"wrapper must be one of {', '.join((AUTO, *WRAPPERS))}, not {wrapper!r}")
        self._reaper = Reaper(kill_grace_seconds, take_back=self._take_back)
        self._spawner_instance: Spawner | None = None
        self.sandbox_options = sandbox_options
        self.isolation, self.isolation_note, self._tools = self._choose_isolation(isolation)
        self._wrapper = choose_wrapper(wrapper, namespace=self.isolation == sandbox.NAMESPACE)
        self.wrapper = self._wrapper.name
        if self.isolation == sandbox.BWRAP and self.wrapper == KFP_STEP:
            assert self.sandbox_options is not None
            problem = bwrap.problem(self.sandbox_options, self._wrapper.binary)
            if problem is not None:
                raise bwrap.IsolationUnavailable(f"the step sandbox does not work with kfp-step here: {problem}")

    @property
    def kill_grace_seconds(self) -> float:
        return self._reaper.kill_grace_seconds

    def _choose_isolation(self, isolation: str) -> tuple[str, str, tuple[str, str] | None]:
        """(isolation, a note on the choice, the unshare and mount programs with "namespace")."""
        if isolation == sandbox.BWRAP:
            if self.sandbox_options is None:
                raise ValueError("the bwrap isolation needs sandbox_options")
            problem = bwrap.problem(self.sandbox_options)  # kfp-step's own drop is checked with the wrapper
            if problem is not None:
                raise bwrap.IsolationUnavailable(f"the step sandbox does not work here: {problem}")
            user = self.sandbox_options.user
            return sandbox.BWRAP, f"bubblewrap sandbox, steps run as {user.name} ({user.uid}:{user.gid})", None
        if isolation == sandbox.REWRITE:
            return sandbox.REWRITE, "path rewriting requested", None
        reason = sandbox.namespace_unavailable_reason()
        if reason is None:
            return sandbox.NAMESPACE, "", sandbox.namespace_tools()
        if isolation == sandbox.NAMESPACE:
            raise RuntimeError(f"private mount namespaces are not available: {reason}")
        note = f"private mount namespaces are not available ({reason}); rewriting paths"
        log.warning("step isolation: %s", note)
        return sandbox.REWRITE, note, None

    # -- paths --

    def host_path(self, spec: StepSpec, in_step_path: str) -> Path:
        return sandbox.host_path(spec.work_dir, in_step_path)

    def log_path(self, spec: StepSpec) -> Path:
        return Path(spec.work_dir) / LOG_FILE

    # -- launching --

    def _plan(self, spec: StepSpec) -> sandbox.Plan:
        program = self._wrapper.program
        if self.isolation == sandbox.BWRAP:
            assert self.sandbox_options is not None
            return sandbox.plan_bwrap(
                spec.work_dir, spec.private_paths, spec.argv, spec.env, spec.working_dir, self.sandbox_options,
                helper=program, read_only_paths=spec.read_only_paths,
            )
        if self.isolation == sandbox.NAMESPACE:
            assert self._tools is not None
            unshare, mount = self._tools
            return sandbox.plan_namespace(
                spec.work_dir, spec.private_paths, spec.argv, spec.env, spec.working_dir, unshare, mount,
                helper=program,
            )
        return sandbox.plan_rewrite(
            spec.work_dir, spec.private_paths, spec.argv, spec.env, spec.working_dir, helper=program
        )

    def start(self, spec: StepSpec, on_exit: OnExit) -> StepHandle:
        """Launch the step; raises sandbox.SandboxError / OSError when it cannot be launched at all."""
        outcome = self.start_many([(spec, on_exit)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def start_many(self, steps: list[tuple[StepSpec, OnExit]]) -> list[StepHandle | Exception]:
        """Launch several steps at once (a wave): with a spawner, one request for all of them. Each one's
        handle, or the exception that kept it from starting."""
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
                except FileExistsError:
                    launch_records.forget_earlier_attempt(work_dir)
                plan = self._plan(spec)
                if self.isolation == sandbox.BWRAP:
                    assert self.sandbox_options is not None
                    bwrap.hand_over(work_dir / sandbox.ROOT_DIR, self.sandbox_options.user)
                if plan.placeholders:
                    write_placeholders(work_dir, plan.placeholders)
                argv = plan.argv
                if self._wrapper.writes_launch_record:  # before the step runs
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
            pids = [posix_spawn_wrapper(argv, plan.env, work_dir) for _, _, work_dir, plan, argv in ready]
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

    def _spawner(self) -> Spawner | None:
        """Who starts a wave's wrappers: `kfp-step --spawner`, or its Python twin `pyspawner`, started on
        first use; None (the shell wrapper): `posix_spawn`, one by one."""
        if self._wrapper.spawner_command is None:
            return None
        if self._spawner_instance is None:
            self._spawner_instance = Spawner(self._wrapper.spawner_command)
        return self._spawner_instance

    def _started(self, spec: StepSpec, on_exit: OnExit, work_dir: Path, pid: int) -> StepHandle:
        started_at = time.time()
        pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            pidfd = os.pidfd_open(pid)
        if not self._wrapper.writes_launch_record:
            write_launch_record(work_dir, pid, started_at)
        deadline = None
        if spec.deadline_seconds is not None:
            deadline = time.monotonic() + max(0.0, spec.deadline_seconds)
        handle = ProcessHandle(spec.key, pid, work_dir, started_at, child=True, pidfd=pidfd, deadline=deadline)
        self._reaper.watch(handle, on_exit)
        return handle

    # -- recovery (StepRecovery) --

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
        kill_reason = read_kill_reason(spec.work_dir)
        if kill_reason is not None:  # killed by the previous server; finish the job
            signal_group(pid, signal.SIGKILL)
        deadline = None
        if spec.deadline_seconds is not None:
            remaining = spec.deadline_seconds - (time.time() - record.started_at)
            deadline = time.monotonic() + max(0.0, remaining)
        handle = ProcessHandle(spec.key, pid, Path(spec.work_dir), record.started_at, child=False, pidfd=pidfd,
                               deadline=deadline, kill_reason=kill_reason, record=record)
        self._reaper.watch(handle, on_exit)
        return handle

    def mark_collected(self, spec: StepSpec) -> None:
        """The driver has taken this attempt's result: a later attempt in this directory starts afresh
        (`was_collected`). The records stay readable (`recorded_result`)."""
        launch_records.mark_collected(Path(spec.work_dir), spec.key)

    def was_collected(self, spec: StepSpec) -> bool:
        return launch_records.was_collected(spec.work_dir)

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
        remove_untouched_placeholders(Path(spec.work_dir))
        return step_result(read_exit_code(spec.work_dir), read_kill_reason(spec.work_dir))

    def _take_back(self, work_dir: Path) -> None:
        """After a sandboxed step: its tree is the server's again, with nothing in it pointing out (see
        `bwrap.take_back`), before anyone reads its outputs."""
        if self.isolation == sandbox.BWRAP:
            bwrap.take_back(work_dir / sandbox.ROOT_DIR)

    # -- stopping --

    def terminate(self, handle: StepHandle) -> None:
        """SIGTERM the step's process group, SIGKILL after `kill_grace_seconds`; returns at once."""
        assert isinstance(handle, ProcessHandle)
        self._reaper.kill(handle, TERMINATED)

    def is_alive(self, handle: StepHandle) -> bool:
        return not handle.done()
