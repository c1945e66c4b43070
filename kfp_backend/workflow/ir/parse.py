"""Read a KFP v2 pipeline spec document into the typed `PipelineSpec` (workflow.ir.model).

`parse_pipeline_spec(source)` takes YAML/JSON text, a parsed document or the documents of a multi-document
file; it checks the shape of every field it reads here and then that every name resolves
(`workflow.ir.checks`). Every problem raises WorkflowError naming where it is
("Invalid pipeline spec: ..." for a malformed document, "Unsupported pipeline spec: ..." for what this
server cannot run). Fields the executor has no use for (e.g. `lifecycle`, importer `properties`) are
ignored; fields that would change what runs and that it cannot honour are refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.checks import check_references, dag_order
from kfp_backend.workflow.ir.document import split_documents
from kfp_backend.workflow.ir.model import (
    ALL_UPSTREAM_TASKS_COMPLETED,
    ALL_UPSTREAM_TASKS_SUCCEEDED,
    BOOLEAN,
    LIST,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    PARAMETER_TYPES,
    STRING,
    STRUCT,
    TASK_FINAL_STATUS,
    ArtifactIterator,
    ArtifactSelector,
    ArtifactSpec,
    ArtifactType,
    Component,
    ComponentInputArtifact,
    ComponentInputParameter,
    Constant,
    ContainerExecutor,
    Dag,
    DagOutputArtifact,
    DagOutputParameter,
    Executor,
    ImporterExecutor,
    Interface,
    ParameterIterator,
    ParameterSelector,
    ParameterSource,
    ParameterSpec,
    PipelineSpec,
    Resources,
    RetryPolicy,
    Task,
    TaskFinalStatus,
    TaskInputArtifact,
    TaskInputParameter,
    TaskOutputArtifact,
    TaskOutputParameter,
    TriggerPolicy,
)
from kfp_backend.workflow.values import mapping, optional_string

_INVALID = "Invalid pipeline spec"
_UNSUPPORTED = "Unsupported pipeline spec"
ROOT = "root"

# What `parameterType` of kfp 2.x replaced: the deprecated `type` of schema 2.0.0 specs.
_LEGACY_TYPES = {"STRING": STRING, "INT": NUMBER_INTEGER, "DOUBLE": NUMBER_DOUBLE}
_STRATEGIES = {"TRIGGER_STRATEGY_UNSPECIFIED": ALL_UPSTREAM_TASKS_SUCCEEDED,
               ALL_UPSTREAM_TASKS_SUCCEEDED: ALL_UPSTREAM_TASKS_SUCCEEDED,
               ALL_UPSTREAM_TASKS_COMPLETED: ALL_UPSTREAM_TASKS_COMPLETED}
_OTHER_EXECUTORS = {"resolver": "a resolver", "customJob": "a Vertex AI custom job"}
_Item = TypeVar("_Item")
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)s?\s*")


def parse_pipeline_spec(source: str | bytes | Mapping[str, Any] | Sequence[Any]) -> PipelineSpec:
    """The validated spec of an IR document (text, parsed, or the documents of a multi-document file)."""
    documents = split_documents(source)
    spec = build_pipeline_spec(documents.pipeline_spec, documents.platform_spec)
    check_references(spec)
    return spec


def build_pipeline_spec(document: Mapping[str, Any], platform_spec: Mapping[str, Any] | None = None) -> PipelineSpec:
    """The typed spec of a pipeline spec document, its fields checked one by one (not their references)."""
    info = _mapping(document.get("pipelineInfo"), "pipelineInfo")
    name = info.get("name")
    if not isinstance(name, str) or not name:
        _invalid("pipelineInfo.name is missing.")
    schema_version = _optional_string(document.get("schemaVersion"), "schemaVersion")
    if schema_version is not None and not schema_version.startswith("2."):
        _unsupported(f'schemaVersion "{_text(schema_version)}" is not a 2.x pipeline spec schema.')
    raw_root = document.get("root")
    if not isinstance(raw_root, Mapping):
        _invalid("root must be an object.")
    if raw_root.get("dag") is None:
        _invalid("root must be a DAG (root.dag).")
    components = _each(document.get("components"), "components", lambda key, raw, _: _component(key, raw))
    if ROOT in components:
        _invalid(f'"{ROOT}" cannot be the name of a component: it names the pipeline\'s own DAG.')
    deployment = _mapping(document.get("deploymentSpec"), "deploymentSpec")
    executors = _each(deployment.get("executors"), "deploymentSpec.executors", lambda key, raw, _: _executor(key, raw))
    return PipelineSpec(
        name=name,
        root=_component(ROOT, raw_root),
        components=components,
        executors=executors,
        schema_version=schema_version,
        sdk_version=_optional_string(document.get("sdkVersion"), "sdkVersion"),
        display_name=_optional_string(info.get("displayName"), "pipelineInfo.displayName"),
        description=_optional_string(info.get("description"), "pipelineInfo.description"),
        default_pipeline_root=_optional_string(document.get("defaultPipelineRoot"), "defaultPipelineRoot"),
        platform_spec=platform_spec,
        document=document,
    )


# --- components ---------------------------------------------------------------------------------------


def _component(name: str, raw: Any) -> Component:
    where = "root" if name == ROOT else f'component "{name}"'
    component = _mapping(raw, where)
    label = component.get("executorLabel")
    has_dag = component.get("dag") is not None
    if (label is not None) == has_dag:
        _invalid(f"{where} must have exactly one of executorLabel and dag.")
    if label is not None and (not isinstance(label, str) or not label):
        _invalid(f"{where}: executorLabel must be a non-empty string.")
    return Component(
        name=name,
        inputs=_interface(component.get("inputDefinitions"), f"{where} inputDefinitions", inputs=True),
        outputs=_interface(component.get("outputDefinitions"), f"{where} outputDefinitions", inputs=False),
        executor_label=label,
        dag=_dag(component["dag"], where) if has_dag else None,
    )


def _interface(raw: Any, where: str, inputs: bool) -> Interface:
    interface = _mapping(raw, where)
    return Interface(
        parameters=_each(interface.get("parameters"), f"{where}.parameters",
                         lambda key, value, what: _parameter(key, value, what, inputs), f"{where} parameter"),
        artifacts=_each(interface.get("artifacts"), f"{where}.artifacts", _artifact, f"{where} artifact"),
    )


def _parameter(name: str, raw: Any, where: str, inputs: bool) -> ParameterSpec:
    spec = _mapping(raw, where)
    kind = spec.get("parameterType")
    if kind is None and spec.get("type") is not None:
        kind = _LEGACY_TYPES.get(spec["type"])
    if kind not in PARAMETER_TYPES:
        _invalid(f'{where}: parameterType "{_text(kind)}" is not one of {", ".join(PARAMETER_TYPES)}.')
    has_default = inputs and "defaultValue" in spec
    default = spec.get("defaultValue") if has_default else None
    if has_default:
        default = _typed_default(default, kind, where)
    return ParameterSpec(
        name=name,
        type=kind,
        default=default,
        has_default=has_default,
        optional=_boolean(spec.get("isOptional"), f"{where} isOptional"),
        description=_optional_string(spec.get("description"), f"{where} description"),
    )


def _typed_default(value: Any, kind: str, where: str) -> Any:
    """The default as its type reads it: JSON numbers are doubles, so an integer default `2.0` is 2."""
    if value is None:
        return None
    fits = {
        STRING: isinstance(value, str),
        NUMBER_INTEGER: _is_number(value) and float(value).is_integer(),
        NUMBER_DOUBLE: _is_number(value),
        BOOLEAN: isinstance(value, bool),
        LIST: isinstance(value, list),
        STRUCT: isinstance(value, Mapping),
        TASK_FINAL_STATUS: isinstance(value, Mapping),
    }[kind]
    if not fits:
        _invalid(f"{where}: the defaultValue {_text(value)} is not a {kind}.")
    if kind == NUMBER_INTEGER:
        return int(value)
    if kind == NUMBER_DOUBLE:
        return float(value)
    return value


def _artifact(name: str, raw: Any, where: str) -> ArtifactSpec:
    spec = _mapping(raw, where)
    return ArtifactSpec(
        name=name,
        type=_artifact_type(spec.get("artifactType"), f"{where} artifactType"),
        is_list=_boolean(spec.get("isArtifactList"), f"{where} isArtifactList"),
        optional=_boolean(spec.get("isOptional"), f"{where} isOptional"),
        description=_optional_string(spec.get("description"), f"{where} description"),
    )


def _artifact_type(raw: Any, where: str) -> ArtifactType:
    schema = _mapping(raw, where)
    title = schema.get("schemaTitle")
    if title is None:
        if schema.get("schemaUri") is not None or schema.get("instanceSchema") is not None:
            _unsupported(f"{where}: only artifact types named by schemaTitle are supported.")
        title = "system.Artifact"  # what an untyped artifact is
    if not isinstance(title, str) or not title:
        _invalid(f"{where}: schemaTitle must be a non-empty string.")
    return ArtifactType(title, _optional_string(schema.get("schemaVersion"), f"{where} schemaVersion"))


# --- DAGs and tasks -----------------------------------------------------------------------------------


def _dag(raw: Any, where: str) -> Dag:
    dag = _mapping(raw, f"{where} dag")
    raw_tasks = _named(dag.get("tasks"), f"{where} dag.tasks")
    if not raw_tasks:
        _invalid(f"{where}: dag.tasks must name at least one task.")
    outputs = _mapping(dag.get("outputs"), f"{where} dag.outputs")
    tasks = _each(raw_tasks, f"{where} dag.tasks", _task, f"{where} task")
    upstream, order = dag_order(tasks, where)
    return Dag(
        tasks=tasks,
        upstream=upstream,
        order=order,
        output_parameters=_each(outputs.get("parameters"), f"{where} dag.outputs.parameters", _dag_output_parameter,
                                f"{where} dag output parameter"),
        output_artifacts=_each(outputs.get("artifacts"), f"{where} dag.outputs.artifacts", _dag_output_artifact,
                               f"{where} dag output artifact"),
    )


def _task(name: str, raw: Any, where: str) -> Task:
    task = _mapping(raw, where)
    reference = _mapping(task.get("componentRef"), f"{where} componentRef")
    component = reference.get("name")
    if not isinstance(component, str) or not component:
        _invalid(f"{where}: componentRef.name is missing.")
    info = _mapping(task.get("taskInfo"), f"{where} taskInfo")
    display_name = _optional_string(info.get("name"), f"{where} taskInfo.name") or name
    inputs = _mapping(task.get("inputs"), f"{where} inputs")
    if task.get("parameterIterator") is not None and task.get("artifactIterator") is not None:
        _invalid(f"{where} has both parameterIterator and artifactIterator.")
    iterator_policy = _mapping(task.get("iteratorPolicy"), f"{where} iteratorPolicy")
    limit = iterator_policy.get("parallelismLimit")
    caching = _mapping(task.get("cachingOptions"), f"{where} cachingOptions")
    return Task(
        name=name,
        display_name=display_name,
        component=component,
        dependent_tasks=tuple(dict.fromkeys(_strings(task.get("dependentTasks"), f"{where} dependentTasks"))),
        parameters=_each(inputs.get("parameters"), f"{where} inputs.parameters", _input_parameter,
                         f"{where} input parameter"),
        artifacts=_each(inputs.get("artifacts"), f"{where} inputs.artifacts", _input_artifact,
                        f"{where} input artifact"),
        trigger=_trigger(task.get("triggerPolicy"), f"{where} triggerPolicy"),
        parameter_iterator=_parameter_iterator(task.get("parameterIterator"), f"{where} parameterIterator"),
        artifact_iterator=_artifact_iterator(task.get("artifactIterator"), f"{where} artifactIterator"),
        parallelism_limit=_count(limit, f"{where} iteratorPolicy.parallelismLimit") or None,  # 0: no limit
        retry=_retry(task.get("retryPolicy"), f"{where} retryPolicy"),
        enable_cache=_boolean(caching.get("enableCache"), f"{where} cachingOptions.enableCache"),
    )


def _input_parameter(name: str, raw: Any, where: str) -> TaskInputParameter:
    spec = _mapping(raw, where)
    kinds = [key for key in ("componentInputParameter", "taskOutputParameter", "runtimeValue", "taskFinalStatus")
             if spec.get(key) is not None]
    if len(kinds) != 1:
        _invalid(f"{where} must have exactly one of componentInputParameter, taskOutputParameter, runtimeValue "
                 "and taskFinalStatus.")
    kind = kinds[0]
    source: ParameterSource
    if kind == "componentInputParameter":
        source = ComponentInputParameter(_name(spec[kind], f"{where} componentInputParameter"))
    elif kind == "taskOutputParameter":
        output = _mapping(spec[kind], f"{where} taskOutputParameter")
        source = TaskOutputParameter(
            producer_task=_name(output.get("producerTask"), f"{where} taskOutputParameter.producerTask"),
            output_key=_name(output.get("outputParameterKey"), f"{where} taskOutputParameter.outputParameterKey"),
        )
    elif kind == "runtimeValue":
        value = _mapping(spec[kind], f"{where} runtimeValue")
        if "constant" not in value:
            if value.get("runtimeParameter") is not None:
                _unsupported(f"{where}: runtimeValue.runtimeParameter is not supported; use componentInputParameter.")
            _invalid(f"{where}: runtimeValue.constant is missing.")
        source = Constant(value["constant"])
    else:
        status = _mapping(spec[kind], f"{where} taskFinalStatus")
        source = TaskFinalStatus(_name(status.get("producerTask"), f"{where} taskFinalStatus.producerTask"))
    selector = _optional_string(spec.get("parameterExpressionSelector"), f"{where} parameterExpressionSelector")
    return TaskInputParameter(name=name, source=source, selector=selector or None)


def _input_artifact(name: str, raw: Any, where: str) -> TaskInputArtifact:
    spec = _mapping(raw, where)
    has_component_input = spec.get("componentInputArtifact") is not None
    has_task_output = spec.get("taskOutputArtifact") is not None
    if has_component_input == has_task_output:
        if spec.get("runtimeArtifact") is not None:
            _unsupported(f"{where}: runtimeArtifact inputs are not supported.")
        _invalid(f"{where} must have exactly one of componentInputArtifact and taskOutputArtifact.")
    if has_component_input:
        return TaskInputArtifact(name, ComponentInputArtifact(_name(spec["componentInputArtifact"],
                                                                    f"{where} componentInputArtifact")))
    output = _mapping(spec["taskOutputArtifact"], f"{where} taskOutputArtifact")
    return TaskInputArtifact(name, TaskOutputArtifact(
        producer_task=_name(output.get("producerTask"), f"{where} taskOutputArtifact.producerTask"),
        output_key=_name(output.get("outputArtifactKey"), f"{where} taskOutputArtifact.outputArtifactKey"),
    ))


def _trigger(raw: Any, where: str) -> TriggerPolicy:
    policy = _mapping(raw, where)
    condition = _optional_string(policy.get("condition"), f"{where} condition")
    strategy = policy.get("strategy") or ALL_UPSTREAM_TASKS_SUCCEEDED
    if strategy not in _STRATEGIES:
        _invalid(f'{where}: strategy "{_text(strategy)}" is not one of {", ".join(_STRATEGIES)}.')
    return TriggerPolicy(condition=condition or None, strategy=_STRATEGIES[strategy])


def _parameter_iterator(raw: Any, where: str) -> ParameterIterator | None:
    if raw is None:
        return None
    iterator = _mapping(raw, where)
    items = _mapping(iterator.get("items"), f"{where} items")
    has_raw, has_input = items.get("raw") is not None, items.get("inputParameter") is not None
    if has_raw == has_input:
        _invalid(f"{where}: items must have exactly one of raw and inputParameter.")
    raw_items = None
    if has_raw:
        raw_items = items["raw"]
        if not isinstance(raw_items, str):
            _invalid(f"{where}: items.raw must be a JSON list written as a string.")
        try:
            decoded = json.loads(raw_items)
        except ValueError:
            _invalid(f"{where}: items.raw is not valid JSON.")
        if not isinstance(decoded, list):
            _invalid(f"{where}: items.raw must be a JSON list.")
    return ParameterIterator(
        item_input=_name(iterator.get("itemInput"), f"{where} itemInput"),
        raw=raw_items,
        input_parameter=_name(items["inputParameter"], f"{where} items.inputParameter") if has_input else None,
    )


def _artifact_iterator(raw: Any, where: str) -> ArtifactIterator | None:
    if raw is None:
        return None
    iterator = _mapping(raw, where)
    items = _mapping(iterator.get("items"), f"{where} items")
    return ArtifactIterator(
        item_input=_name(iterator.get("itemInput"), f"{where} itemInput"),
        input_artifact=_name(items.get("inputArtifact"), f"{where} items.inputArtifact"),
    )


def _retry(raw: Any, where: str) -> RetryPolicy | None:
    if raw is None:
        return None
    policy = _mapping(raw, where)
    factor = policy.get("backoffFactor")
    if factor is not None and (not _is_number(factor) or not math.isfinite(factor) or factor < 0):
        _invalid(f"{where}: backoffFactor must be a non-negative number.")
    max_duration = policy.get("backoffMaxDuration")
    return RetryPolicy(
        max_retry_count=_count(policy.get("maxRetryCount"), f"{where} maxRetryCount"),
        backoff_seconds=_duration(policy.get("backoffDuration"), f"{where} backoffDuration"),
        backoff_factor=float(factor) if factor else 1.0,
        backoff_max_seconds=_duration(max_duration, f"{where} backoffMaxDuration") if max_duration else None,
    )


def _dag_output_parameter(name: str, raw: Any, where: str) -> DagOutputParameter:
    spec = _mapping(raw, where)
    single, one_of = spec.get("valueFromParameter"), spec.get("valueFromOneof")
    if (single is None) == (one_of is None):
        _invalid(f"{where} must have exactly one of valueFromParameter and valueFromOneof.")
    if single is not None:
        return DagOutputParameter(name, (_parameter_selector(single, f"{where} valueFromParameter"),))
    raw_selectors = _mapping(one_of, f"{where} valueFromOneof").get("parameterSelectors")
    if not isinstance(raw_selectors, list) or not raw_selectors:
        _invalid(f"{where}: valueFromOneof.parameterSelectors must be a non-empty list.")
    selectors = tuple(
        _parameter_selector(item, f"{where} valueFromOneof.parameterSelectors[{index}]")
        for index, item in enumerate(raw_selectors)
    )
    return DagOutputParameter(name, selectors, one_of=True)


def _parameter_selector(raw: Any, where: str) -> ParameterSelector:
    selector = _mapping(raw, where)
    return ParameterSelector(
        producer_subtask=_name(selector.get("producerSubtask"), f"{where} producerSubtask"),
        output_key=_name(selector.get("outputParameterKey"), f"{where} outputParameterKey"),
    )


def _dag_output_artifact(name: str, raw: Any, where: str) -> DagOutputArtifact:
    raw_selectors = _mapping(raw, where).get("artifactSelectors")
    if not isinstance(raw_selectors, list) or not raw_selectors:
        _invalid(f"{where}: artifactSelectors must be a non-empty list.")
    selectors = []
    for index, item in enumerate(raw_selectors):
        what = f"{where} artifactSelectors[{index}]"
        selector = _mapping(item, what)
        selectors.append(ArtifactSelector(
            producer_subtask=_name(selector.get("producerSubtask"), f"{what}.producerSubtask"),
            output_key=_name(selector.get("outputArtifactKey"), f"{what}.outputArtifactKey"),
        ))
    return DagOutputArtifact(name, tuple(selectors))


# --- executors ----------------------------------------------------------------------------------------


def _executor(label: str, raw: Any) -> Executor:
    where = f'executor "{label}"'
    spec = _mapping(raw, where)
    for key, what in _OTHER_EXECUTORS.items():
        if spec.get(key) is not None:
            _unsupported(f"{where} is {what}: only container and importer executors can be run.")
    has_container, has_importer = spec.get("container") is not None, spec.get("importer") is not None
    if has_container == has_importer:
        _invalid(f"{where} must have exactly one of container and importer.")
    if has_importer:
        return _importer(spec["importer"], f"{where} importer")
    container = _mapping(spec["container"], f"{where} container")
    image = container.get("image")
    if not isinstance(image, str) or not image:
        _invalid(f"{where}: container.image is missing.")
    command = _strings(container.get("command"), f"{where} container.command")
    if not command:
        _unsupported(f"{where}: the container has no command. A step runs as a host process and the image's "
                     "ENTRYPOINT cannot be emulated; give the container an explicit command.")
    env = []
    for index, item in enumerate(_list(container.get("env"), f"{where} container.env")):
        variable = _mapping(item, f"{where} container.env[{index}]")
        env.append((_name(variable.get("name"), f"{where} container.env[{index}].name"),
                    _optional_string(variable.get("value"), f"{where} container.env[{index}].value") or ""))
    return ContainerExecutor(
        image=image,
        command=tuple(command),
        args=tuple(_strings(container.get("args"), f"{where} container.args")),
        env=tuple(env),
        resources=_resources(container.get("resources"), f"{where} container.resources"),
    )


def _resources(raw: Any, where: str) -> Resources:
    spec = _mapping(raw, where)
    accelerator = _mapping(spec.get("accelerator"), f"{where} accelerator")

    def pick(*keys: str) -> str | None:  # kfp 2.x writes strings (resourceCpuLimit); older specs numbers
        value = next((spec.get(key) for key in keys if spec.get(key) not in (None, "", 0)), None)
        return None if value is None else _text(value)

    count = accelerator.get("resourceCount") or accelerator.get("count")
    return Resources(
        cpu_limit=pick("resourceCpuLimit", "cpuLimit"),
        memory_limit=pick("resourceMemoryLimit", "memoryLimit"),
        cpu_request=pick("resourceCpuRequest", "cpuRequest"),
        memory_request=pick("resourceMemoryRequest", "memoryRequest"),
        accelerator_type=_optional_string(accelerator.get("resourceType") or accelerator.get("type"),
                                          f"{where} accelerator type"),
        accelerator_count=None if count in (None, "", 0) else _text(count),
    )


def _importer(raw: Any, where: str) -> ImporterExecutor:
    spec = _mapping(raw, where)
    uri = _mapping(spec.get("artifactUri"), f"{where} artifactUri")
    constant, parameter = uri.get("constant"), uri.get("runtimeParameter")
    if (constant is None) == (parameter is None):
        _invalid(f"{where}: artifactUri must have exactly one of constant and runtimeParameter.")
    if constant is not None and (not isinstance(constant, str) or not constant):
        _invalid(f"{where}: artifactUri.constant must be a non-empty string.")
    return ImporterExecutor(
        type=_artifact_type(spec.get("typeSchema"), f"{where} typeSchema"),
        artifact_uri=constant,
        artifact_uri_parameter=_name(parameter, f"{where} artifactUri.runtimeParameter") if parameter else None,
        metadata=_mapping(spec.get("metadata"), f"{where} metadata"),
        reimport=_boolean(spec.get("reimport"), f"{where} reimport"),
    )


# --- small readers ------------------------------------------------------------------------------------


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    return mapping(value, what, _INVALID)


def _named(value: Any, what: str) -> Mapping[str, Any]:
    """A map keyed by names (components, tasks, parameters...): keys must be non-empty strings."""
    named = _mapping(value, what)
    for key in named:
        if not isinstance(key, str) or not key:
            _invalid(f"{what}: {_text(key)} is not a valid name.")
    return named


def _each(value: Any, what: str, build: Callable[[str, Any, str], _Item], item: str = "") -> dict[str, _Item]:
    """A map keyed by names built item by item: `build(name, raw, 'ITEM "name"')`."""
    return {key: build(key, raw, f'{item} "{key}"') for key, raw in _named(value, what).items()}


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        _invalid(f"{what} must be a list.")
    return value


def _strings(value: Any, what: str) -> list[str]:
    items = _list(value, what)
    if not all(isinstance(item, str) for item in items):
        _invalid(f"{what} must hold strings.")
    return items


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        _invalid(f"{what} must be a non-empty string.")
    return value


def _optional_string(value: Any, what: str) -> str | None:
    return optional_string(value, what, _INVALID)


def _boolean(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        _invalid(f"{what} must be true or false.")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any, what: str) -> int:
    """A non-negative whole number (protobuf int32: JSON may write it as 3, 3.0 or "3")."""
    if value is None:
        return 0
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        return int(value)
    if not _is_number(value) or not math.isfinite(value) or not float(value).is_integer() or value < 0:
        _invalid(f"{what} must be a non-negative whole number.")
    return int(value)


def _duration(value: Any, what: str) -> float:
    """Seconds in a protobuf Duration as JSON writes it ("30s", "0.5s"), or a number of seconds."""
    if value is None:
        return 0.0
    if _is_number(value) and math.isfinite(value) and value >= 0:
        return float(value)
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        _invalid(f'{what} "{_text(value)}" is not a duration in seconds (e.g. "30s").')
    return float(match.group(1))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, Mapping | list):
        return f"<{'object' if isinstance(value, Mapping) else 'list'}>"
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)


def _invalid(message: str) -> NoReturn:
    raise WorkflowError(f"{_INVALID}: {message}")


def _unsupported(message: str) -> NoReturn:
    raise WorkflowError(f"{_UNSUPPORTED}: {message}")
