"""What is posted to a run driver's queue (`RunDriver.post`): a step's exit, and what its executor (or
its progress writer) asks of it. Handled on the driver's thread, in the order posted."""

from __future__ import annotations

from dataclasses import dataclass

from kfp_backend.executor.launcher import StepResult


@dataclass(frozen=True)
class StepExited:
    node_name: str
    result: StepResult


@dataclass(frozen=True)
class StepPlaced:
    """A remote step was taken by a worker: its node's hostNodeName."""

    node_name: str
    host: str


@dataclass(frozen=True)
class Wake:
    """Look again: a step slot was freed, or the progress writer stopped (an error, or the run was lost)."""


@dataclass(frozen=True)
class Terminate:
    """The run is to be terminated: its running steps are killed, the exit handler still runs."""


@dataclass(frozen=True)
class RunDeleted:
    """The run was deleted: its steps are killed, then its files removed."""


@dataclass(frozen=True)
class Shutdown:
    """The process is stopping: leave the steps running; the next executor adopts them."""


DriverMessage = StepExited | StepPlaced | Wake | Terminate | RunDeleted | Shutdown
