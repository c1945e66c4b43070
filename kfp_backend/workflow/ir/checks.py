"""The references of a KFP v2 pipeline spec: every name it uses must resolve, as a server checks at upload.

`dag_order` orders one DAG's tasks (refusing unknown upstream tasks and cycles); `check_references`
checks, across the whole spec, that tasks call components that exist, components name executors that
exist, inputs are passed under names the called component declares and read from inputs, tasks and
outputs that exist, required inputs are given, no component calls itself, and that every CEL expression
(conditions, parameter selectors) compiles and conditions read only inputs the task passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import networkx as nx

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.conditions import compile_condition, compile_selector, parameter_names
from kfp_backend.workflow.ir.executor_input import input_references
from kfp_backend.workflow.ir.model import (
    Component,
    ComponentInputArtifact,
    ComponentInputParameter,
    Constant,
    ImporterExecutor,
    PipelineSpec,
    Task,
    TaskFinalStatus,
    TaskOutputArtifact,
    TaskOutputParameter,
)

_INVALID = "Invalid pipeline spec"
_UNSUPPORTED = "Unsupported pipeline spec"


def dag_order(tasks: Mapping[str, Task], where: str) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Each task's upstream tasks (dependentTasks and the producers of its inputs) and an order of the tasks
    that puts upstream tasks first (ties by name)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(tasks)
    upstream: dict[str, tuple[str, ...]] = {}
    for task in tasks.values():
        named = [(name, "depends on") for name in task.dependent_tasks]
        named += [(producer, f'takes input "{input_name}" from') for input_name, producer in _producers(task)]
        for name, how in named:
            if name not in tasks:
                _invalid(f'{where} task "{task.name}" {how} task "{name}", which is not a task of this DAG.')
            graph.add_edge(name, task.name)
        upstream[task.name] = tuple(dict.fromkeys(name for name, _ in named))
    cycle = _cycle(graph)
    if cycle is not None:
        _invalid(f"{where}: the task dependencies form a cycle ({cycle}).")
    return upstream, tuple(nx.lexicographical_topological_sort(graph))


def _cycle(graph: nx.DiGraph) -> str | None:
    """A cycle of the graph written as a path (`a -> b -> a`), or None."""
    try:
        edges = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return None
    return " -> ".join([edge[0] for edge in edges] + [edges[0][0]])


def _producers(task: Task) -> list[tuple[str, str]]:
    producers = [
        (parameter.name, parameter.source.producer_task)
        for parameter in task.parameters.values()
        if isinstance(parameter.source, TaskOutputParameter | TaskFinalStatus)
    ]
    producers += [
        (artifact.name, artifact.source.producer_task)
        for artifact in task.artifacts.values()
        if isinstance(artifact.source, TaskOutputArtifact)
    ]
    return producers


def check_references(spec: PipelineSpec) -> None:
    """Raise WorkflowError for the first name in `spec` that does not resolve."""
    components = (spec.root, *spec.components.values())
    _check_calls(spec)
    for component in components:
        where = _where(component)
        if component.executor_label is not None:
            executor = spec.executors.get(component.executor_label)
            if executor is None:
                _invalid(f'{where} names executor "{component.executor_label}", which deploymentSpec.executors '
                         "does not define.")
            if isinstance(executor, ImporterExecutor) and executor.artifact_uri_parameter is not None \
                    and executor.artifact_uri_parameter not in component.inputs.parameters:
                _invalid(f'{where}: its importer reads the URI from input parameter '
                         f'"{executor.artifact_uri_parameter}", which {where} does not declare.')
        if component.dag is not None:
            for task in component.dag.tasks.values():
                _check_task(spec, component, task)
            _check_dag_outputs(spec, component)


def _check_calls(spec: PipelineSpec) -> None:
    """Every task calls a component that exists, and no component calls itself, even through others."""
    calls = nx.DiGraph()
    for component in (spec.root, *spec.components.values()):
        for task in component.dag.tasks.values() if component.dag is not None else ():
            if task.component not in spec.components:
                _invalid(f'{_where(component)} task "{task.name}" calls component "{task.component}", which '
                         "components does not define.")
            calls.add_edge(component.name, task.component)
    cycle = _cycle(calls)
    if cycle is not None:
        _unsupported(f'component "{cycle.split(" -> ")[0]}" calls itself ({cycle}): recursive pipelines are not '
                     "supported.")


def _check_task(spec: PipelineSpec, parent: Component, task: Task) -> None:
    what = f'{_where(parent)} task "{task.name}"'
    called = spec.components[task.component]
    declared = called.inputs
    # An input only named inside another one's constant (an f-string of pipeline channels) feeds that one.
    referenced = {name for parameter in task.parameters.values() if isinstance(parameter.source, Constant)
                  and isinstance(parameter.source.value, str) for name in input_references(parameter.source.value)}
    for parameter in task.parameters.values():
        if parameter.name not in declared.parameters and parameter.name not in referenced:
            _invalid(f'{what} passes input parameter "{parameter.name}", which component "{called.name}" does not '
                     "declare.")
        source = parameter.source
        if isinstance(source, ComponentInputParameter) and source.name not in parent.inputs.parameters:
            _invalid(f'{what} reads input parameter "{source.name}", which {_where(parent)} does not declare.')
        if isinstance(source, TaskOutputParameter):
            producer = spec.components[parent.dag.tasks[source.producer_task].component]  # type: ignore[union-attr]
            if source.output_key not in producer.outputs.parameters:
                _invalid(f'{what} reads output parameter "{source.output_key}" of task "{source.producer_task}", '
                         f'which component "{producer.name}" does not declare.')
        if parameter.selector is not None:
            compile_selector(parameter.selector, f'{what} input parameter "{parameter.name}"')
    for artifact in task.artifacts.values():
        if artifact.name not in declared.artifacts:
            _invalid(f'{what} passes input artifact "{artifact.name}", which component "{called.name}" does not '
                     "declare.")
        artifact_source = artifact.source
        if isinstance(artifact_source, ComponentInputArtifact) \
                and artifact_source.name not in parent.inputs.artifacts:
            _invalid(f'{what} reads input artifact "{artifact_source.name}", which {_where(parent)} does not '
                     "declare.")
        if isinstance(artifact_source, TaskOutputArtifact):
            producer = spec.components[parent.dag.tasks[artifact_source.producer_task].component]  # type: ignore[union-attr]
            if artifact_source.output_key not in producer.outputs.artifacts:
                _invalid(f'{what} reads output artifact "{artifact_source.output_key}" of task '
                         f'"{artifact_source.producer_task}", which component "{producer.name}" does not declare.')
    given_parameters, given_artifacts = set(task.parameters), set(task.artifacts)
    if task.parameter_iterator is not None:
        iterator = task.parameter_iterator
        if iterator.input_parameter is not None and iterator.input_parameter not in task.parameters:
            _invalid(f'{what} iterates over input parameter "{iterator.input_parameter}", which it does not pass.')
        if iterator.item_input not in declared.parameters:
            _invalid(f'{what} passes each item as input parameter "{iterator.item_input}", which component '
                     f'"{called.name}" does not declare.')
        given_parameters.add(iterator.item_input)
    if task.artifact_iterator is not None:
        iterator_artifacts = task.artifact_iterator
        if iterator_artifacts.input_artifact not in task.artifacts:
            _invalid(f'{what} iterates over input artifact "{iterator_artifacts.input_artifact}", which it does not '
                     "pass.")
        if iterator_artifacts.item_input not in declared.artifacts:
            _invalid(f'{what} passes each item as input artifact "{iterator_artifacts.item_input}", which component '
                     f'"{called.name}" does not declare.')
        given_artifacts.add(iterator_artifacts.item_input)
    for name, spec_parameter in declared.parameters.items():
        if name not in given_parameters and not spec_parameter.optional and not spec_parameter.has_default:
            _invalid(f'{what} does not pass input parameter "{name}" of component "{called.name}".')
    for name, spec_artifact in declared.artifacts.items():
        if name not in given_artifacts and not spec_artifact.optional:
            _invalid(f'{what} does not pass input artifact "{name}" of component "{called.name}".')
    if task.trigger.condition is not None:
        compile_condition(task.trigger.condition, f"{what} triggerPolicy.condition")
        unknown = sorted((parameter_names(task.trigger.condition) or frozenset()) - set(task.parameters))
        if unknown:
            _invalid(f'{what} triggerPolicy.condition reads input parameter "{unknown[0]}", which the task does not '
                     "pass.")


def _check_dag_outputs(spec: PipelineSpec, component: Component) -> None:
    dag = component.dag
    assert dag is not None
    where = _where(component)
    for output in dag.output_parameters.values():
        if output.name not in component.outputs.parameters:
            _invalid(f'{where}: dag output parameter "{output.name}" is not in its outputDefinitions.')
        for selector in output.selectors:
            _check_selector(spec, component, f'dag output parameter "{output.name}"', selector.producer_subtask,
                            selector.output_key, "parameters")
    for artifact in dag.output_artifacts.values():
        if artifact.name not in component.outputs.artifacts:
            _invalid(f'{where}: dag output artifact "{artifact.name}" is not in its outputDefinitions.')
        for artifact_selector in artifact.selectors:
            _check_selector(spec, component, f'dag output artifact "{artifact.name}"',
                            artifact_selector.producer_subtask, artifact_selector.output_key, "artifacts")


def _check_selector(spec: PipelineSpec, component: Component, what: str, subtask: str, key: str, kind: str) -> None:
    where = _where(component)
    task = component.dag.tasks.get(subtask)  # type: ignore[union-attr]
    if task is None:
        _invalid(f'{where}: {what} comes from task "{subtask}", which is not a task of this DAG.')
    producer = spec.components[task.component]
    outputs = producer.outputs.parameters if kind == "parameters" else producer.outputs.artifacts
    if key not in outputs:
        _invalid(f'{where}: {what} comes from output "{key}" of task "{subtask}", which component '
                 f'"{producer.name}" does not declare.')


def _where(component: Component) -> str:
    return "root" if component.name == "root" else f'component "{component.name}"'


def _invalid(message: str) -> NoReturn:
    raise WorkflowError(f"{_INVALID}: {message}")


def _unsupported(message: str) -> NoReturn:
    raise WorkflowError(f"{_UNSUPPORTED}: {message}")
