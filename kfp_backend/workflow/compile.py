"""Turn a validated Argo Workflow document into the typed `WorkflowGraph` the executor walks.

`compile_workflow(document)` maps what kfp 1.8 compiles (container and DAG templates, retry strategies,
deadlines, loops, conditions, an exit handler) and refuses, with a WorkflowError naming the template and
the problem, anything a host-process executor cannot run (what is refused, compiled differently or
ignored: docs/execution.md, "What the compiler accepts").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import networkx as nx

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.expressions import placeholders
from kfp_backend.workflow.graph import (
    ArtifactDecl,
    ContainerSpec,
    DagTask,
    OutputParameterDecl,
    ParameterDecl,
    RetryStrategy,
    Template,
    WorkflowGraph,
)
from kfp_backend.workflow.values import INVALID, mapping, optional_string, quoted, scalar

_UNSUPPORTED = "Unsupported workflow"

# Output artifacts KFP's API server marks optional at run creation.
ALWAYS_OPTIONAL_ARTIFACTS = frozenset({"mlpipeline-ui-metadata", "mlpipeline-metrics"})
RETRY_POLICIES = ("OnFailure", "OnError", "Always", "OnTransientError")

_OTHER_KINDS = ("script", "resource", "suspend", "containerSet", "data", "http", "plugin")
_ARTIFACT_LOCATIONS = ("s3", "gcs", "http", "git", "artifactory", "hdfs", "oss", "azure", "url")
_REFUSED_TASK_FIELDS = {
    "depends": "'depends' expressions are not supported (kfp 1.8 only emits 'dependencies')",
    "continueOn": "'continueOn' is not supported",
    "withSequence": "'withSequence' is not supported",
    "onExit": "task-level exit handlers are not supported",
    "hooks": "lifecycle hooks are not supported",
    "templateRef": "'templateRef' (templates of another WorkflowTemplate) is not supported",
    "inline": "inline templates are not supported",
}


def compile_workflow(document: dict[str, Any]) -> WorkflowGraph:
    """The typed graph of a workflow document already accepted by `manifest.validate_workflow`'s checks."""
    spec = mapping(document.get("spec"), "spec")
    metadata = document.get("metadata") or {}
    for key in ("templateDefaults", "hooks"):
        if spec.get(key):
            _unsupported(f"spec.{key} is not supported.")
    raw_templates = spec.get("templates")
    if not isinstance(raw_templates, list) or not raw_templates:
        _invalid("spec.templates must be a non-empty list.")
    templates: dict[str, Template] = {}
    for index, raw in enumerate(raw_templates):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            _invalid(f"spec.templates[{index}] must be an object with a non-empty name.")
        if raw["name"] in templates:
            _invalid(f'template name "{raw["name"]}" is used more than once.')
        templates[raw["name"]] = _template(raw)

    entrypoint = spec.get("entrypoint")
    if not isinstance(entrypoint, str) or entrypoint not in templates:
        _invalid(f'spec.entrypoint "{quoted(entrypoint)}" is not the name of a template.')
    on_exit = spec.get("onExit")
    if on_exit is not None and (not isinstance(on_exit, str) or on_exit not in templates):
        _invalid(f'spec.onExit "{quoted(on_exit)}" is not the name of a template.')

    arguments = mapping(spec.get("arguments"), "spec.arguments")
    parameters = tuple(
        ParameterDecl(name=p["name"], value=scalar(p.get("value"), f'spec.arguments parameter "{p["name"]}"'))
        for p in _named_list(arguments.get("parameters"), "spec.arguments.parameters")
    )
    artifacts = tuple(
        _argument_artifact(a, "spec.arguments")
        for a in _named_list(arguments.get("artifacts"), "spec.arguments.artifacts")
    )

    graph = WorkflowGraph(
        name=_workflow_name(metadata if isinstance(metadata, dict) else {}),
        entrypoint=entrypoint,
        templates=templates,
        arguments=parameters,
        argument_artifacts=artifacts,
        on_exit=on_exit or None,
        active_deadline_seconds=_seconds(spec.get("activeDeadlineSeconds"), "spec.activeDeadlineSeconds"),
        parallelism=_parallelism(spec.get("parallelism"), "spec.parallelism"),
    )
    _check_calls(graph)
    _check_references(graph)
    return graph


def check_executable(document: dict[str, Any]) -> None:
    """Raise WorkflowError unless the executor can run the workflow."""
    compile_workflow(document)


# --- templates ---------------------------------------------------------------------------------------


def _template(raw: dict[str, Any]) -> Template:
    name = raw["name"]
    where = f'template "{name}"'
    kinds = [kind for kind in ("container", "dag", "steps", *_OTHER_KINDS) if raw.get(kind) is not None]
    if not kinds:
        _unsupported(f"{where} has no container or dag: only container and dag templates can be run.")
    if len(kinds) > 1:
        _invalid(f"{where} has more than one kind ({', '.join(kinds)}).")
    kind = kinds[0]
    if kind in _OTHER_KINDS:
        _unsupported(f"{where} is a {kind} template: only container and dag templates can be run.")
    for key, what in (("initContainers", "init containers"), ("sidecars", "sidecars")):
        if raw.get(key):
            _unsupported(f"{where} has {what}, which are not supported.")
    if raw.get("daemon"):
        _unsupported(f"{where} is a daemon template, which is not supported.")

    is_container = kind == "container"
    inputs = mapping(raw.get("inputs"), f"{where} inputs")
    outputs = mapping(raw.get("outputs"), f"{where} outputs")
    metadata = mapping(raw.get("metadata"), f"{where} metadata")
    template = Template(
        name=name,
        kind="container" if is_container else "dag",
        inputs_parameters=tuple(
            ParameterDecl(name=p["name"], value=_input_default(p, f'{where} input parameter "{p["name"]}"'))
            for p in _named_list(inputs.get("parameters"), f"{where} inputs.parameters")
        ),
        inputs_artifacts=tuple(
            _input_artifact(a, where, is_container)
            for a in _named_list(inputs.get("artifacts"), f"{where} inputs.artifacts")
        ),
        outputs_parameters=tuple(
            _output_parameter(p, where, is_container)
            for p in _named_list(outputs.get("parameters"), f"{where} outputs.parameters")
        ),
        outputs_artifacts=tuple(
            _output_artifact(a, where, is_container)
            for a in _named_list(outputs.get("artifacts"), f"{where} outputs.artifacts")
        ),
        active_deadline_seconds=_seconds(raw.get("activeDeadlineSeconds"), f"{where} activeDeadlineSeconds"),
        parallelism=_parallelism(raw.get("parallelism"), f"{where} parallelism"),
        annotations=_string_map(metadata.get("annotations"), f"{where} metadata.annotations"),
        labels=_string_map(metadata.get("labels"), f"{where} metadata.labels"),
    )
    if raw.get("retryStrategy") is not None:
        if not is_container:
            _unsupported(f"{where}: a retryStrategy is only supported on container templates.")
        template.retry = _retry(raw["retryStrategy"], where)
    if is_container:
        template.container = _container(raw["container"], where)
    elif kind == "dag":
        dag = mapping(raw["dag"], f"{where} dag")
        if dag.get("target"):
            _unsupported(f"{where}: dag.target is not supported.")
        template.tasks = _tasks(dag.get("tasks"), where, "dag.tasks")
    else:
        template.tasks = _steps_as_tasks(raw["steps"], where)
        template.outputs_parameters = tuple(
            OutputParameterDecl(p.name, p.path, _steps_to_tasks(p.expression), p.default)
            for p in template.outputs_parameters
        )
        template.outputs_artifacts = tuple(
            ArtifactDecl(a.name, a.path, a.raw, _steps_to_tasks(a.source), a.optional)
            for a in template.outputs_artifacts
        )
    if not is_container:
        template.graph = _task_graph(template.tasks, where)
    return template


def _container(raw: Any, where: str) -> ContainerSpec:
    container = mapping(raw, f"{where} container")
    image = container.get("image")
    if not isinstance(image, str) or not image:
        _invalid(f"{where}: container.image is missing.")
    command = _string_list(container.get("command"), f"{where} container.command")
    if not command:
        _unsupported(
            f"{where}: the container has no command. A step runs as a host process and the image's "
            "ENTRYPOINT cannot be emulated; give the container an explicit command."
        )
    env: list[tuple[str, str]] = []
    field_refs: list[tuple[str, str]] = []
    for entry in _named_list(container.get("env"), f"{where} container.env"):
        value_from = entry.get("valueFrom")
        if value_from is None:
            env.append((entry["name"], scalar(entry.get("value"), f'{where} env "{entry["name"]}"') or ""))
            continue
        field_ref = value_from.get("fieldRef") if isinstance(value_from, dict) else None
        path = field_ref.get("fieldPath") if isinstance(field_ref, dict) else None
        if not isinstance(path, str) or not path or len(value_from) != 1:
            kinds = ", ".join(sorted(value_from)) if isinstance(value_from, dict) else quoted(value_from)
            _unsupported(
                f'{where}: env "{entry["name"]}" comes from {kinds}; only fieldRef values are supported '
                "(there are no Kubernetes secrets or config maps on a host)."
            )
        field_refs.append((entry["name"], path))
    working_dir = container.get("workingDir")
    if working_dir is not None and not isinstance(working_dir, str):
        _invalid(f"{where}: container.workingDir must be a string.")
    return ContainerSpec(
        image=image,
        command=tuple(command),
        args=tuple(_string_list(container.get("args"), f"{where} container.args")),
        env=tuple(env),
        field_refs=tuple(field_refs),
        working_dir=working_dir or None,
    )


def _input_default(raw: dict[str, Any], where: str) -> str | None:
    value = raw.get("default")
    if value is None:
        value = raw.get("value")
    return scalar(value, where)


def _input_artifact(raw: dict[str, Any], where: str, is_container: bool) -> ArtifactDecl:
    name = raw["name"]
    _refuse_locations(raw, f'{where} input artifact "{name}"')
    path = optional_string(raw.get("path"), f'{where} input artifact "{name}" path')
    if is_container and not path:
        _invalid(f'{where}: input artifact "{name}" has no path.')
    return ArtifactDecl(
        name=name,
        path=path,
        raw=_raw_data(raw, f'{where} input artifact "{name}"'),
        source=optional_string(raw.get("from"), f'{where} input artifact "{name}" from'),
        optional=raw.get("optional") is True,
    )


def _output_parameter(raw: dict[str, Any], where: str, is_container: bool) -> OutputParameterDecl:
    name = raw["name"]
    what = f'{where} output parameter "{name}"'
    value_from = mapping(raw.get("valueFrom"), f"{what} valueFrom")
    refused = sorted(set(value_from) - {"path", "parameter", "default"})
    if refused:
        _unsupported(f"{what}: valueFrom.{refused[0]} is not supported.")
    path = optional_string(value_from.get("path"), f"{what} valueFrom.path")
    expression = optional_string(value_from.get("parameter"), f"{what} valueFrom.parameter")
    default = scalar(value_from.get("default"), f"{what} valueFrom.default")
    if raw.get("value") is not None and not value_from:
        default = scalar(raw.get("value"), f"{what} value")
        return OutputParameterDecl(name=name, default=default)
    if is_container and not path:
        _unsupported(f"{what} has no valueFrom.path: a container's outputs are read from files.")
    if not is_container and not expression:
        _unsupported(f"{what} has no valueFrom.parameter: a DAG exports one of its tasks' outputs.")
    return OutputParameterDecl(name=name, path=path if is_container else None,
                               expression=None if is_container else expression, default=default)


def _output_artifact(raw: dict[str, Any], where: str, is_container: bool) -> ArtifactDecl:
    name = raw["name"]
    what = f'{where} output artifact "{name}"'
    if raw.get("fromExpression"):
        _unsupported(f"{what}: fromExpression is not supported.")
    optional = name in ALWAYS_OPTIONAL_ARTIFACTS or raw.get("optional") is True
    if is_container:
        path = optional_string(raw.get("path"), f"{what} path")
        if not path:
            _invalid(f"{what} has no path.")
        return ArtifactDecl(name=name, path=path, optional=optional)
    source = optional_string(raw.get("from"), f"{what} from")
    if not source:
        _unsupported(f"{what} has no 'from': a DAG exports one of its tasks' artifacts.")
    return ArtifactDecl(name=name, source=source, optional=optional)


def _argument_artifact(raw: dict[str, Any], where: str) -> ArtifactDecl:
    name = raw["name"]
    what = f'{where} artifact "{name}"'
    _refuse_locations(raw, what)
    source = optional_string(raw.get("from"), f"{what} from")
    data = _raw_data(raw, what)
    if source is None and data is None:
        _unsupported(f"{what} has neither 'from' nor 'raw'.")
    return ArtifactDecl(name=name, source=source, raw=data)


def _refuse_locations(raw: dict[str, Any], what: str) -> None:
    for location in _ARTIFACT_LOCATIONS:
        if raw.get(location) is not None:
            _unsupported(f"{what} is fetched from {location}: only raw artifacts and artifacts passed "
                         "between steps are supported.")


def _raw_data(raw: dict[str, Any], what: str) -> str | None:
    if raw.get("raw") is None:
        return None
    data = mapping(raw["raw"], f"{what} raw").get("data")
    return scalar(data, f"{what} raw.data") or ""


# --- retry, durations --------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any, what: str) -> float:
    """Seconds in an Argo duration: a number of seconds (int or numeric string) or a Go duration ("1m30s")."""
    if isinstance(value, bool) or value is None:
        _invalid(f"{what} must be a duration.")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            sign = -1.0 if text.startswith("-") else 1.0
            body = text.lstrip("+-")
            parts = _DURATION_PART.findall(body)
            if not body or "".join(number + unit for number, unit in parts) != body:
                _invalid(f'{what} "{quoted(value)}" is not a duration (e.g. "30s", "1m", "1h30m").')
            seconds = sign * sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        _invalid(f"{what} must not be negative.")
    return seconds


def _retry(raw: Any, where: str) -> RetryStrategy:
    strategy = mapping(raw, f"{where} retryStrategy")
    if strategy.get("expression"):
        _unsupported(f"{where}: retryStrategy.expression is not supported.")
    limit = strategy.get("limit")
    if limit is not None:
        limit = _integer(limit, f"{where} retryStrategy.limit")
    policy = strategy.get("retryPolicy") or "OnFailure"
    if policy not in RETRY_POLICIES:
        _invalid(f'{where}: retryStrategy.retryPolicy "{quoted(policy)}" is not one of {", ".join(RETRY_POLICIES)}.')
    backoff = mapping(strategy.get("backoff"), f"{where} retryStrategy.backoff")
    duration = backoff.get("duration")
    factor = backoff.get("factor")
    max_duration = backoff.get("maxDuration")
    return RetryStrategy(
        limit=limit,
        policy=policy,
        backoff_seconds=parse_duration(duration, f"{where} retryStrategy.backoff.duration") if duration else 0.0,
        backoff_factor=_number(factor, f"{where} retryStrategy.backoff.factor") if factor is not None else 1.0,
        backoff_max_seconds=(
            parse_duration(max_duration, f"{where} retryStrategy.backoff.maxDuration") if max_duration else None
        ),
    )


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool):
        _invalid(f"{what} must be a whole number.")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        number = int(value)
    else:
        _unsupported(f'{what} "{quoted(value)}" is not a whole number.')
    if number < 0:
        _invalid(f"{what} must not be negative.")
    return number


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        _invalid(f"{what} must be a number.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        _invalid(f'{what} "{quoted(value)}" is not a number.')
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        _invalid(f"{what} must be a non-negative number.")
    return number


def _seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        _invalid(f"{what} must be a number of seconds.")
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            _unsupported(f'{what} "{quoted(value)}" is not a number of seconds.')
    else:
        number = float(value)
    if number != number or number < 0 or number == float("inf"):
        _invalid(f"{what} must be a non-negative number of seconds.")
    return number


def _parallelism(value: Any, what: str) -> int | None:
    if value is None:
        return None
    number = _integer(value, what)
    return number or None  # 0: no limit (kfp emits `parallelism: 0` for ParallelFor without one)


# --- DAG tasks ---------------------------------------------------------------------------------------


def _tasks(raw: Any, where: str, field: str) -> dict[str, DagTask]:
    if not isinstance(raw, list) or not raw:
        _invalid(f"{where}: {field} must be a non-empty list.")
    tasks: dict[str, DagTask] = {}
    for index, item in enumerate(raw):
        task = _task(item, where, f"{field}[{index}]")
        if task.name in tasks:
            _invalid(f'{where}: task name "{task.name}" is used more than once.')
        tasks[task.name] = task
    return tasks


def _task(raw: Any, where: str, field: str) -> DagTask:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        _invalid(f"{where}: {field} must be an object with a non-empty name.")
    name = raw["name"]
    what = f'{where} task "{name}"'
    for key, why in _REFUSED_TASK_FIELDS.items():
        if raw.get(key):
            _unsupported(f"{what}: {why}.")
    template = raw.get("template")
    if not isinstance(template, str) or not template:
        _invalid(f"{what} names no template.")
    dependencies = _string_list(raw.get("dependencies"), f"{what} dependencies")
    if len(set(dependencies)) != len(dependencies):
        dependencies = list(dict.fromkeys(dependencies))
    arguments = mapping(raw.get("arguments"), f"{what} arguments")
    with_items = raw.get("withItems")
    with_param = raw.get("withParam")
    if with_items is not None and with_param is not None:
        _invalid(f"{what} has both withItems and withParam.")
    if with_items is not None and not isinstance(with_items, list):
        _invalid(f"{what}: withItems must be a list.")
    if with_param is not None and not isinstance(with_param, str):
        _invalid(f"{what}: withParam must be a string.")
    when = raw.get("when")
    if when is not None and not isinstance(when, str):
        when = scalar(when, f"{what} when")
    return DagTask(
        name=name,
        template=template,
        dependencies=tuple(dependencies),
        parameters=tuple(
            ParameterDecl(name=p["name"], value=scalar(p.get("value"), f'{what} argument "{p["name"]}"'))
            for p in _named_list(arguments.get("parameters"), f"{what} arguments.parameters")
        ),
        artifacts=tuple(
            _argument_artifact(a, what) for a in _named_list(arguments.get("artifacts"), f"{what} arguments.artifacts")
        ),
        when=when or None,
        with_items=tuple(with_items) if with_items is not None else None,
        with_param=with_param,
    )


_STEPS_REFERENCE = re.compile(r"\{\{(\s*)steps\.")


def _steps_to_tasks(text: str | None) -> str | None:
    return None if text is None else _STEPS_REFERENCE.sub(r"{{\1tasks.", text)


def _steps_as_tasks(raw: Any, where: str) -> dict[str, DagTask]:
    """A steps template as DAG tasks: every step of group N depends on every step of group N-1."""
    if not isinstance(raw, list) or not raw:
        _invalid(f"{where}: steps must be a non-empty list of step groups.")
    tasks: dict[str, DagTask] = {}
    previous: tuple[str, ...] = ()
    for group_index, group in enumerate(raw):
        if not isinstance(group, list):
            _invalid(f"{where}: steps[{group_index}] must be a list of steps.")
        names: list[str] = []
        for index, item in enumerate(group):
            if isinstance(item, dict) and item.get("dependencies"):
                _invalid(f"{where}: steps[{group_index}][{index}] has dependencies, which steps do not take.")
            task = _task(item, where, f"steps[{group_index}][{index}]")
            if task.name in tasks:
                _unsupported(f'{where}: step name "{task.name}" is used more than once.')
            tasks[task.name] = DagTask(
                name=task.name,
                template=task.template,
                dependencies=previous,
                parameters=tuple(ParameterDecl(p.name, _steps_to_tasks(p.value)) for p in task.parameters),
                artifacts=tuple(
                    ArtifactDecl(a.name, a.path, a.raw, _steps_to_tasks(a.source), a.optional) for a in task.artifacts
                ),
                when=_steps_to_tasks(task.when),
                with_items=task.with_items,
                with_param=_steps_to_tasks(task.with_param),
            )
            names.append(task.name)
        if names:
            previous = tuple(names)
    if not tasks:
        _invalid(f"{where}: steps must hold at least one step.")
    return tasks


def _task_graph(tasks: dict[str, DagTask], where: str) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(tasks)
    for task in tasks.values():
        for dependency in task.dependencies:
            if dependency not in tasks:
                _invalid(f'{where}: task "{task.name}" depends on "{dependency}", which is not a task of this DAG.')
            graph.add_edge(dependency, task.name)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
    _invalid(f"{where}: the task dependencies form a cycle ({path}).")


def _check_calls(graph: WorkflowGraph) -> None:
    calls = nx.DiGraph()
    calls.add_nodes_from(graph.templates)
    for template in graph.templates.values():
        for task in template.tasks.values():
            if task.template not in graph.templates:
                _invalid(f'template "{template.name}" task "{task.name}" calls template "{task.template}", '
                         "which does not exist.")
            calls.add_edge(template.name, task.template)
    try:
        cycle = nx.find_cycle(calls)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
    _unsupported(f'template "{cycle[0][0]}" calls itself ({path}): recursive templates are not supported.')


# --- references between tasks, inputs and workflow parameters ----------------------------------------

_TASK_OUTPUT = re.compile(r"^tasks\.([^.]+)\.outputs\.(parameters|artifacts)\.(.+)$")


def _check_references(graph: WorkflowGraph) -> None:
    """Refuse placeholders that can never resolve: what Argo's own validation refuses at submission."""
    workflow_parameters = {parameter.name for parameter in graph.arguments}
    for template in graph.templates.values():
        inputs = {parameter.name for parameter in template.inputs_parameters}
        artifacts = {artifact.name for artifact in template.inputs_artifacts}
        where = f'template "{template.name}"'
        if template.container is not None:
            texts = [*template.container.command, *template.container.args,
                     *(value for _, value in template.container.env),
                     *(a.raw for a in template.inputs_artifacts if a.raw is not None)]
            for name in _names(texts):
                _check_common(name, where, inputs, workflow_parameters)
                match = re.match(r"^(inputs\.artifacts|outputs\.parameters|outputs\.artifacts)\.(.+)\.path$", name)
                if match:
                    declared = {
                        "inputs.artifacts": artifacts,
                        "outputs.parameters": {p.name for p in template.outputs_parameters},
                        "outputs.artifacts": {a.name for a in template.outputs_artifacts},
                    }[match.group(1)]
                    if match.group(2) not in declared:
                        _invalid(f"{where} refers to {{{{{name}}}}}, which it does not declare.")
            continue
        assert template.graph is not None
        for task in template.tasks.values():
            what = f'{where} task "{task.name}"'
            ancestors = nx.ancestors(template.graph, task.name)
            texts = [p.value for p in task.parameters if p.value is not None]
            texts += [a.raw for a in task.artifacts if a.raw is not None]
            texts += [a.source for a in task.artifacts if a.source is not None]
            texts += [text for text in (task.when, task.with_param) if text is not None]
            looped = task.with_items is not None or task.with_param is not None
            for name in _names(texts):
                _check_common(name, what, inputs, workflow_parameters)
                if name.startswith("inputs.artifacts.") and name[len("inputs.artifacts."):] not in artifacts:
                    _invalid(f"{what} refers to {{{{{name}}}}}, which {where} does not declare.")
                if (name == "item" or name.startswith("item.")) and not looped:
                    _invalid(f"{what} refers to {{{{{name}}}}} but has no withItems or withParam.")
                if name.startswith("tasks."):
                    _check_task_reference(graph, template, name, what, ancestors)
            _check_arguments(graph, task, what)
        outputs = [p.expression for p in template.outputs_parameters if p.expression]
        outputs += [a.source for a in template.outputs_artifacts if a.source]
        for name in _names(outputs):
            if name.startswith("tasks."):
                _check_task_reference(graph, template, name, where, set(template.tasks))


def _names(texts: Iterable[str]) -> list[str]:
    return [name for text in texts for name in placeholders(text)]


def _check_common(name: str, what: str, inputs: set[str], workflow_parameters: set[str]) -> None:
    if name.startswith("inputs.parameters.") and name[len("inputs.parameters."):] not in inputs:
        _invalid(f"{what} refers to {{{{{name}}}}}, which is not an input parameter of its template.")
    if name.startswith("workflow.parameters.") and name[len("workflow.parameters."):] not in workflow_parameters:
        _invalid(f"{what} refers to {{{{{name}}}}}, which is not in spec.arguments.parameters.")


def _check_task_reference(graph: WorkflowGraph, template: Template, name: str, what: str, visible: set[str]) -> None:
    task_name = name.split(".")[1]
    if task_name not in template.tasks:
        _invalid(f"{what} refers to {{{{{name}}}}}, but there is no task \"{task_name}\" in that DAG.")
    if task_name not in visible:
        _invalid(f"{what} refers to {{{{{name}}}}} without depending on task \"{task_name}\".")
    match = _TASK_OUTPUT.match(name)
    if match:
        called = graph.templates[template.tasks[task_name].template]
        declared = (
            {p.name for p in called.outputs_parameters}
            if match.group(2) == "parameters"
            else {a.name for a in called.outputs_artifacts}
        )
        if match.group(3) not in declared:
            _invalid(f'{what} refers to {{{{{name}}}}}, but template "{called.name}" has no such output.')


def _check_arguments(graph: WorkflowGraph, task: DagTask, what: str) -> None:
    called = graph.templates[task.template]
    given = {p.name for p in task.parameters}
    for parameter in called.inputs_parameters:
        if parameter.value is None and parameter.name not in given:
            _invalid(f'{what} does not supply input parameter "{parameter.name}" of template "{called.name}".')
    given_artifacts = {a.name for a in task.artifacts}
    for artifact in called.inputs_artifacts:
        if artifact.raw is None and artifact.source is None and not artifact.optional \
                and artifact.name not in given_artifacts:
            _invalid(f'{what} does not supply input artifact "{artifact.name}" of template "{called.name}".')


# --- small readers -----------------------------------------------------------------------------------


def _workflow_name(metadata: Mapping[str, Any]) -> str:
    name = metadata.get("name")
    if isinstance(name, str) and name:
        return name
    generate = metadata.get("generateName")
    if isinstance(generate, str) and generate.rstrip("-"):
        return generate[:-1] if generate.endswith("-") else generate
    return "workflow"


def _named_list(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        _invalid(f"{what} must be a list.")
    names: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            _invalid(f"{what}[{index}] must be an object with a non-empty name.")
        if item["name"] in names:
            _invalid(f'{what}: "{item["name"]}" is declared more than once.')
        names.add(item["name"])
    return value


def _string_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        _invalid(f"{what} must be a list.")
    items = []
    for item in value:
        text = scalar(item, what)
        if text is None:
            _invalid(f"{what} must hold strings.")
        items.append(text)
    return items


def _string_map(value: Any, what: str) -> dict[str, str]:
    return {str(key): scalar(item, what) or "" for key, item in mapping(value, what).items()}


def _invalid(message: str) -> NoReturn:
    raise WorkflowError(f"{INVALID}: {message}")


def _unsupported(message: str) -> NoReturn:
    raise WorkflowError(f"{_UNSUPPORTED}: {message}")
