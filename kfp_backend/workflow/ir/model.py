"""The typed form of a KFP v2 pipeline spec (the kfp 2.x SDK's IR, `PipelineSpec`).

`workflow.ir.parse.parse_pipeline_spec` builds these from a document and checks that every reference in
it resolves (`workflow.ir.checks`). Nothing here reads files or knows about runs: values are kept as the
IR gives them (JSON values; placeholders such as `{{$.inputs.parameters['x']}}` stay verbatim in commands
and arguments, they are resolved per task at run time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Parameter types of `parameterType` (kfp 2.x). TASK_FINAL_STATUS is the struct an exit task receives.
STRING = "STRING"
NUMBER_INTEGER = "NUMBER_INTEGER"
NUMBER_DOUBLE = "NUMBER_DOUBLE"
BOOLEAN = "BOOLEAN"
LIST = "LIST"
STRUCT = "STRUCT"
TASK_FINAL_STATUS = "TASK_FINAL_STATUS"
PARAMETER_TYPES = (STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT, TASK_FINAL_STATUS)

# Trigger strategies: run when every upstream task succeeded (the default), or once they all finished
# whatever their state (exit handlers).
ALL_UPSTREAM_TASKS_SUCCEEDED = "ALL_UPSTREAM_TASKS_SUCCEEDED"
ALL_UPSTREAM_TASKS_COMPLETED = "ALL_UPSTREAM_TASKS_COMPLETED"


@dataclass(frozen=True)
class ParameterSpec:
    """An input or output parameter of a component. `default` is meaningful only when `has_default`
    (a default may itself be null, false or 0)."""

    name: str
    type: str  # one of PARAMETER_TYPES
    default: Any = None
    has_default: bool = False
    optional: bool = False
    description: str | None = None


@dataclass(frozen=True)
class ArtifactType:
    schema_title: str  # e.g. system.Dataset, system.Model, system.Metrics, system.Artifact
    schema_version: str | None = None


@dataclass(frozen=True)
class ArtifactSpec:
    """An input or output artifact of a component; `is_list` for a collected (fan-in) list of artifacts."""

    name: str
    type: ArtifactType
    is_list: bool = False
    optional: bool = False
    description: str | None = None


@dataclass(frozen=True)
class Interface:
    """A component's inputDefinitions or outputDefinitions."""

    parameters: Mapping[str, ParameterSpec] = field(default_factory=dict)
    artifacts: Mapping[str, ArtifactSpec] = field(default_factory=dict)


# --- where a task's inputs come from ------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentInputParameter:
    """An input parameter of the enclosing DAG's component (a pipeline parameter at the root)."""

    name: str


@dataclass(frozen=True)
class TaskOutputParameter:
    """An output parameter of a sibling task in the same DAG."""

    producer_task: str
    output_key: str


@dataclass(frozen=True)
class Constant:
    """A value written in the spec (`runtimeValue.constant`): any JSON value, placeholders allowed in strings."""

    value: Any


@dataclass(frozen=True)
class TaskFinalStatus:
    """The final status of a sibling task (an exit handler's `PipelineTaskFinalStatus` input)."""

    producer_task: str


ParameterSource = ComponentInputParameter | TaskOutputParameter | Constant | TaskFinalStatus


@dataclass(frozen=True)
class TaskInputParameter:
    name: str
    source: ParameterSource
    # A CEL expression applied to the resolved value (e.g. `parseJson(string_value)["tag"]` for a field of a
    # loop item): `workflow.ir.conditions.select`.
    selector: str | None = None


@dataclass(frozen=True)
class ComponentInputArtifact:
    name: str


@dataclass(frozen=True)
class TaskOutputArtifact:
    producer_task: str
    output_key: str


ArtifactSource = ComponentInputArtifact | TaskOutputArtifact


@dataclass(frozen=True)
class TaskInputArtifact:
    name: str
    source: ArtifactSource


# --- task policies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerPolicy:
    condition: str | None = None  # a CEL expression over `inputs.parameter_values` (workflow.ir.conditions)
    strategy: str = ALL_UPSTREAM_TASKS_SUCCEEDED


@dataclass(frozen=True)
class ParameterIterator:
    """`dsl.ParallelFor` over parameters: each item becomes the input `item_input` of one iteration.

    Exactly one of `raw` (a JSON list as text, written in the spec) and `input_parameter` (the name of one
    of the task's own input parameters, a LIST at run time) is set.
    """

    item_input: str
    raw: str | None = None
    input_parameter: str | None = None


@dataclass(frozen=True)
class ArtifactIterator:
    """`dsl.ParallelFor` over a list of artifacts (`input_artifact`, one of the task's input artifacts)."""

    item_input: str
    input_artifact: str


@dataclass(frozen=True)
class RetryPolicy:
    max_retry_count: int  # retries after the first attempt
    backoff_seconds: float = 0.0
    backoff_factor: float = 1.0  # absent: the delay does not grow (the SDK always writes one)
    backoff_max_seconds: float | None = None


@dataclass(frozen=True)
class Task:
    """One task of a DAG: a call of `component` (a container, an importer or a nested DAG)."""

    name: str  # the key in dag.tasks, unique in its DAG
    display_name: str  # taskInfo.name (what the UI and task_details show)
    component: str  # componentRef.name, a key of PipelineSpec.components
    dependent_tasks: tuple[str, ...] = ()  # as written; `Dag.upstream` adds the producers of inputs
    parameters: Mapping[str, TaskInputParameter] = field(default_factory=dict)
    artifacts: Mapping[str, TaskInputArtifact] = field(default_factory=dict)
    trigger: TriggerPolicy = TriggerPolicy()
    parameter_iterator: ParameterIterator | None = None
    artifact_iterator: ArtifactIterator | None = None
    parallelism_limit: int | None = None  # iteratorPolicy.parallelismLimit; None: no limit
    retry: RetryPolicy | None = None
    enable_cache: bool = False  # cachingOptions.enableCache (absent: off, as protobuf reads it)

    @property
    def iterator(self) -> ParameterIterator | ArtifactIterator | None:
        return self.parameter_iterator or self.artifact_iterator


# --- DAGs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterSelector:
    producer_subtask: str
    output_key: str


@dataclass(frozen=True)
class DagOutputParameter:
    """A DAG's output parameter. `one_of`: the first selector whose task ran gives it (`valueFromOneof`,
    the outputs of If/Elif/Else branches); otherwise there is exactly one selector (`valueFromParameter`).
    Inside a ParallelFor's DAG, the value is the list over iterations (`dsl.Collected`)."""

    name: str
    selectors: tuple[ParameterSelector, ...]
    one_of: bool = False


@dataclass(frozen=True)
class ArtifactSelector:
    producer_subtask: str
    output_key: str


@dataclass(frozen=True)
class DagOutputArtifact:
    name: str
    selectors: tuple[ArtifactSelector, ...]


@dataclass(frozen=True)
class Dag:
    tasks: Mapping[str, Task]
    output_parameters: Mapping[str, DagOutputParameter] = field(default_factory=dict)
    output_artifacts: Mapping[str, DagOutputArtifact] = field(default_factory=dict)
    # Every task's upstream tasks: dependentTasks plus the producers its inputs name.
    upstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The tasks in a dependency-respecting, deterministic order (upstream first, then by name).
    order: tuple[str, ...] = ()


# --- components and executors -------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """A component: runs an executor (`executor_label`) or a nested DAG (`dag`), never both."""

    name: str  # the key in `components`, or "root"
    inputs: Interface = Interface()
    outputs: Interface = Interface()
    executor_label: str | None = None
    dag: Dag | None = None


@dataclass(frozen=True)
class Resources:
    """Container resources as the IR states them (recorded; a host process is not limited by them)."""

    cpu_limit: str | None = None
    memory_limit: str | None = None
    cpu_request: str | None = None
    memory_request: str | None = None
    accelerator_type: str | None = None
    accelerator_count: str | None = None


@dataclass(frozen=True)
class ContainerExecutor:
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # (name, value), in order; values may hold placeholders
    resources: Resources = Resources()


@dataclass(frozen=True)
class ImporterExecutor:
    """`dsl.importer`: registers an existing artifact. The URI is a constant or, with
    `artifact_uri_parameter`, the value of that input parameter of the importer task."""

    type: ArtifactType
    artifact_uri: str | None = None
    artifact_uri_parameter: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reimport: bool = False


Executor = ContainerExecutor | ImporterExecutor


@dataclass(frozen=True)
class PipelineSpec:
    name: str  # pipelineInfo.name
    root: Component
    components: Mapping[str, Component]
    executors: Mapping[str, Executor]
    schema_version: str | None = None
    sdk_version: str | None = None
    display_name: str | None = None  # pipelineInfo.displayName
    description: str | None = None  # pipelineInfo.description
    default_pipeline_root: str | None = None
    # The platform spec (`platforms:`, e.g. kubernetes settings) given beside the pipeline spec, as is.
    platform_spec: Mapping[str, Any] | None = None
    # The pipeline spec document itself (without the platform spec), as parsed.
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def component(self, name: str) -> Component:
        return self.root if name == self.root.name else self.components[name]
