"""A run's tasks as the v2beta1 API shows them (`run_details.task_details`), read from its node rows.

Every run, v1 (Argo) or KFP v2 (IR), has one row per node in Argo's shape (id, displayName, type, phase,
boundaryID, children, startedAt, finishedAt, message, inputs/outputs); this module maps such a node to a
task and knows nothing of how the node was made, so the executor's two walks feed it alike.

- task_id is the node id; a Pod node's pod_name is its id too (as Argo names a step's pod after its node).
- parent_task_id is the node's boundary (the DAG it is a task of); an attempt of a Retry node has the
  Retry node for parent.
- child_tasks are the node's `children` (Argo: the tasks that run after it, or a group's members): a Pod
  child by pod_name, any other by task_id.
- inputs/outputs name the node's artifacts. There is no metadata store, so no artifact ids: each name maps
  to an empty list. Parameters are not artifacts and are not listed (the v1beta1 view of a run shows them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kfp_backend.services.run_states import (
    CODE_CANCELLED,
    CODE_UNKNOWN,
    RpcStatus,
    RuntimeState,
    StateChange,
    phase_state,
    rfc3339_seconds,
)

POD = "Pod"
RETRY = "Retry"


@dataclass(frozen=True)
class ChildTask:
    task_id: str = ""
    pod_name: str = ""


@dataclass
class TaskDetail:
    run_id: str
    task_id: str
    display_name: str
    create_time: int | None
    start_time: int | None
    end_time: int | None
    state: RuntimeState
    error: RpcStatus | None
    parent_task_id: str
    pod_name: str
    child_tasks: list[ChildTask] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # artifact names
    outputs: list[str] = field(default_factory=list)
    state_history: list[StateChange] = field(default_factory=list)


def task_details(
    run_id: str, nodes: Iterable[tuple[str, Mapping[str, Any]]], *, terminated: bool = False
) -> list[TaskDetail]:
    """The tasks of a run from its (node id, node data) pairs, in node-id order. `terminated`: a terminate was
    asked for, so failed nodes count as CANCELED (the executor fails what it stops)."""
    ordered = sorted(((node_id, data) for node_id, data in nodes), key=lambda pair: pair[0])
    types = {node_id: str(data.get("type", "")) for node_id, data in ordered}
    retry_parent: dict[str, str] = {}
    for node_id, data in ordered:
        if types[node_id] == RETRY:
            for child in _strings(data.get("children")):
                retry_parent[child] = node_id
    return [_task(run_id, node_id, data, types, retry_parent, terminated) for node_id, data in ordered]


def _task(
    run_id: str, node_id: str, data: Mapping[str, Any], types: Mapping[str, str], retry_parent: Mapping[str, str],
    terminated: bool,
) -> TaskDetail:
    phase = str(data.get("phase", ""))
    state = phase_state(phase, terminated=terminated)
    started, finished = rfc3339_seconds(data.get("startedAt")), rfc3339_seconds(data.get("finishedAt"))
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    error = None
    if state in (RuntimeState.FAILED, RuntimeState.CANCELED):
        code = CODE_CANCELLED if state == RuntimeState.CANCELED else CODE_UNKNOWN
        error = RpcStatus(code, message or f"Task {phase}.")
    history = _history(state, started, finished, error)
    children = [
        ChildTask(pod_name=child) if types.get(child) == POD else ChildTask(task_id=child)
        for child in _strings(data.get("children"))
    ]
    boundary = data.get("boundaryID") if isinstance(data.get("boundaryID"), str) else ""
    return TaskDetail(
        run_id=run_id,
        task_id=node_id,
        display_name=str(data.get("displayName") or data.get("name") or node_id),
        create_time=started,
        start_time=started,
        end_time=finished,
        state=state,
        error=error,
        parent_task_id=retry_parent.get(node_id, boundary),
        pod_name=node_id if types.get(node_id) == POD else "",
        child_tasks=children,
        inputs=_artifact_names(data.get("inputs")),
        outputs=_artifact_names(data.get("outputs")),
        state_history=history,
    )


def _history(
    state: RuntimeState, started: int | None, finished: int | None, error: RpcStatus | None
) -> list[StateChange]:
    """What the node's times tell: it ran from its start (a skipped node never ran) and ended in `state`."""
    if finished is None:
        return [StateChange(state, started)] if started is not None else []
    if state == RuntimeState.SKIPPED or started is None:
        return [StateChange(state, finished, error)]
    return [StateChange(RuntimeState.RUNNING, started), StateChange(state, finished, error)]


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _artifact_names(section: Any) -> list[str]:
    artifacts = section.get("artifacts") if isinstance(section, dict) else None
    if not isinstance(artifacts, list):
        return []
    return [a["name"] for a in artifacts if isinstance(a, dict) and isinstance(a.get("name"), str)]
