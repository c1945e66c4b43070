"""A run's state as the v2beta1 API names it (RuntimeState), derived from what the run row and its stored
workflow status hold: no state is stored twice.

The run row keeps the Argo-shaped status (phase, or "Terminating" while a terminate is pending) and whether a
terminate was asked for; a terminated run ends Failed (its v1 view) with the request flag still set, which is
what tells CANCELED from FAILED. The history is rebuilt from the times the rows keep (created, started,
finished); the moment a terminate was asked is not stored, so that entry has no time.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kfp_backend.store.models import Run
from kfp_backend.store.states import (
    ERROR,
    FAILED,
    NOT_STARTED,
    OMITTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TERMINATING,
)

# google.rpc.Code of a failed and of a canceled run's error.
CODE_UNKNOWN = 2
CODE_CANCELLED = 1


class RuntimeState(enum.IntEnum):
    RUNTIME_STATE_UNSPECIFIED = 0
    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    SKIPPED = 4
    FAILED = 5
    CANCELING = 6
    CANCELED = 7
    PAUSED = 8


# Stored run status / node phase -> RuntimeState (a terminated failure is CANCELED: see state_of_run).
_STATES = {
    NOT_STARTED: RuntimeState.PENDING,
    PENDING: RuntimeState.PENDING,
    RUNNING: RuntimeState.RUNNING,
    TERMINATING: RuntimeState.CANCELING,
    SUCCEEDED: RuntimeState.SUCCEEDED,
    SKIPPED: RuntimeState.SKIPPED,
    OMITTED: RuntimeState.SKIPPED,  # left out because a dependency failed: it never ran
    FAILED: RuntimeState.FAILED,
    ERROR: RuntimeState.FAILED,
}
_FINAL = frozenset({RuntimeState.SUCCEEDED, RuntimeState.SKIPPED, RuntimeState.FAILED, RuntimeState.CANCELED})


@dataclass(frozen=True)
class RpcStatus:
    """A google.rpc.Status: why a run or task failed."""

    code: int
    message: str


@dataclass(frozen=True)
class StateChange:
    """One entry of a state history; `at` is None when the moment is not stored."""

    state: RuntimeState
    at: int | None
    error: RpcStatus | None = None


@dataclass(frozen=True)
class RunState:
    state: RuntimeState
    history: list[StateChange]
    error: RpcStatus | None


def phase_state(phase: str, *, terminated: bool = False) -> RuntimeState:
    """The RuntimeState of a stored run status or node phase; a failure under a terminate is CANCELED."""
    state = _STATES.get(phase, RuntimeState.RUNTIME_STATE_UNSPECIFIED)
    if terminated and state == RuntimeState.FAILED:
        return RuntimeState.CANCELED
    return state


def rfc3339_seconds(text: Any) -> int | None:
    """Whole seconds of an RFC 3339 time as the executor writes them (`...Z`); None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        return None
    return int(moment.timestamp()) if moment.tzinfo is not None else None


def state_of_run(run: Run, workflow_status: Mapping[str, Any] | None) -> RunState:
    """The run's RuntimeState, its history and its error. `workflow_status` is the stored workflow status
    (phase, startedAt, finishedAt, message); without it the history lacks the start and the error its text."""
    status = workflow_status or {}
    state = phase_state(run.status, terminated=bool(run.terminate_requested))
    message = status.get("message") if isinstance(status.get("message"), str) else ""
    error = None
    if state == RuntimeState.FAILED:
        error = RpcStatus(CODE_UNKNOWN, message or f"Run {run.status or 'failed'}.")
    elif state == RuntimeState.CANCELED:
        error = RpcStatus(CODE_CANCELLED, message or "Run canceled.")
    history = [StateChange(RuntimeState.PENDING, run.created_at)]
    started = rfc3339_seconds(status.get("startedAt"))
    if state != RuntimeState.PENDING and (started is not None or state == RuntimeState.RUNNING):
        history.append(StateChange(RuntimeState.RUNNING, started))
    if state == RuntimeState.CANCELING or (state == RuntimeState.CANCELED and run.terminate_requested):
        history.append(StateChange(RuntimeState.CANCELING, None))  # when asked: not stored
    if state in _FINAL:
        history.append(StateChange(state, run.finished_at or rfc3339_seconds(status.get("finishedAt")), error))
    return RunState(state, history, error)
