"""The walk of a KFP v2 pipeline (IR) run: the pipeline spec's DAGs over the run's node table.

Same interface and node rows as `graph_walk.RunOperator`, so the driver, the store, restart adoption,
terminate and retry work unchanged. Every DAG (the root, a sub-pipeline, a condition branch, a loop
iteration) is a `DAG` node; a container task is a `Pod` (or a `Retry` with its attempts `name(i)`); a
ParallelFor is a `TaskGroup` whose iterations are `name(i)`; a task whose condition is false is
`Skipped`, one after a failed upstream task `Omitted`. Node names are deterministic (`parent.task`), and
each node keeps what the walk needs to carry on after a restart: its resolved inputs (`_ir_inputs`, typed
JSON values and artifacts) and, once done, its outputs (`_ir_outputs`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kfp_backend.executor.artifact_imports import local_uri
from kfp_backend.executor.ir_steps import IrStep, build_step
from kfp_backend.executor.node_table import DEADLINE_MESSAGE, Inputs, NodeTable, StepHost, is_fulfilled, rfc3339
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
from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.cache_key import cache_key, fingerprint
from kfp_backend.workflow.ir.conditions import evaluate_condition, select
from kfp_backend.workflow.ir.document import split_documents
from kfp_backend.workflow.ir.executor_input import (
    RuntimeArtifact,
    TaskContext,
    parameter_text,
    substitute_context,
    substitute_inputs,
    typed_parameter,
)
from kfp_backend.workflow.ir.model import (
    ArtifactIterator,
    Component,
    ComponentInputArtifact,
    ComponentInputParameter,
    Constant,
    ContainerExecutor,
    ImporterExecutor,
    PipelineSpec,
    Task,
    TaskFinalStatus,
    TaskOutputParameter,
)
from kfp_backend.workflow.ir.parse import parse_pipeline_spec

DEFAULT_PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"
OMITTED_UPSTREAM = "omitted: an upstream task did not succeed"
_KFP_STATES = {SUCCEEDED: "SUCCEEDED", FAILED: "FAILED", ERROR: "FAILED", SKIPPED: "SKIPPED", OMITTED: "SKIPPED"}


@dataclass(frozen=True)
class PipelineRun:
    """What an IR run executes: the spec, the run's typed parameter values and its pipeline root."""

    spec: PipelineSpec
    name: str  # the run's workflow name (node names start with it)
    parameter_values: Mapping[str, Any] = field(default_factory=dict)
    pipeline_root: str = DEFAULT_PIPELINE_ROOT


def load_pipeline_run(document: Mapping[str, Any], run_id: str) -> PipelineRun:
    """The run from its runtime document (services.ir_run_manifest): the wrapped pipeline spec, its
    runtime config and metadata."""
    documents = split_documents(document)
    spec = parse_pipeline_spec(documents.pipeline_spec if documents.platform_spec is None
                               else [documents.pipeline_spec, documents.platform_spec])
    config = document.get("runtime_config") or {}
    metadata = document.get("metadata") or {}
    root = str(config.get("pipeline_root") or spec.default_pipeline_root or DEFAULT_PIPELINE_ROOT).rstrip("/")
    values = dict(config.get("parameter_values") or {})
    for name, parameter in spec.root.inputs.parameters.items():
        if name not in values and parameter.has_default:  # normally applied at creation already
            values[name] = parameter.default
    return PipelineRun(
        spec=spec, name=str(metadata.get("name") or spec.name or run_id), parameter_values=values,
        pipeline_root=root,
    )


@dataclass
class ResolvedInputs:
    """A component's inputs: typed parameter values and artifacts (each a list: an input may be a list)."""

    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[dict]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "artifacts": self.artifacts}

    @staticmethod
    def from_json(raw: Any) -> ResolvedInputs:
        raw = raw if isinstance(raw, Mapping) else {}
        return ResolvedInputs(dict(raw.get("parameters") or {}), dict(raw.get("artifacts") or {}))


@runtime_checkable
class CachingHost(Protocol):
    """A host that keeps the outputs of cached tasks (`cachingOptions.enableCache`)."""

    def cached_outputs(self, fingerprint: str, pipeline_name: str) -> dict[str, Any] | None:
        """{"outputs": {"parameters", "artifacts"}, "run_id", "node_id"} of an earlier task of a pipeline of
        that name (in the run's namespace) with that fingerprint, or None."""

    def store_outputs(self, fingerprint: str, pipeline_name: str, outputs: dict[str, Any], node_id: str) -> None: ...


class _Skip(Exception):
    """The task cannot run: an input comes from a task that was skipped or produced nothing."""


class PipelineRunOperator(NodeTable):
    def __init__(
        self,
        run: PipelineRun,
        *,
        run_id: str,
        nodes: list[dict],
        host: StepHost,
        started_at: float,
        clock: Any = time.time,
    ) -> None:
        super().__init__(workflow_name=run.name, run_id=run_id, nodes=nodes, host=host, started_at=started_at,
                         clock=clock)
        self.run = run
        self.spec = run.spec

    # ----------------------------------------------------------------- public

    def reconcile(self) -> None:
        self.next_wake = None
        inputs = ResolvedInputs(parameters=dict(self.run.parameter_values))
        root = self._execute_component(self.workflow_name, self.spec.root, None, inputs, "", self.workflow_name, ())
        if not is_fulfilled(root):
            return
        phase = {SKIPPED: SUCCEEDED, OMITTED: SUCCEEDED}.get(root["phase"], root["phase"])
        message = root.get("message", "") if phase in FAILED_NODE_PHASES else ""
        if self.stop_reason == "terminate" and phase != SUCCEEDED:
            message = "Stopped with strategy 'Terminate'"
        self.phase, self.message, self.finished = phase, message, True

    def pod_exited(self, node_name: str, phase: str, message: str, outputs: dict | None) -> None:
        """As the node table's, with the typed outputs (`outputs["_ir"]`) kept apart from Argo's view."""
        typed = outputs.pop("_ir", None) if outputs else None
        node = self.nodes.get(node_name)
        if typed is not None and node is not None and not is_fulfilled(node):
            node["_ir_outputs"] = typed
            key = node.get("_cache_key")
            if phase == SUCCEEDED and key and isinstance(self.host, CachingHost):
                self.host.store_outputs(key, self.spec.name, typed, node["id"])
        super().pod_exited(node_name, phase, message, outputs)

    def workflow_scope(self) -> dict[str, str]:
        return {}

    # ----------------------------------------------------------------- components

    def _execute_component(
        self, name: str, component: Component, task: Task | None, inputs: ResolvedInputs, boundary: str,
        display: str, parents: tuple[str, ...],
    ) -> dict:
        node = self.nodes.get(name)
        if is_fulfilled(node):
            assert node is not None
            return node
        if node is not None:
            inputs = ResolvedInputs.from_json(node.get("_ir_inputs"))
        if component.dag is not None:
            return self._execute_dag(name, component, inputs, boundary, display, parents)
        assert component.executor_label is not None
        executor = self.spec.executors[component.executor_label]
        if isinstance(executor, ImporterExecutor):
            return self._execute_importer(name, component, executor, inputs, boundary, display, parents)
        key = None
        if node is None and task is not None and task.enable_cache:
            key = _fingerprint(component, executor, inputs)
            hit = self.host.cached_outputs(key, self.spec.name) if isinstance(self.host, CachingHost) else None
            if hit is not None:
                return self._reuse(name, component, inputs, boundary, display, parents, hit)
        if task is not None and task.retry is not None:
            return self._execute_retry(name, component, task, inputs, boundary, display, parents, key)
        return self._execute_pod(name, component, inputs, boundary, display, parents, key)

    def _reuse(
        self, name: str, component: Component, inputs: ResolvedInputs, boundary: str, display: str,
        parents: tuple[str, ...], hit: Mapping[str, Any],
    ) -> dict:
        """A cache hit: the task's node is done at once, with the outputs of the run that computed them."""
        node = self._create_ir(name, node_type="Pod", component=component, display=display, boundary=boundary,
                               phase=RUNNING, inputs=inputs, parents=parents)
        node["_cached_from"] = {"run_id": hit.get("run_id"), "node_id": hit.get("node_id")}
        self._set_outputs(node, dict(hit["outputs"]))
        self._finish(node, SUCCEEDED)
        return node

    def _create_ir(
        self, name: str, *, node_type: str, component: Component, display: str, boundary: str, phase: str,
        inputs: ResolvedInputs | None = None, message: str = "", parents: tuple[str, ...] = (),
    ) -> dict:
        node = self._create(
            name, node_type=node_type, template=component.name, display=display, boundary=boundary, phase=phase,
            inputs=_argo_inputs(inputs) if inputs is not None else None, message=message, parents=parents,
        )
        if inputs is not None:
            node["_ir_inputs"] = inputs.to_json()
        return node

    def _execute_pod(
        self, name: str, component: Component, inputs: ResolvedInputs, boundary: str, display: str,
        parents: tuple[str, ...], key: str | None = None,
    ) -> dict:
        node = self.nodes.get(name)
        if node is None:
            node = self._create_ir(name, node_type="Pod", component=component, display=display, boundary=boundary,
                                   phase=PENDING, inputs=inputs, parents=parents)
            if key is not None:
                node["_cache_key"] = key
        if node["phase"] != PENDING:
            return node
        if self.stop_reason is not None:
            self._finish(node, FAILED, DEADLINE_MESSAGE)
            return node
        assert component.executor_label is not None
        executor = self.spec.executors[component.executor_label]
        assert isinstance(executor, ContainerExecutor)
        try:
            step = build_step(
                node, component, executor, inputs.parameters, _runtime_artifacts(inputs),
                run_id=self.run_id, job_name=self.workflow_name, pipeline_root=self.run.pipeline_root,
                create_time=rfc3339(self.started_at),
            )
        except WorkflowError as exc:
            self._finish(node, ERROR, str(exc))
            return node
        node["_ir_step"] = step.to_json()
        self._launch(node, step)
        return node

    def _execute_retry(
        self, name: str, component: Component, task: Task, inputs: ResolvedInputs, boundary: str, display: str,
        parents: tuple[str, ...], key: str | None = None,
    ) -> dict:
        policy = task.retry
        assert policy is not None
        node = self.nodes.get(name)
        if node is None:
            node = self._create_ir(name, node_type="Retry", component=component, display=display,
                                   boundary=boundary, phase=RUNNING, inputs=inputs, parents=parents)
            if key is not None:
                node["_cache_key"] = key
        attempts = [self.nodes[child] for child in node.get("_attempts", []) if child in self.nodes]
        if attempts and not is_fulfilled(attempts[-1]):
            last = attempts[-1]
            self._execute_pod(last["name"], component, inputs, boundary, last["displayName"], ())
            return node
        if attempts:
            last = attempts[-1]
            if last["phase"] == SUCCEEDED or len(attempts) > policy.max_retry_count or self.stop_reason:
                for key in ("outputs", "_ir_outputs"):
                    if key in last:
                        node[key] = last[key]
                self._finish(node, last["phase"], last.get("message", ""))
                return node
            delay = policy.backoff_seconds * policy.backoff_factor ** (len(attempts) - 1)
            if policy.backoff_max_seconds is not None:
                delay = min(delay, policy.backoff_max_seconds)
            if self._waiting_for_backoff(last, delay):
                return node
        index = len(attempts)
        attempt_name = self._add_attempt(node, name, index)
        self._execute_pod(attempt_name, component, inputs, boundary, f"{display}({index})", (name,),
                          node.get("_cache_key"))
        return node

    def _execute_importer(
        self, name: str, component: Component, importer: ImporterExecutor, inputs: ResolvedInputs, boundary: str,
        display: str, parents: tuple[str, ...],
    ) -> dict:
        """An importer registers an existing artifact: no process, its output is the URI it names (a local
        `file://` URI as its path, which is what the SDK reads a local artifact from)."""
        node = self._create_ir(name, node_type="Pod", component=component, display=display, boundary=boundary,
                               phase=RUNNING, inputs=inputs, parents=parents)
        uri = importer.artifact_uri
        if importer.artifact_uri_parameter is not None:
            uri = inputs.parameters.get(importer.artifact_uri_parameter)
        if not isinstance(uri, str) or not uri:
            self._finish(node, ERROR, "the importer has no artifact URI")
            return node
        output = next(iter(component.outputs.artifacts), "artifact")
        artifact = RuntimeArtifact(output, local_uri(uri), importer.type.schema_title, importer.type.schema_version,
                                   dict(importer.metadata))
        # Read from its URI by each consuming task (`executor.artifact_imports`), as the launcher downloads it.
        node["_ir_outputs"] = {"parameters": {}, "artifacts": {output: [{**artifact.to_json(), "imported": True}]}}
        node["outputs"] = {"artifacts": [{"name": output, "uri": artifact.uri}]}
        self._finish(node, SUCCEEDED)
        return node

    # ----------------------------------------------------------------- DAGs

    def _execute_dag(
        self, name: str, component: Component, inputs: ResolvedInputs, boundary: str, display: str,
        parents: tuple[str, ...],
    ) -> dict:
        dag = component.dag
        assert dag is not None
        node = self.nodes.get(name)
        if node is None:
            node = self._create_ir(name, node_type="DAG", component=component, display=display, boundary=boundary,
                                   phase=RUNNING, inputs=inputs, parents=parents)
        all_done = True
        for task_name in dag.order:
            task = dag.tasks[task_name]
            task_node_name = f"{name}.{task_name}"
            existing = self.nodes.get(task_node_name)
            if is_fulfilled(existing):
                continue
            called = self.spec.component(task.component)
            if existing is not None:
                if existing.get("type") == "TaskGroup":
                    child = self._execute_loop(task_node_name, task, called, inputs, node["id"], ())
                elif existing.get("type") == "Pod" and existing.get("phase") == RUNNING:
                    child = existing
                else:
                    child = self._execute_component(task_node_name, called, task, inputs, node["id"],
                                                    task.display_name, ())
                all_done = all_done and is_fulfilled(child)
                continue
            upstream = [self.nodes.get(f"{name}.{dep}") for dep in dag.upstream.get(task_name, ())]
            if not all(is_fulfilled(dep) for dep in upstream):
                all_done = False
                continue
            dep_names = tuple(self._outbound(f"{name}.{dep}") for dep in dag.upstream.get(task_name, ())) or (name,)
            child = self._start_task(name, node, task, called, inputs, dep_names, upstream)
            all_done = all_done and is_fulfilled(child)
        if all_done:
            self._settle_dag(node, name, component)
        return node

    def _start_task(
        self, dag_name: str, dag_node: dict, task: Task, called: Component, dag_inputs: ResolvedInputs,
        parents: tuple[str, ...], upstream: list[dict | None],
    ) -> dict:
        task_node_name = f"{dag_name}.{task.name}"
        boundary = dag_node["id"]

        def skipped(phase: str, message: str) -> dict:
            return self._create_ir(task_node_name, node_type="Skipped", component=called, display=task.display_name,
                                   boundary=boundary, phase=phase, message=message, parents=parents)

        completed_strategy = task.trigger.strategy == "ALL_UPSTREAM_TASKS_COMPLETED"
        if not completed_strategy and any(dep is not None and dep["phase"] in FAILED_NODE_PHASES | {OMITTED}
                                          for dep in upstream):
            return skipped(OMITTED, OMITTED_UPSTREAM)
        if self.stop_reason is not None:
            return skipped(OMITTED, DEADLINE_MESSAGE)
        try:
            resolved = self._resolve_inputs(dag_name, task, called, dag_inputs)
        except _Skip as exc:
            return skipped(SKIPPED, str(exc))
        except WorkflowError as exc:
            return skipped(ERROR, str(exc))
        if task.trigger.condition:
            types = {n: p.type for n, p in called.inputs.parameters.items()}
            try:
                holds = evaluate_condition(task.trigger.condition, resolved.parameters, types,
                                           f'task "{task.name}" condition')
            except WorkflowError as exc:
                return skipped(ERROR, str(exc))
            if not holds:
                return skipped(SKIPPED, f"condition '{task.trigger.condition}' evaluated false")
        if task.iterator is not None:
            return self._execute_loop(task_node_name, task, called, resolved, boundary, parents)
        return self._execute_component(task_node_name, called, task, resolved, boundary, task.display_name, parents)

    def _resolve_inputs(
        self, dag_name: str, task: Task, called: Component, dag_inputs: ResolvedInputs
    ) -> ResolvedInputs:
        resolved = ResolvedInputs()
        for name, parameter in task.parameters.items():
            source = parameter.source
            if isinstance(source, ComponentInputParameter):
                if source.name not in dag_inputs.parameters:
                    continue  # an optional input with no value: the component's default applies
                value = dag_inputs.parameters[source.name]
            elif isinstance(source, TaskOutputParameter):
                producer = self.nodes.get(f"{dag_name}.{source.producer_task}")
                outputs = (producer or {}).get("_ir_outputs") or {}
                if source.output_key not in (outputs.get("parameters") or {}):
                    raise _Skip(f"input {name!r}: task {source.producer_task!r} gave no output "
                                f"{source.output_key!r}")
                value = outputs["parameters"][source.output_key]
            elif isinstance(source, Constant):
                value = source.value
                if isinstance(value, str):
                    value = substitute_context(value, self._context(f"{dag_name}.{task.name}", task.display_name))
            elif isinstance(source, TaskFinalStatus):
                value = self._final_status(self.nodes.get(f"{dag_name}.{source.producer_task}"), source.producer_task)
            else:  # pragma: no cover - the model has no other kind
                raise WorkflowError(f"input {name!r}: unknown source")
            if parameter.selector:
                value = select(parameter.selector, value, f'task "{task.name}" input {name!r}')
            spec = called.inputs.parameters.get(name)
            resolved.parameters[name] = typed_parameter(value, spec.type if spec else None,
                                                        f'task "{task.name}" input parameter {name!r}')
        # Inputs the component does not declare only feed other inputs' constants (f-strings of channels).
        extra = {name: resolved.parameters.pop(name) for name in list(resolved.parameters)
                 if name not in called.inputs.parameters}
        for name, parameter in task.parameters.items():
            if extra and isinstance(parameter.source, Constant) and isinstance(resolved.parameters.get(name), str):
                resolved.parameters[name] = substitute_inputs(resolved.parameters[name], extra)
        for name, spec in called.inputs.parameters.items():
            if name not in resolved.parameters and spec.has_default:
                resolved.parameters[name] = spec.default
        for name, artifact in task.artifacts.items():
            source = artifact.source
            if isinstance(source, ComponentInputArtifact):
                if source.name not in dag_inputs.artifacts:
                    continue
                resolved.artifacts[name] = list(dag_inputs.artifacts[source.name])
                continue
            producer = self.nodes.get(f"{dag_name}.{source.producer_task}")
            outputs = (producer or {}).get("_ir_outputs") or {}
            if source.output_key not in (outputs.get("artifacts") or {}):
                raise _Skip(f"input artifact {name!r}: task {source.producer_task!r} gave no output "
                            f"{source.output_key!r}")
            resolved.artifacts[name] = list(outputs["artifacts"][source.output_key])
        return resolved

    def _context(self, node_name: str, display_name: str) -> TaskContext:
        return TaskContext(job_name=self.workflow_name, job_uuid=self.run_id, task_name=display_name,
                           task_uuid=self._node_id(node_name), pipeline_root=self.run.pipeline_root,
                           create_time=rfc3339(self.started_at))

    def _final_status(self, producer: dict | None, producer_task: str) -> dict[str, Any]:
        """A PipelineTaskFinalStatus: the producer's state, and its error when it failed."""
        phase = (producer or {}).get("phase", "")
        state = _KFP_STATES.get(phase, "FAILED")
        error: dict[str, Any] = {}
        if phase in FAILED_NODE_PHASES:
            error = {"code": 2, "message": (producer or {}).get("message", "") or "the task failed"}
        return {"state": state, "error": error, "pipelineJobResourceName": self.workflow_name,
                "pipelineTaskName": producer_task}

    def _execute_loop(
        self, name: str, task: Task, called: Component, inputs: ResolvedInputs, boundary: str,
        parents: tuple[str, ...],
    ) -> dict:
        iterator = task.iterator
        assert iterator is not None
        node = self.nodes.get(name)
        if node is None:
            try:
                items = _loop_items(task, inputs)
            except WorkflowError as exc:
                return self._create_ir(name, node_type="Skipped", component=called, display=task.display_name,
                                       boundary=boundary, phase=ERROR, message=str(exc), parents=parents)
            node = self._create_ir(name, node_type="TaskGroup", component=called, display=task.display_name,
                                   boundary=boundary, phase=RUNNING, inputs=inputs, parents=parents)
            node["_items"] = items
        else:
            inputs = ResolvedInputs.from_json(node.get("_ir_inputs"))
        items = node.get("_items", [])
        limit = task.parallelism_limit or math.inf
        active = done = 0
        children = []
        for index, item in enumerate(items):
            child_name = f"{name}({index})"
            child = self.nodes.get(child_name)
            if child is None:
                if active >= limit:
                    continue
                child_inputs: ResolvedInputs | None = ResolvedInputs(dict(inputs.parameters), dict(inputs.artifacts))
                if isinstance(iterator, ArtifactIterator):
                    child_inputs.artifacts[iterator.item_input] = [item]
                else:
                    spec = called.inputs.parameters.get(iterator.item_input)
                    try:
                        child_inputs.parameters[iterator.item_input] = typed_parameter(
                            item, spec.type if spec else None, f'task "{task.name}" loop item {index}')
                    except WorkflowError as exc:
                        child_inputs = None
                        child = self._create_ir(child_name, node_type="Skipped", component=called,
                                                display=f"{task.display_name}({index})", boundary=boundary,
                                                phase=ERROR, message=str(exc), parents=(name,))
                if child_inputs is not None:
                    child = self._execute_component(child_name, called, None, child_inputs, boundary,
                                                    f"{task.display_name}({index})", (name,))
            elif not is_fulfilled(child):
                child = self._execute_component(child_name, called, None, inputs, boundary, child["displayName"], ())
            children.append(child)
            if is_fulfilled(child):
                done += 1
            else:
                active += 1
        if done == len(items):
            failed = [c for c in children if c["phase"] in FAILED_NODE_PHASES]
            if failed:
                self._finish(node, failed[-1]["phase"], f"child '{failed[-1]['id']}' failed")
            else:
                self._set_outputs(node, _collected(called, children))
                self._finish(node, SUCCEEDED)
        return node

    def _settle_dag(self, node: dict, name: str, component: Component) -> None:
        dag = component.dag
        assert dag is not None
        for task_name in dag.order:
            task_node = self.nodes.get(f"{name}.{task_name}")
            if task_node is not None and task_node.get("phase") in FAILED_NODE_PHASES:
                self._finish(node, task_node["phase"], f"child '{task_node['id']}' failed")
                return
        outputs: dict[str, Any] = {"parameters": {}, "artifacts": {}}
        for output_name, output in dag.output_parameters.items():
            for selector in output.selectors:
                produced = (self.nodes.get(f"{name}.{selector.producer_subtask}") or {}).get("_ir_outputs") or {}
                if selector.output_key in (produced.get("parameters") or {}):
                    outputs["parameters"][output_name] = produced["parameters"][selector.output_key]
                    break
        for output_name, artifact_output in dag.output_artifacts.items():
            for artifact_selector in artifact_output.selectors:
                produced = (self.nodes.get(f"{name}.{artifact_selector.producer_subtask}") or {}).get(
                    "_ir_outputs") or {}
                if artifact_selector.output_key in (produced.get("artifacts") or {}):
                    outputs["artifacts"][output_name] = produced["artifacts"][artifact_selector.output_key]
                    break
        self._set_outputs(node, outputs)
        self._finish(node, SUCCEEDED)

    def _set_outputs(self, node: dict, outputs: dict[str, Any]) -> None:
        node["_ir_outputs"] = outputs
        rendered = _argo_outputs(outputs)
        if rendered:
            node["outputs"] = rendered


def _loop_items(task: Task, inputs: ResolvedInputs) -> list[Any]:
    iterator = task.iterator
    if isinstance(iterator, ArtifactIterator):
        return list(inputs.artifacts.get(iterator.input_artifact, []))
    assert iterator is not None
    if iterator.raw is not None:
        items: Any = json.loads(iterator.raw)
    else:
        items = inputs.parameters.get(iterator.input_parameter or "")
        if isinstance(items, str):
            try:
                items = json.loads(items)
            except ValueError:
                raise WorkflowError(f'task "{task.name}": the loop items are not a JSON list') from None
    if not isinstance(items, list):
        raise WorkflowError(f'task "{task.name}": the loop items are not a list')
    return items


def _collected(called: Component, iterations: list[dict]) -> dict[str, Any]:
    """A ParallelFor's outputs: each output of the iterated DAG, as the list over iterations (`dsl.Collected`)."""
    outputs: dict[str, Any] = {"parameters": {}, "artifacts": {}}
    for name in called.outputs.parameters:
        outputs["parameters"][name] = [
            ((it.get("_ir_outputs") or {}).get("parameters") or {}).get(name) for it in iterations
            if name in (((it.get("_ir_outputs") or {}).get("parameters")) or {})
        ]
    for name in called.outputs.artifacts:
        outputs["artifacts"][name] = [
            artifact for it in iterations
            for artifact in (((it.get("_ir_outputs") or {}).get("artifacts") or {}).get(name) or [])
        ]
    return outputs


def _fingerprint(component: Component, executor: ContainerExecutor, inputs: ResolvedInputs) -> str:
    """The task's cache fingerprint, of the key upstream KFP makes (`workflow.ir.cache_key`). An input
    artifact is named by its URI: one URI is one produced artifact (a cache hit hands on the same URIs)."""
    outputs = {name: RuntimeArtifact(name, "", spec.type.schema_title, spec.type.schema_version)
               for name, spec in component.outputs.artifacts.items()}
    key = cache_key(
        component.inputs, component.outputs, image=executor.image, command=[*executor.command, *executor.args],
        env=executor.env, parameter_values=inputs.parameters,
        input_artifact_names={n: [str(a.get("uri", "")) for a in items] for n, items in inputs.artifacts.items()},
        output_artifacts=outputs,
    )
    return fingerprint(key)


def _runtime_artifacts(inputs: ResolvedInputs) -> dict[str, list[dict]]:
    return {name: list(artifacts) for name, artifacts in inputs.artifacts.items()}


def _argo_inputs(inputs: ResolvedInputs) -> Inputs:
    """The node's `inputs` as Argo shows them: parameter values as text, artifacts by key."""
    rendered = Inputs(parameters={name: parameter_text(value) for name, value in inputs.parameters.items()})
    for name, artifacts in inputs.artifacts.items():
        if artifacts:
            rendered.artifacts[name] = _argo_artifact(name, artifacts[0])
    return rendered


def _argo_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    parameters = [{"name": name, "value": parameter_text(value)}
                  for name, value in (outputs.get("parameters") or {}).items()]
    artifacts = [_argo_artifact(name, items[0]) for name, items in (outputs.get("artifacts") or {}).items() if items]
    if parameters:
        rendered["parameters"] = parameters
    if artifacts:
        rendered["artifacts"] = artifacts
    return rendered


def _argo_artifact(name: str, artifact: Mapping[str, Any]) -> dict[str, Any]:
    rendered: dict[str, Any] = {"name": name, "uri": artifact.get("uri", "")}
    if artifact.get("key"):
        rendered["s3"] = {"key": artifact["key"]}
    return rendered


__all__ = ["IrStep", "PipelineRun", "PipelineRunOperator", "load_pipeline_run"]
