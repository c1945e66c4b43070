"""The step launcher interface: what a run driver needs to run one attempt of a container template.

A launcher starts steps (a whole wave at once), stops one, and says where a step's files are. Launchers
whose steps outlive the server process that started them also implement `StepRecovery`, so that a later
process takes them back. `process_launcher.LocalProcessLauncher` runs steps as host process groups.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
TERMINATED_MESSAGE = "Stopped with strategy 'Terminate'"
VANISHED_MESSAGE = "pod deleted"


@dataclass(frozen=True)
class StepIO:
    """What moves between the artifact store and a step's in-step paths, done by whoever runs the step (the
    driver beside a local launcher, the worker for a remote one: see `step_io`), so nothing is copied twice."""

    inputs: tuple[tuple[str, str], ...] = ()  # (store key, in-step path) unpacked before the step starts
    raw_inputs: tuple[tuple[str, str], ...] = ()  # (in-step path, text) written before the step starts
    directories: tuple[str, ...] = ()  # in-step directories made before the step starts
    outputs: tuple[tuple[str, str], ...] = ()  # (in-step path, store key) archived after the step, when present
    files: tuple[str, ...] = ()  # small in-step files the driver reads after the step (output parameters...)

    def to_json(self) -> dict:
        return {"inputs": self.inputs, "raw_inputs": self.raw_inputs, "directories": self.directories,
                "outputs": self.outputs, "files": self.files}

    @staticmethod
    def from_json(raw: dict) -> StepIO:
        def pairs(name: str) -> tuple[tuple[str, str], ...]:
            return tuple((str(a), str(b)) for a, b in raw.get(name) or ())

        return StepIO(inputs=pairs("inputs"), raw_inputs=pairs("raw_inputs"),
                      directories=tuple(str(d) for d in raw.get("directories") or ()), outputs=pairs("outputs"),
                      files=tuple(str(f) for f in raw.get("files") or ()))


@dataclass(frozen=True)
class StepSpec:
    key: str  # unique per attempt, e.g. "<run_id>/<node_id>"; safe for logs
    argv: list[str]  # command + args after placeholder substitution (in-step paths)
    env: dict[str, str]  # extra env vars on top of PATH, HOME, LANG, PYTHONUNBUFFERED
    work_dir: Path  # the attempt's own directory on the host (created by the launcher)
    private_paths: list[str]  # absolute in-step paths declared by the template (inputs and outputs)
    deadline_seconds: float | None  # kill the step after this long -> result.deadline_exceeded
    working_dir: str | None = None  # in-step cwd (container workingDir); default: a private dir
    # Host directories the step reads at the same path but must not change (its prepared Python
    # environment): the multi-user sandbox binds them read-only, even under a hidden path.
    read_only_paths: list[str] = field(default_factory=list)
    io: StepIO = field(default_factory=StepIO)  # the step's artifact transfers and the files read after it
    queue: str = ""  # a remote launcher's queue for the step ("": its default)
    # A KFP v2 step whose environment (StepEnvironment) is prepared where it runs: by a remote worker.
    prepare_environment: bool = False


@dataclass(frozen=True)
class CollectedOutputs:
    """What a remote step left, gathered where it ran: the declared small files' bytes (in-step path ->
    bytes, those that existed) and the output paths that existed, already archived under their keys."""

    files: dict[str, bytes]
    stored: frozenset[str]


@dataclass(frozen=True)
class StepResult:
    exit_code: int | None  # None when killed by a signal or unknown
    deadline_exceeded: bool
    terminated: bool  # killed by terminate()
    vanished: bool = False  # an adopted/recorded step that was gone with no recorded exit code
    message: str = ""  # Argo-like: "Error (exit code 1)", DEADLINE_MESSAGE, ...
    host: str = ""  # where it ran, when not on the driver's host (a remote worker's name)
    collected: CollectedOutputs | None = None  # a remote step's outputs; None: read them at `host_path`

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not (self.deadline_exceeded or self.terminated or self.vanished)


class StepHandle:
    """One launched (or adopted) step. `pid` identifies its process (with host processes: the wrapper's
    pid, which is also its process group id)."""

    def __init__(self, key: str, pid: int, work_dir: Path, started_at: float, adopted: bool) -> None:
        self.key = key
        self.pid = pid
        self.work_dir = work_dir
        self.started_at = started_at  # wall clock (time.time()) of the launch
        self.adopted = adopted
        self._done = threading.Event()
        self._result: StepResult | None = None
        # A remote launcher calls it (from any thread) with the worker's name once a worker has taken the step.
        self.on_placed: Callable[[str], None] | None = None

    def done(self) -> bool:
        return self._done.is_set()

    @property
    def result(self) -> StepResult | None:
        return self._result

    def wait(self, timeout: float | None = None) -> StepResult | None:
        """The result once `on_exit` has been called, or None on timeout."""
        self._done.wait(timeout)
        return self._result

    def finish(self, result: StepResult) -> None:
        """Called once by the launcher when the step has ended, before its `on_exit`."""
        self._result = result
        self._done.set()

    def __repr__(self) -> str:
        return f"StepHandle(key={self.key!r}, pid={self.pid}, adopted={self.adopted})"


OnExit = Callable[[StepResult], None]


class StepLauncher(Protocol):
    """The core a driver needs. `on_exit` is called once per started step, from any thread, when it ends."""

    def start_many(self, steps: list[tuple[StepSpec, OnExit]]) -> list[StepHandle | Exception]:
        """Start a wave of steps: each one's handle, or the exception that kept it from starting."""

    def terminate(self, handle: StepHandle) -> None:
        """Stop the step (its exit is reported through its `on_exit`); returns at once."""

    def host_path(self, spec: StepSpec, in_step_path: str) -> Path:
        """Where a path the step sees (an input or output) is on the server's side."""

    def log_path(self, spec: StepSpec) -> Path:
        """The step's log (its stdout and stderr)."""


@runtime_checkable
class StepRecovery(Protocol):
    """Optional: steps outlive the server process that launched them, and a later process takes them back
    from what the launch left in the step's directory (`StepSpec.work_dir`)."""

    def launched_pid(self, spec: StepSpec) -> int | None:
        """The pid of the launch recorded for this step, if any (running or not)."""

    def adopt(self, spec: StepSpec, pid: int, on_exit: OnExit) -> StepHandle | None:
        """Re-attach to the running step launched as `pid`; None when it is not running."""

    def recorded_result(self, spec: StepSpec) -> StepResult | None:
        """How the step ended, from its records alone; None if it never started or is still running."""

    def mark_collected(self, spec: StepSpec) -> None:
        """The driver has taken the result: a later attempt in this directory starts afresh."""

    def was_collected(self, spec: StepSpec) -> bool: ...


@runtime_checkable
class RemoteSteps(Protocol):
    """Optional: the steps run on other machines. Their inputs and outputs are moved there (`StepSpec.io`),
    their results carry `CollectedOutputs`, and their logs are in the artifact store under `log_key`,
    uploaded while they run. Such a launcher's recovery is not tied to this host."""

    def log_key(self, spec: StepSpec) -> str: ...
