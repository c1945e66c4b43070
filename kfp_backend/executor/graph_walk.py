"""The graph walk: Argo's workflow semantics over a run's node table (`node_table`), with no I/O of its own.

`RunOperator.reconcile()` is idempotent: from the current nodes (loaded from the database after a
restart, or kept in memory) it creates the nodes that may be created now, asks its host to start
the Pod nodes it may start, and settles the phases of groups whose children are all done. Node names
are deterministic (`P.T`, `P.T(i:desc)`, `P.T(n)`), so a reconcile after a restart finds the nodes a
previous pass created instead of creating them twice.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from kfp_backend.executor.node_table import (
    DEADLINE_MESSAGE,
    OMITTED_MESSAGE,
    RELAUNCH_NOTE,
    WORKFLOW_NAMESPACE,
    Inputs,
    NodeTable,
    StepHost,
    is_fulfilled,
    rfc3339,
)
from kfp_backend.store.states import (
    ERROR,
    FAILED,
    FAILED_NODE_PHASES,
    OMITTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
)
from kfp_backend.workflow import expressions as ex
from kfp_backend.workflow.graph import ArtifactDecl, DagTask, Template, WorkflowGraph


class RunOperator(NodeTable):
    """Argo's semantics over the node table."""

    def __init__(
        self,
        graph: WorkflowGraph,
        *,
        workflow_name: str,
        run_id: str,
        nodes: list[dict],
        host: StepHost,
        started_at: float,
        clock: Any = time.time,
    ) -> None:
        super().__init__(
            workflow_name=workflow_name, run_id=run_id, nodes=nodes, host=host, started_at=started_at, clock=clock
        )
        self.graph = graph
        self._in_exit_handler = False
        self._scope_cache: tuple[bool, dict[str, str]] | None = None

    def reconcile(self) -> None:
        self.next_wake = None
        self._scope_cache = None
        now = self.clock()
        deadline = self.graph.active_deadline_seconds
        if deadline is not None and self.stop_reason is None and now >= self.started_at + deadline:
            self.request_stop("deadline")
        elif deadline is not None and self.stop_reason is None:
            self._wake_at(self.started_at + deadline)
        root = self._execute(self.workflow_name, self.graph.entrypoint, self._workflow_inputs(), "", self.workflow_name)
        if not is_fulfilled(root):
            return
        exit_node = None
        if self.graph.on_exit:
            self._in_exit_handler = True
            try:
                # As in Argo, the exit handler gets the workflow's arguments (spec.arguments), so an exit op
                # that takes a pipeline parameter receives it.
                exit_node = self._execute(
                    f"{self.workflow_name}.onExit", self.graph.on_exit, self._workflow_inputs(), "",
                    self.graph.on_exit, exit_handler=True,
                )
            finally:
                self._in_exit_handler = False
            if not is_fulfilled(exit_node):
                return
        self._settle_workflow(root, exit_node)

    # ----------------------------------------------------------------- execution

    def _workflow_inputs(self) -> Inputs:
        inputs = Inputs()
        for parameter in self.graph.arguments:
            if parameter.value is not None:
                inputs.parameters[parameter.name] = parameter.value
        scope = self.workflow_scope()
        for artifact in self.graph.argument_artifacts:
            if artifact.raw is not None:
                inputs.artifacts[artifact.name] = {
                    "name": artifact.name, "raw": {"data": ex.substitute(artifact.raw, scope)},
                }
        return inputs

    def workflow_scope(self) -> dict[str, str]:
        """`workflow.*` variables. Computed once per pass (and again once the root is done): big loops
        ask for it per task."""
        root = self.nodes.get(self.workflow_name)
        key = is_fulfilled(root)
        if self._scope_cache is not None and self._scope_cache[0] == key:
            return dict(self._scope_cache[1])
        scope = self._compute_workflow_scope()
        self._scope_cache = (key, scope)
        return dict(scope)

    def _compute_workflow_scope(self) -> dict[str, str]:
        scope = {
            "workflow.name": self.workflow_name,
            "workflow.namespace": WORKFLOW_NAMESPACE,
            "workflow.uid": self.run_id,
            "workflow.serviceAccountName": "pipeline-runner",
            "workflow.creationTimestamp": rfc3339(self.started_at),
        }
        for parameter in self.graph.arguments:
            if parameter.value is not None:
                scope[f"workflow.parameters.{parameter.name}"] = parameter.value
        root = self.nodes.get(self.workflow_name)
        if is_fulfilled(root):
            assert root is not None
            scope["workflow.status"] = _workflow_phase(root["phase"])
            scope["workflow.failures"] = json.dumps([
                {
                    "displayName": n.get("displayName"), "message": n.get("message", ""),
                    "templateName": n.get("templateName"), "phase": n.get("phase"),
                    "podName": n.get("id"), "finishedAt": n.get("finishedAt"),
                }
                for n in self.nodes.values()
                if n.get("type") == "Pod" and n.get("phase") in FAILED_NODE_PHASES
            ], separators=(",", ":"))
        return scope

    def _execute(
        self, name: str, template_name: str, inputs: Inputs, boundary: str, display: str,
        *, parents: tuple[str, ...] = (), exit_handler: bool = False,
    ) -> dict:
        node = self.nodes.get(name)
        if is_fulfilled(node):
            assert node is not None
            return node
        template = self.graph.templates[template_name]
        if node is None:
            resolved = self._bind_inputs(template, inputs)
            if isinstance(resolved, str):
                return self._create(
                    name, node_type="Skipped" if template.kind == "dag" else "Pod", template=template_name,
                    display=display, boundary=boundary, phase=ERROR, message=resolved, parents=parents,
                )
            inputs = resolved
        else:
            inputs = _stored_inputs(node)
        if template.kind == "dag":
            return self._execute_dag(name, template, inputs, boundary, display, parents)
        if template.retry is not None:
            return self._execute_retry(name, template, inputs, boundary, display, parents, exit_handler)
        return self._execute_pod(name, template, inputs, boundary, display, parents, exit_handler)

    def _bind_inputs(self, template: Template, given: Inputs) -> Inputs | str:
        bound = Inputs()
        for decl in template.inputs_parameters:
            if decl.name in given.parameters:
                bound.parameters[decl.name] = given.parameters[decl.name]
            elif decl.value is not None:
                bound.parameters[decl.name] = decl.value
            else:
                return f"inputs.parameters.{decl.name} was not supplied"
        for decl in template.inputs_artifacts:
            if decl.name in given.artifacts:
                bound.artifacts[decl.name] = {**given.artifacts[decl.name], "path": decl.path}
            elif decl.raw is not None:
                bound.artifacts[decl.name] = {"name": decl.name, "path": decl.path, "raw": {"data": decl.raw}}
            elif not decl.optional:
                return f"inputs.artifacts.{decl.name} was not supplied"
        return bound

    # Pods ------------------------------------------------------------------

    def _execute_pod(
        self, name: str, template: Template, inputs: Inputs, boundary: str, display: str,
        parents: tuple[str, ...], exit_handler: bool,
    ) -> dict:
        exit_handler = exit_handler or self._in_exit_handler
        node = self.nodes.get(name)
        if node is None:
            node = self._create(
                name, node_type="Pod", template=template.name, display=display, boundary=boundary,
                phase=PENDING, inputs=inputs, parents=parents,
            )
            if exit_handler:
                node["_exit_handler"] = True
        if node["phase"] != PENDING:
            return node
        if self.stop_reason is not None and not exit_handler:
            self._finish(node, FAILED, DEADLINE_MESSAGE)
            return node
        if self.graph.parallelism and self._running_pods >= self.graph.parallelism:
            return node
        self._launch(node, template)
        return node

    def _execute_retry(
        self, name: str, template: Template, inputs: Inputs, boundary: str, display: str,
        parents: tuple[str, ...], exit_handler: bool,
    ) -> dict:
        strategy = template.retry
        assert strategy is not None
        node = self.nodes.get(name)
        if node is None:
            node = self._create(
                name, node_type="Retry", template=template.name, display=display, boundary=boundary,
                phase=RUNNING, inputs=inputs, parents=parents,
            )
        attempts = [self.nodes[child] for child in node.get("_attempts", []) if child in self.nodes]
        if attempts and not is_fulfilled(attempts[-1]):
            last = attempts[-1]
            self._execute_pod(last["name"], template, inputs, boundary, last["displayName"], (), exit_handler)
            return node
        if attempts:
            last = attempts[-1]
            if last["phase"] == SUCCEEDED:
                if "outputs" in last:
                    node["outputs"] = last["outputs"]
                self._finish(node, SUCCEEDED)
                return node
            may_retry = _policy_allows(strategy.policy, last["phase"], last.get("message", ""))
            within_limit = strategy.limit is None or len(attempts) <= strategy.limit
            stopping = self.stop_reason is not None and not (exit_handler or self._in_exit_handler)
            if not (may_retry and within_limit) or stopping:
                message = "No more retries left" if may_retry and not stopping else last.get("message", "")
                self._finish(node, last["phase"], message)
                return node
            delay = strategy.backoff_seconds * strategy.backoff_factor ** (len(attempts) - 1)
            limit = strategy.backoff_max_seconds
            if limit is not None and self.clock() - node["_started"] > limit:
                self._finish(node, last["phase"], "Max duration limit exceeded")
                return node
            if self._waiting_for_backoff(last, delay):
                return node
        index = len(attempts)
        attempt_name = self._add_attempt(node, name, index)
        self._execute_pod(attempt_name, template, inputs, boundary, f"{display}({index})", (name,), exit_handler)
        return node

    # DAGs ------------------------------------------------------------------

    def _execute_dag(
        self, name: str, template: Template, inputs: Inputs, boundary: str, display: str, parents: tuple[str, ...]
    ) -> dict:
        node = self.nodes.get(name)
        if node is None:
            node = self._create(
                name, node_type="DAG", template=template.name, display=display, boundary=boundary,
                phase=RUNNING, inputs=inputs, parents=parents,
            )
        all_done = True
        # The tasks' scope, built once per pass when a task first needs it, then kept up to date with the
        # tasks of this pass (no other task of this DAG changes during the pass): the scope a task sees
        # holds the outputs of the tasks done so far in this pass.
        dag_scope: tuple[dict[str, str], dict[str, dict]] | None = None
        for task_name in template.task_order():
            task = template.tasks[task_name]
            task_node_name = f"{name}.{task_name}"
            existing = self.nodes.get(task_node_name)
            if is_fulfilled(existing):
                continue
            if existing is not None and existing.get("type") == "Pod" and existing.get("phase") == RUNNING:
                all_done = False  # a step under way: nothing to do for it until it exits
                continue
            dependencies = [self.nodes.get(f"{name}.{dep}") for dep in task.dependencies]
            if not all(is_fulfilled(dep) for dep in dependencies):
                all_done = False
                continue
            # As Argo, a task hangs off its dependencies' outbound nodes (a Retry node's last attempt).
            dep_names = tuple(self._outbound(f"{name}.{dep}") for dep in task.dependencies) or (name,)
            if existing is None and any(dep["phase"] in FAILED_NODE_PHASES | {OMITTED} for dep in dependencies if dep):
                omitted = self._create(
                    task_node_name, node_type="Skipped", template=task.template, display=task_name,
                    boundary=node["id"], phase=OMITTED, message=OMITTED_MESSAGE, parents=dep_names,
                )
                if dag_scope is not None:
                    _add_task_to_scope(task_name, omitted, *dag_scope)
                continue
            if dag_scope is None:
                dag_scope = self._dag_scope(name, template, inputs)
            task_node = self._execute_task(task_node_name, task, *dag_scope, node["id"], dep_names)
            _add_task_to_scope(task_name, task_node, *dag_scope)
            if not is_fulfilled(task_node):
                all_done = False
        if all_done:
            self._settle_dag(node, name, template, inputs)
        return node

    def _dag_scope(self, name: str, template: Template, inputs: Inputs) -> tuple[dict[str, str], dict[str, dict]]:
        scope = self.workflow_scope()
        artifacts: dict[str, dict] = {}
        for key, value in inputs.parameters.items():
            scope[f"inputs.parameters.{key}"] = value
        for key, value in inputs.artifacts.items():
            artifacts[f"inputs.artifacts.{key}"] = value
        for task_name in template.tasks:
            task_node = self.nodes.get(f"{name}.{task_name}")
            if task_node is not None:
                _add_task_to_scope(task_name, task_node, scope, artifacts)
        return scope, artifacts

    def _execute_task(
        self, task_node_name: str, task: DagTask, scope: dict[str, str], artifacts: dict[str, dict],
        boundary: str, parents: tuple[str, ...],
    ) -> dict:
        existing = self.nodes.get(task_node_name)
        if existing is None and task.when:
            try:
                expression = ex.substitute(task.when, scope)
            except ex.UnresolvedPlaceholder as exc:
                return self._create_error(task_node_name, task, boundary, parents, f"Unable to resolve: {exc}")
            try:
                if not ex.evaluate_when(expression):
                    return self._create(
                        task_node_name, node_type="Skipped", template=task.template, display=task.name,
                        boundary=boundary, phase=SKIPPED, message=f"when '{expression}' evaluated false",
                        parents=parents,
                    )
            except ex.WhenError as exc:
                return self._create_error(
                    task_node_name, task, boundary, parents, ex.when_error_message(expression, exc),
                )
        if task.with_items is not None or task.with_param is not None:
            return self._execute_loop(task_node_name, task, scope, artifacts, boundary, parents)
        if existing is None:
            arguments = self._resolve_arguments(task, scope, artifacts)
            if isinstance(arguments, str):
                return self._create_error(task_node_name, task, boundary, parents, arguments)
        else:
            arguments = Inputs()
        return self._execute(task_node_name, task.template, arguments, boundary, task.name, parents=parents)

    def _create_error(self, name: str, task: DagTask, boundary: str, parents: tuple[str, ...], message: str) -> dict:
        return self._create(
            name, node_type="Skipped", template=task.template, display=task.name, boundary=boundary,
            phase=ERROR, message=message, parents=parents,
        )

    def _resolve_arguments(
        self, task: DagTask, scope: Mapping[str, str], artifacts: Mapping[str, dict]
    ) -> Inputs | str:
        resolved = Inputs()
        try:
            for parameter in task.parameters:
                resolved.parameters[parameter.name] = ex.substitute(parameter.value or "", scope)
            for artifact in task.artifacts:
                found = _resolve_artifact(artifact, scope, artifacts)
                if found is None:
                    return f"Unable to resolve: {artifact.source}"
                resolved.artifacts[artifact.name] = found
        except ex.UnresolvedPlaceholder as exc:
            return f"Unable to resolve: {exc}"
        return resolved

    def _execute_loop(
        self, name: str, task: DagTask, scope: dict[str, str], artifacts: dict[str, dict],
        boundary: str, parents: tuple[str, ...],
    ) -> dict:
        node = self.nodes.get(name)
        if node is None:
            try:
                if task.with_items is not None:
                    items = list(task.with_items)
                else:
                    items = ex.loop_items_from_param(ex.substitute(task.with_param or "", scope))
            except ex.UnresolvedPlaceholder as exc:
                return self._create_error(name, task, boundary, parents, f"Unable to resolve: {exc}")
            except ex.LoopError as exc:
                return self._create_error(name, task, boundary, parents, str(exc))
            if not items:
                return self._create(
                    name, node_type="Skipped", template=task.template, display=task.name, boundary=boundary,
                    phase=SKIPPED, message="Skipped, empty params", parents=parents,
                )
            node = self._create(
                name, node_type="TaskGroup", template=task.template, display=task.name, boundary=boundary,
                phase=RUNNING, parents=parents,
            )
            node["_items"] = items
        items = node.get("_items", [])
        limit = self.graph.templates[task.template].parallelism or math.inf
        active = 0
        done = 0
        for index, item in enumerate(items):
            label = f"{task.name}({ex.item_description(index, item)})"
            child_name = f"{name}({ex.item_description(index, item)})"
            child = self.nodes.get(child_name)
            if child is None:
                if active >= limit:
                    continue
                item_scope = {**scope, **ex.item_scope(item)}
                arguments = self._resolve_arguments(task, item_scope, artifacts)
                if isinstance(arguments, str):
                    child = self._create_error(child_name, task, boundary, (name,), arguments)
                else:
                    child = self._execute(child_name, task.template, arguments, boundary, label, parents=(name,))
            elif not is_fulfilled(child):
                child = self._execute(child_name, task.template, Inputs(), boundary, label)
            if child["id"] not in node.setdefault("children", []):  # an iteration kept by a retry of the run
                node["children"].append(child["id"])
                self._touch(node)
            if is_fulfilled(child):
                done += 1
            else:
                active += 1
        if done == len(items):
            children = [self.nodes[f"{name}({ex.item_description(i, item)})"] for i, item in enumerate(items)]
            failed = [c for c in children if c["phase"] in FAILED_NODE_PHASES]
            if failed:
                self._finish(node, failed[-1]["phase"], f"child '{failed[-1]['id']}' failed")
            else:
                self._finish(node, SUCCEEDED)
        return node

    def _settle_dag(self, node: dict, name: str, template: Template, inputs: Inputs) -> None:
        failed = None
        for task_name in template.task_order():
            task_node = self.nodes.get(f"{name}.{task_name}")
            if task_node is not None and task_node.get("phase") in FAILED_NODE_PHASES:
                failed = task_node
                break
        if failed is not None:
            self._finish(node, failed["phase"], f"child '{failed['id']}' failed")
            return
        outputs = self._dag_outputs(name, template, inputs)
        if isinstance(outputs, str):
            self._finish(node, ERROR, outputs)
            return
        if outputs:
            node["outputs"] = outputs
        self._finish(node, SUCCEEDED)

    def _dag_outputs(self, name: str, template: Template, inputs: Inputs) -> dict | str:
        if not template.outputs_parameters and not template.outputs_artifacts:
            return {}
        scope, artifacts = self._dag_scope(name, template, inputs)
        outputs: dict[str, list] = {}
        try:
            for parameter in template.outputs_parameters:
                if parameter.expression is not None:
                    value = ex.substitute(parameter.expression, scope)
                    outputs.setdefault("parameters", []).append({"name": parameter.name, "value": value})
            for artifact in template.outputs_artifacts:
                found = _resolve_artifact(artifact, scope, artifacts)
                if found is not None:
                    outputs.setdefault("artifacts", []).append({**found, "name": artifact.name})
        except ex.UnresolvedPlaceholder as exc:
            return f"Unable to resolve: {exc}"
        return outputs

    def _settle_workflow(self, root: dict, exit_node: dict | None) -> None:
        phase = _workflow_phase(root["phase"])
        message = root.get("message", "") if phase in FAILED_NODE_PHASES else ""
        if exit_node is not None and phase == SUCCEEDED and exit_node["phase"] in FAILED_NODE_PHASES:
            phase = exit_node["phase"]
            message = exit_node.get("message", "")
        if self.stop_reason == "terminate" and phase != SUCCEEDED:
            message = "Stopped with strategy 'Terminate'"
        elif self.stop_reason == "deadline" and phase != SUCCEEDED:
            message = DEADLINE_MESSAGE
        self.phase, self.message, self.finished = phase, message, True


def _workflow_phase(root_phase: str) -> str:
    return {SKIPPED: SUCCEEDED, OMITTED: SUCCEEDED}.get(root_phase, root_phase)


def _policy_allows(policy: str, phase: str, message: str) -> bool:
    if policy == "Always":
        return True
    if policy == "OnError":
        return phase == ERROR
    if policy == "OnTransientError":
        return phase == ERROR and "transient" in message.lower()
    return phase == FAILED  # OnFailure, the default


def _stored_inputs(node: dict) -> Inputs:
    inputs = Inputs()
    rendered = node.get("inputs") or {}
    for parameter in rendered.get("parameters", []):
        inputs.parameters[parameter["name"]] = parameter.get("value", "")
    for artifact in rendered.get("artifacts", []):
        inputs.artifacts[artifact["name"]] = artifact
    return inputs


def _add_task_to_scope(task_name: str, task_node: dict, scope: dict[str, str], artifacts: dict[str, dict]) -> None:
    """`tasks.<name>.*`: a task node's status, id and outputs, as the tasks after it in its DAG see them."""
    scope[f"tasks.{task_name}.status"] = task_node.get("phase", "")
    scope[f"tasks.{task_name}.id"] = task_node["id"]
    outputs = task_node.get("outputs") or {}
    for parameter in outputs.get("parameters", []):
        if "value" in parameter:
            scope[f"tasks.{task_name}.outputs.parameters.{parameter['name']}"] = parameter["value"]
    for artifact in outputs.get("artifacts", []):
        artifacts[f"tasks.{task_name}.outputs.artifacts.{artifact['name']}"] = artifact


def _resolve_artifact(artifact: ArtifactDecl, scope: Mapping[str, str], artifacts: Mapping[str, dict]) -> dict | None:
    if artifact.raw is not None:
        return {"name": artifact.name, "raw": {"data": ex.substitute(artifact.raw, scope)}}
    if artifact.source is None:
        return None
    reference = artifact.source.strip()
    if reference.startswith("{{") and reference.endswith("}}"):
        reference = reference[2:-2].strip()
    found = artifacts.get(reference)
    if found is None:
        return None
    kept = {key: value for key, value in found.items() if key in ("s3", "raw")}
    return {"name": artifact.name, **kept}


__all__ = ["DEADLINE_MESSAGE", "OMITTED_MESSAGE", "RELAUNCH_NOTE", "WORKFLOW_NAMESPACE", "RunOperator", "rfc3339"]
