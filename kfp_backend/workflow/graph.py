"""The typed form of a kfp 1.8 Argo Workflow that the executor walks.

`workflow.compile.compile_workflow(document)` builds these from a validated manifest; nothing here
knows about the database or processes. Placeholder strings (`{{inputs.parameters.x}}`...) are kept
verbatim: they are resolved per node at run time (`workflow.expressions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx


@dataclass(frozen=True)
class ParameterDecl:
    """An input parameter of a template (`value` is its default) or a task argument (`value` the expression)."""

    name: str
    value: str | None = None


@dataclass(frozen=True)
class ArtifactDecl:
    """An input/output artifact of a template, or an artifact argument of a task.

    Templates: `path` is where the step reads (inputs) or writes (outputs) it; `raw` is a constant
    (after placeholder substitution) written to `path`; `optional` outputs may be missing.
    Task arguments: `source` is the `from` expression (`{{tasks.T.outputs.artifacts.A}}` or
    `{{inputs.artifacts.A}}`), or `raw` a constant.
    """

    name: str
    path: str | None = None
    raw: str | None = None
    source: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class OutputParameterDecl:
    """An output parameter read from a file the step wrote (Argo's `valueFrom.path`)."""

    name: str
    path: str | None = None
    # DAG templates export a task's output instead (`valueFrom.parameter`, an expression).
    expression: str | None = None
    default: str | None = None


@dataclass(frozen=True)
class RetryStrategy:
    limit: int | None  # None: retry without limit (Argo's default when `limit` is absent)
    policy: str = "OnFailure"  # OnFailure | OnError | Always | OnTransientError
    backoff_seconds: float = 0.0
    backoff_factor: float = 1.0
    backoff_max_seconds: float | None = None


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    # name -> value (placeholders allowed); valueFrom entries are resolved by the executor from
    # `field_refs` (name -> fieldPath, e.g. metadata.name).
    env: tuple[tuple[str, str], ...] = ()
    field_refs: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None


@dataclass(frozen=True)
class DagTask:
    name: str
    template: str
    dependencies: tuple[str, ...] = ()
    parameters: tuple[ParameterDecl, ...] = ()  # arguments.parameters
    artifacts: tuple[ArtifactDecl, ...] = ()  # arguments.artifacts
    when: str | None = None
    with_items: tuple[Any, ...] | None = None  # the literal items (str/int/float/bool/dict/list)
    with_param: str | None = None  # an expression that must resolve to a JSON list


@dataclass
class Template:
    name: str
    kind: str  # "container" or "dag"
    inputs_parameters: tuple[ParameterDecl, ...] = ()
    inputs_artifacts: tuple[ArtifactDecl, ...] = ()
    outputs_parameters: tuple[OutputParameterDecl, ...] = ()
    outputs_artifacts: tuple[ArtifactDecl, ...] = ()
    container: ContainerSpec | None = None
    # DAG templates: tasks by name and the dependency graph (edge dependency -> dependent).
    tasks: dict[str, DagTask] = field(default_factory=dict)
    graph: nx.DiGraph | None = None
    retry: RetryStrategy | None = None
    active_deadline_seconds: float | None = None
    parallelism: int | None = None  # DAG templates: max running children (ParallelFor parallelism)
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    _task_order: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def task_order(self) -> tuple[str, ...]:
        """Tasks in a dependency-respecting, deterministic order (computed once: the executor asks on
        every pass)."""
        if self._task_order is None:
            assert self.graph is not None
            self._task_order = tuple(nx.lexicographical_topological_sort(self.graph))
        return self._task_order

    def leaves(self) -> list[str]:
        """Tasks nothing else in this DAG depends on (Argo's leaf tasks, used to assess the DAG phase)."""
        assert self.graph is not None
        return sorted(name for name in self.graph.nodes if self.graph.out_degree(name) == 0)


@dataclass
class WorkflowGraph:
    name: str  # metadata.name or generateName without the trailing "-"
    entrypoint: str
    templates: dict[str, Template]
    arguments: tuple[ParameterDecl, ...]  # spec.arguments.parameters (value = default)
    argument_artifacts: tuple[ArtifactDecl, ...] = ()  # spec.arguments.artifacts
    on_exit: str | None = None
    active_deadline_seconds: float | None = None
    parallelism: int | None = None
