"""The node table every walk keeps: a run's nodes in Argo's shape, the changes to write, the run's phase.

`graph_walk.RunOperator` (Argo workflows) and `ir_walk.PipelineRunOperator` (KFP v2 pipeline specs) both
build on it, so the driver, the store, restart adoption, terminate and retry see the same rows whatever
the run executes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from kfp_backend.store.states import (
    ERROR,
    FAILED,
    FULFILLED_NODE_PHASES,
    PENDING,
    RUNNING,
    SUCCEEDED,
)
from kfp_backend.workflow import expressions as ex

DEADLINE_MESSAGE = "Step exceeded its deadline"
OMITTED_MESSAGE = "omitted: depends condition not met"
# A Pod node's private key: why its host started it again (its process was lost); kept in its message.
RELAUNCH_NOTE = "_relaunched"
WORKFLOW_NAMESPACE = "kubeflow"


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_fulfilled(node: Mapping[str, Any] | None) -> bool:
    return node is not None and node.get("phase") in FULFILLED_NODE_PHASES


class StepHost(Protocol):
    """What the operator needs from the driver that owns it."""

    def start_pod(self, node: dict, template: Any) -> str | None:
        """Start the Pod node's process now (`template`: what it runs, of the walk's own kind); None if
        started, else why not ("" = no free slot yet)."""

    def kill_pod(self, node: dict) -> None:
        """Kill a running Pod node's process; its exit is reported through `pod_exited` later."""


@dataclass
class Inputs:
    parameters: dict[str, str] = field(default_factory=dict)
    # name -> {"name", "s3": {"key"}} or {"name", "raw": {"data"}}
    artifacts: dict[str, dict] = field(default_factory=dict)


class NodeTable:
    """A run's nodes (Argo's shape, keyed by name), what changed since the last flush, and the run's phase:
    what every walk shares with the driver (`take_changes`, `workflow_status`, `pod_exited`, stop, restart)."""

    def __init__(
        self,
        *,
        workflow_name: str,
        run_id: str,
        nodes: list[dict],
        host: StepHost,
        started_at: float,
        clock: Any = time.time,
    ) -> None:
        self.workflow_name = workflow_name
        self.run_id = run_id
        self.host = host
        self.clock = clock
        self.started_at = started_at
        self.nodes: dict[str, dict] = {node["name"]: node for node in nodes}
        self.inserted: dict[str, dict] = {}  # node id -> node created since the last flush
        self.updated: dict[str, dict] = {}
        self.stop_reason: str | None = None  # "terminate" or "deadline": no new steps outside the exit handler
        self.next_wake: float | None = None
        self.finished = False
        self.phase = RUNNING
        self.message = ""
        self._running_pods = sum(1 for n in nodes if n.get("type") == "Pod" and n.get("phase") == RUNNING)

    # ----------------------------------------------------------------- public

    def request_stop(self, reason: str) -> None:
        """Terminate or deadline: running steps are killed, pending ones fail, the exit handler still runs."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        for node in list(self.nodes.values()):
            if node.get("type") != "Pod" or node.get("_exit_handler"):
                continue
            if node.get("phase") == RUNNING:
                node["_stopping"] = True
                self.host.kill_pod(node)
            elif node.get("phase") == PENDING:
                self._finish(node, FAILED, DEADLINE_MESSAGE)

    def pod_exited(self, node_name: str, phase: str, message: str, outputs: dict | None) -> None:
        node = self.nodes.get(node_name)
        if node is None or is_fulfilled(node):
            return
        if node.get("phase") == RUNNING:
            self._running_pods -= 1
        if outputs:
            node["outputs"] = outputs
        self._finish(node, phase, message)

    def take_changes(self) -> tuple[list[dict], list[dict]]:
        inserted, updated = list(self.inserted.values()), [
            node for node_id, node in self.updated.items() if node_id not in self.inserted
        ]
        self.inserted, self.updated = {}, {}
        return inserted, updated

    def workflow_status(self) -> dict:
        pods = [n for n in self.nodes.values() if n.get("type") == "Pod"]
        done = sum(1 for n in pods if n.get("phase") == SUCCEEDED)
        status: dict[str, Any] = {
            "phase": self.phase,
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.clock()) if self.finished else None,
            "progress": f"{done}/{len(pods)}",
        }
        if self.message:
            status["message"] = self.message
        return status

    def running_pods(self) -> list[dict]:
        return [n for n in self.nodes.values() if n.get("type") == "Pod" and n.get("phase") == RUNNING]

    def pod_lost(self, node: dict) -> None:
        """A running Pod node whose process is gone without a trace: Pending again, to be started again."""
        node["phase"] = PENDING
        self._running_pods -= 1
        self._touch(node)

    # ----------------------------------------------------------------- nodes

    def _node_id(self, name: str) -> str:
        return ex.node_id(self.workflow_name, name)

    def _create(
        self, name: str, *, node_type: str, template: str, display: str, boundary: str, phase: str,
        inputs: Inputs | None = None, message: str = "", parents: tuple[str, ...] = (),
    ) -> dict:
        now = self.clock()
        node: dict[str, Any] = {
            "id": self._node_id(name),
            "name": name,
            "displayName": display,
            "type": node_type,
            "templateName": template,
            "templateScope": f"local/{self.workflow_name}",
            "phase": phase,
            "startedAt": rfc3339(now),
            "_started": now,
        }
        if boundary:
            node["boundaryID"] = boundary
        if message:
            node["message"] = message
        if inputs is not None and (inputs.parameters or inputs.artifacts):
            rendered: dict[str, Any] = {}
            if inputs.parameters:
                rendered["parameters"] = [{"name": k, "value": v} for k, v in inputs.parameters.items()]
            if inputs.artifacts:
                rendered["artifacts"] = list(inputs.artifacts.values())
            node["inputs"] = rendered
        if phase in FULFILLED_NODE_PHASES:
            node["finishedAt"] = node["startedAt"]
            node["_finished"] = now
        self.nodes[name] = node
        self.inserted[node["id"]] = node
        for parent_name in parents:
            parent = self.nodes.get(parent_name)
            if parent is not None and node["id"] not in parent.setdefault("children", []):
                parent["children"].append(node["id"])
                self._touch(parent)
        return node

    def _launch(self, node: dict, template: Any) -> None:
        """Ask the host to start a Pending Pod node: Running once started, Error when it cannot start, still
        Pending when no slot is free."""
        problem = self.host.start_pod(node, template)
        if problem is None:
            node["phase"] = RUNNING
            node["startedAt"] = rfc3339(self.clock())
            node["_started"] = self.clock()
            self._running_pods += 1
            self._touch(node)
        elif problem:
            self._finish(node, ERROR, problem)

    def _touch(self, node: dict) -> None:
        self.updated[node["id"]] = node

    def _finish(self, node: dict, phase: str, message: str = "") -> None:
        now = self.clock()
        node["phase"] = phase
        note = node.get(RELAUNCH_NOTE)
        if note:  # a step started again after its process was lost keeps saying so
            message = f"{message} ({note})" if message else note
        if message:
            node["message"] = message
        else:
            node.pop("message", None)
        node["finishedAt"] = rfc3339(now)
        node["_finished"] = now
        self._touch(node)

    def _outbound(self, name: str) -> str:
        """The node a dependent of node `name` is a child of: for a Retry node its last attempt, so that
        a Retry node's children are exactly its attempts (Argo's getOutboundNodes); else the node itself."""
        node = self.nodes.get(name)
        attempts = node.get("_attempts") if node is not None and node.get("type") == "Retry" else None
        if attempts and attempts[-1] in self.nodes:
            return attempts[-1]
        return name

    def _waiting_for_backoff(self, last_attempt: dict, delay: float) -> bool:
        """Whether a retried step's backoff after its last attempt still runs (the walk wakes when it ends)."""
        ready_at = last_attempt.get("_finished", 0.0) + delay
        if delay > 0 and self.clock() < ready_at:
            self._wake_at(ready_at)
            return True
        return False

    def _add_attempt(self, node: dict, name: str, index: int) -> str:
        """Records attempt `index` of the Retry node `node`, named `name(index)` as Argo names them."""
        attempt_name = f"{name}({index})"
        node.setdefault("_attempts", []).append(attempt_name)
        self._touch(node)
        return attempt_name

    def _wake_at(self, when: float) -> None:
        self.next_wake = when if self.next_wake is None else min(self.next_wake, when)

