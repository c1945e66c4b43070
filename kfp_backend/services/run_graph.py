"""The graph of a run, or of a pipeline version, as the web UI draws it (a JSON-able dict).

The structure comes from the spec: the Argo workflow's templates (kfp 1.8) or the pipeline spec's DAGs (IR,
kfp 2.x), walked the way the executor walks them, so every node name (`parent.task`, `loop(i:desc)`,
`loop(i)`) and id (`executor.node_table`: Argo's fnv hash of the name) is the one the executor gives the
node when it creates it. The state comes from the run's node rows (Argo's shape, see services/run_status.py):
a spec node with a row shows the row's phase, times and message; one without (not started yet) is
`planned`, Pending while the run is active. A pipeline version has no rows: every node is planned.

What is drawn (the JSON contract: docs/ui_graph.md):
- nodes: steps (`pod`), retried steps (`retry`, one node for all its attempts), skipped or omitted tasks
  (`skipped`), loops whose items are not known yet (`loop`), and `junction`s (see `_connect`);
- groups: sub-DAGs, conditions, exit-handler bodies, loops and their iterations, nested as in the spec;
  the root DAG is the whole drawing, not a group;
- edges between nodes only: a dependency on a group starts at the group's last steps and one into a group
  ends at its first steps, as a layout of compound graphs needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller
from kfp_backend.services.authorization import SINGLE_USER, Authorizer
from kfp_backend.services.errors import NotFound
from kfp_backend.services.run_status import load_object
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import pipelines_repo, run_graph_repo
from kfp_backend.store.db import Database
from kfp_backend.store.states import FINAL_RUN_STATUSES, PENDING
from kfp_backend.workflow import expressions as ex
from kfp_backend.workflow.compile import compile_workflow
from kfp_backend.workflow.graph import DagTask, Template, WorkflowGraph
from kfp_backend.workflow.ir.document import is_pipeline_spec, load_documents
from kfp_backend.workflow.ir.model import ALL_UPSTREAM_TASKS_COMPLETED, Component, PipelineSpec, Task
from kfp_backend.workflow.ir.parse import parse_pipeline_spec

ARGO = "argo"
IR = "ir"
# Node types.
POD, RETRY, SKIPPED, LOOP, JUNCTION = "pod", "retry", "skipped", "loop", "junction"
# Group kinds.
DAG, CONDITION, EXIT_HANDLER, LOOP_GROUP, ITERATION = "dag", "condition", "exit_handler", "loop", "iteration"
# kfp 1.8 puts a step's display name (set_display_name) in its template's annotations.
DISPLAY_NAME_ANNOTATION = "pipelines.kubeflow.org/task_display_name"
_ROW_TYPES = {"Pod": POD, "Retry": RETRY, "Skipped": SKIPPED}


class RunGraphService:
    def __init__(self, db: Database, authorizer: Authorizer = SINGLE_USER) -> None:
        self._db = db
        self._authz = authorizer

    def run_graph(self, run_id: str, *, caller: Caller) -> dict[str, Any]:
        """The graph of a run, authorized as GetRun; two queries (the run with its manifest, the node data)."""
        with transaction(self._db, write=False) as session:
            row = run_graph_repo.run_graph_row(session, run_id)
            if row is None:
                raise NotFound.resource("Run", run_id)
            self._authz.namespace(caller, row.namespace, authz.RUNS, authz.GET, run_id)
            node_texts = run_graph_repo.node_data(session, run_id)
        status = load_object(row.workflow_status)
        active = row.status not in FINAL_RUN_STATUSES
        rows = [load_object(text) for text in node_texts]
        graph = _graph(row.workflow, rows, planned_phase=PENDING if active else "", fallback_name=run_id)
        return {
            "run_id": run_id,
            "status": row.status,
            "active": active,
            "started_at": status.get("startedAt") or None,
            "finished_at": status.get("finishedAt") or None,
            "progress": status.get("progress") or "",
            "message": status.get("message") or "",
            **graph,
        }

    def version_graph(self, version_id: str, *, caller: Caller) -> dict[str, Any]:
        """The graph of a pipeline version's spec (every node planned), authorized as GetPipelineVersion."""
        with transaction(self._db, write=False) as session:
            if pipelines_repo.get_version(session, version_id) is None:
                raise NotFound.resource("Version", version_id).wrap("Get pipeline version failed.")
            self._authz.version(session, caller, version_id, authz.GET)
            template = pipelines_repo.get_template(session, version_id) or ""
        return {
            "pipeline_version_id": version_id, "status": "", "active": False,
            **_graph(template, [], planned_phase="", fallback_name="pipeline"),
        }


# --------------------------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class _Spec:
    format: str
    workflow_name: str
    argo: WorkflowGraph | None = None
    ir: PipelineSpec | None = None


@lru_cache(maxsize=64)
def _parsed_spec(text: str, fallback_name: str) -> _Spec | str:
    """The spec of a run's workflow or a version's template (kept: a live run's graph is asked for every
    few seconds and its spec never changes), or why it cannot be read."""
    try:
        try:  # what runs store (and Argo versions): JSON, read much faster than as YAML
            documents = [json.loads(text)]
        except ValueError:
            documents = load_documents(text)
        if is_pipeline_spec(documents):
            document = documents[0] if len(documents) == 1 else documents
            spec = parse_pipeline_spec(document)
            metadata = document.get("metadata") if isinstance(document, dict) else None
            name = metadata.get("name") if isinstance(metadata, dict) else None
            return _Spec(IR, str(name or spec.name or fallback_name), ir=spec)
        document = documents[0] if documents else None
        if not isinstance(document, dict):
            return "the pipeline is not an Argo workflow or a KFP pipeline spec"
        graph = compile_workflow(document)
        metadata = document.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return _Spec(ARGO, str(name or graph.name or fallback_name), argo=graph)
    except Exception as exc:  # a view of stored data: a spec it cannot read is reported, never a 500
        return str(exc) or type(exc).__name__


def _graph(text: str, rows: list[dict[str, Any]], *, planned_phase: str, fallback_name: str) -> dict[str, Any]:
    spec = _parsed_spec(text, fallback_name) if text else "the run has no workflow"
    if isinstance(spec, str):
        builder = _Builder("", rows, planned_phase)
        builder.rows_only()
        return {"format": "", "spec_error": spec, **builder.result()}
    if spec.argo is not None:
        argo = _ArgoGraph(spec.argo, spec.workflow_name, rows, planned_phase)
        argo.build()
        return {"format": ARGO, **argo.result()}
    assert spec.ir is not None
    ir = _IrGraph(spec.ir, spec.workflow_name, rows, planned_phase)
    ir.build()
    return {"format": IR, **ir.result()}


# ------------------------------------------------------------------------------------------- the builder


@dataclass
class _Ends:
    """The nodes an edge into an item ends at (its first steps) and those an edge out of it starts from."""

    entries: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)

    def extend(self, other: _Ends) -> None:
        self.entries.extend(other.entries)
        self.exits.extend(other.exits)


class _Builder:
    def __init__(self, workflow_name: str, rows: Iterable[Mapping[str, Any]], planned_phase: str) -> None:
        self.workflow_name = workflow_name
        self.rows: dict[str, Mapping[str, Any]] = {str(row.get("name", "")): row for row in rows}
        self.planned_phase = planned_phase
        self.nodes: list[dict[str, Any]] = []
        self.groups: list[dict[str, Any]] = []
        self.edges: dict[tuple[str, str], None] = {}  # an ordered set

    def result(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "edges": [{"from": source, "to": target} for source, target in self.edges],
            "groups": self.groups,
        }

    def node_id(self, name: str) -> str:
        return ex.node_id(self.workflow_name, name)

    def _state(self, name: str, row: Mapping[str, Any] | None) -> dict[str, Any]:
        if row is None:
            return {"id": self.node_id(name), "name": name, "phase": self.planned_phase, "started_at": None,
                    "finished_at": None, "message": "", "planned": True}
        return {
            "id": str(row.get("id") or self.node_id(name)), "name": name, "phase": str(row.get("phase") or ""),
            "started_at": row.get("startedAt") or None, "finished_at": row.get("finishedAt") or None,
            "message": row.get("message") if isinstance(row.get("message"), str) else "", "planned": False,
        }

    def leaf(
        self, name: str, node_type: str, display: str, group: str | None, *, template: str = "",
        max_attempts: int | None = None, exit_handler: bool = False,
    ) -> _Ends:
        row = self.rows.get(name)
        if row is not None:
            node_type = _ROW_TYPES.get(str(row.get("type")), node_type)
        node = {**self._state(name, row), "display_name": display, "type": node_type, "group": group,
                "template": template, "exit_handler": exit_handler, "pod_id": None}
        if row is not None and node_type == POD:
            node["pod_id"] = node["id"]
        if node_type == RETRY:
            attempts = [self.rows[n] for n in (row or {}).get("_attempts", []) if n in self.rows]
            node["attempts"] = [
                {key: self._state(str(a.get("name")), a)[key] for key in
                 ("id", "phase", "started_at", "finished_at", "message")}
                for a in attempts
            ]
            node["attempt"] = len(attempts) or None
            node["max_attempts"] = max_attempts
            if attempts:
                node["pod_id"] = node["attempts"][-1]["id"]
        self.nodes.append(node)
        return _Ends([node["id"]], [node["id"]])

    def group(
        self, name: str, kind: str, display: str, parent: str | None, *, template: str = "", condition: str = "",
    ) -> str:
        group = {**self._state(name, self.rows.get(name)), "display_name": display, "kind": kind, "parent": parent,
                 "template": template}
        if condition:
            group["condition"] = condition
        self.groups.append(group)
        return group["id"]

    def iteration(
        self, name: str, display: str, loop: str | None, template: str, members: Callable[[str], _Ends],
    ) -> _Ends:
        """A loop iteration: a group of its DAG's members, or, when that is a single step, the step alone in the
        loop's group, named after the iteration (`step(1:b)`): a loop of 200 one-step iterations is one box of
        200 nodes, not 200 boxes (compound layouts cost by the box)."""
        first_node, first_group = len(self.nodes), len(self.groups)
        group_id = self.group(name, ITERATION, display, loop, template=template)
        ends = members(group_id)
        added = self.nodes[first_node:]
        if len(added) == 1 and len(self.groups) == first_group + 1:
            del self.groups[first_group]
            step = added[0]
            step["group"] = loop
            step["display_name"] += display[display.find("("):] if "(" in display else ""
        return ends

    def connect(self, source: str, source_ends: _Ends, target: str, target_ends: _Ends, group: str | None) -> None:
        """Edges from `source`'s exits to `target`'s entries; many to many goes through a junction node
        (a loop of 100 after a loop of 100: 200 edges, not 10,000)."""
        exits, entries = source_ends.exits, target_ends.entries
        if len(exits) > 1 and len(entries) > 1:
            junction = self.node_id(f"{source}->{target}")
            self.nodes.append({
                "id": junction, "name": f"{source}->{target}", "display_name": "", "type": JUNCTION, "phase": "",
                "started_at": None, "finished_at": None, "message": "", "planned": False, "group": group,
                "template": "", "exit_handler": False, "pod_id": None,
            })
            for node in exits:
                self.edges[(node, junction)] = None
            for node in entries:
                self.edges[(junction, node)] = None
            return
        for node in exits:
            for other in entries:
                self.edges[(node, other)] = None

    def rows_only(self) -> None:
        """Without a readable spec: the steps the rows hold, unconnected."""
        attempts = {n for row in self.rows.values() for n in row.get("_attempts", [])}
        for name, row in sorted(self.rows.items()):
            if row.get("type") in _ROW_TYPES and name not in attempts:
                self.leaf(name, POD, str(row.get("displayName") or name), None)


# ----------------------------------------------------------------------------------------- Argo (kfp 1.8)


class _ArgoGraph(_Builder):
    def __init__(self, graph: WorkflowGraph, workflow_name: str, rows: Iterable[Mapping[str, Any]],
                 planned_phase: str) -> None:
        super().__init__(workflow_name, rows, planned_phase)
        self.graph = graph

    def build(self) -> None:
        entry = self.graph.templates[self.graph.entrypoint]
        if entry.kind == "dag":
            self.dag(self.workflow_name, entry, None)
        else:
            self.item(self.workflow_name, None, entry, self.graph.entrypoint, None)
        if self.graph.on_exit:
            self.item(f"{self.workflow_name}.onExit", None, self.graph.templates[self.graph.on_exit], "onExit", None,
                      exit_handler=True)

    def item(
        self, name: str, task: DagTask | None, template: Template, display: str, group: str | None, *,
        in_loop: bool = False, exit_handler: bool = False,
    ) -> _Ends:
        row = self.rows.get(name)
        row_type = row.get("type") if row is not None else None
        is_loop = task is not None and not in_loop and _argo_loop(task)
        if row_type in _ROW_TYPES or (row_type is None and template.kind != "dag" and not is_loop):
            limit = template.retry.limit if template.retry is not None else None
            if not in_loop:
                display = template.annotations.get(DISPLAY_NAME_ANNOTATION, display)
            return self.leaf(name, RETRY if template.retry is not None else POD, display, group,
                             template=template.name, max_attempts=limit + 1 if limit is not None else None,
                             exit_handler=exit_handler)
        if task is not None and (row_type == "TaskGroup" or is_loop):
            return self.loop(name, task, template, display, group, row)
        if in_loop:
            return self.iteration(name, display, group, template.name,
                                  lambda group_id: self.dag(name, template, group_id))
        condition = task.when or "" if task is not None else ""
        group_id = self.group(name, _argo_group_kind(task, template), display, group, template=template.name,
                              condition=condition)
        return self.dag(name, template, group_id)

    def loop(
        self, name: str, task: DagTask, template: Template, display: str, group: str | None,
        row: Mapping[str, Any] | None,
    ) -> _Ends:
        items = row.get("_items") if row is not None else task.with_items
        if not isinstance(items, list | tuple) or not items:  # items of a withParam not known yet
            return self.leaf(name, LOOP, display, group, template=template.name)
        loop_id = self.group(name, LOOP_GROUP, display, group, template=template.name)
        ends = _Ends()
        for index, item in enumerate(items):
            description = ex.item_description(index, item)
            ends.extend(self.item(f"{name}({description})", None, template, f"{task.name}({description})", loop_id,
                                  in_loop=True))
        return ends

    def dag(self, name: str, template: Template, group: str | None) -> _Ends:
        ends: dict[str, _Ends] = {}
        for task_name in template.task_order():
            task = template.tasks[task_name]
            ends[task_name] = self.item(f"{name}.{task_name}", task, self.graph.templates[task.template], task_name,
                                        group)
        result = _Ends()
        for task_name in template.task_order():
            task = template.tasks[task_name]
            for dependency in task.dependencies:
                self.connect(f"{name}.{dependency}", ends[dependency], f"{name}.{task_name}", ends[task_name], group)
            if not task.dependencies:
                result.entries.extend(ends[task_name].entries)
        for leaf in template.leaves():
            result.exits.extend(ends[leaf].exits)
        return result


def _argo_loop(task: DagTask) -> bool:
    return task.with_items is not None or task.with_param is not None


def _argo_group_kind(task: DagTask | None, template: Template) -> str:
    if task is not None and task.when:
        return CONDITION
    if template.name.startswith("exit-handler"):
        return EXIT_HANDLER
    if template.name.startswith("condition-"):
        return CONDITION
    return DAG


# ---------------------------------------------------------------------------------------- IR (kfp 2.x)


class _IrGraph(_Builder):
    def __init__(self, spec: PipelineSpec, workflow_name: str, rows: Iterable[Mapping[str, Any]],
                 planned_phase: str) -> None:
        super().__init__(workflow_name, rows, planned_phase)
        self.spec = spec

    def build(self) -> None:
        self.dag(self.workflow_name, self.spec.root, None)

    def item(
        self, name: str, task: Task | None, component: Component, display: str, group: str | None, *,
        in_loop: bool = False,
    ) -> _Ends:
        row = self.rows.get(name)
        row_type = row.get("type") if row is not None else None
        exit_handler = task is not None and task.trigger.strategy == ALL_UPSTREAM_TASKS_COMPLETED
        is_loop = task is not None and not in_loop and task.iterator is not None
        if row_type in _ROW_TYPES or (row_type is None and component.dag is None and not is_loop):
            retry = task.retry if task is not None else None
            return self.leaf(name, RETRY if retry is not None else POD, display, group, template=component.name,
                             max_attempts=retry.max_retry_count + 1 if retry is not None else None,
                             exit_handler=exit_handler)
        if task is not None and (row_type == "TaskGroup" or is_loop):
            return self.loop(name, task, component, display, group, row)
        if in_loop:
            return self.iteration(name, display, group, component.name,
                                  lambda group_id: self.dag(name, component, group_id))
        condition = task.trigger.condition or "" if task is not None else ""
        group_id = self.group(name, _ir_group_kind(task), display, group, template=component.name, condition=condition)
        return self.dag(name, component, group_id)

    def loop(
        self, name: str, task: Task, component: Component, display: str, group: str | None,
        row: Mapping[str, Any] | None,
    ) -> _Ends:
        items: Any = row.get("_items") if row is not None else None
        raw = getattr(task.iterator, "raw", None)
        if items is None and raw is not None:
            try:
                items = json.loads(raw)
            except ValueError:
                items = None
        if not isinstance(items, list) or not items:  # items from a parameter or artifacts, not known yet
            return self.leaf(name, LOOP, display, group, template=component.name)
        loop_id = self.group(name, LOOP_GROUP, display, group, template=component.name)
        ends = _Ends()
        for index in range(len(items)):
            ends.extend(self.item(f"{name}({index})", None, component, f"{display}({index})", loop_id, in_loop=True))
        return ends

    def dag(self, name: str, component: Component, group: str | None) -> _Ends:
        dag = component.dag
        assert dag is not None
        ends: dict[str, _Ends] = {}
        for task_name in dag.order:
            task = dag.tasks[task_name]
            ends[task_name] = self.item(f"{name}.{task_name}", task, self.spec.component(task.component),
                                        task.display_name, group)
        result = _Ends()
        downstream: set[str] = set()
        for task_name in dag.order:
            upstream = dag.upstream.get(task_name, ())
            for dependency in upstream:
                downstream.add(dependency)
                self.connect(f"{name}.{dependency}", ends[dependency], f"{name}.{task_name}", ends[task_name], group)
            if not upstream:
                result.entries.extend(ends[task_name].entries)
        for task_name in dag.order:
            if task_name not in downstream:
                result.exits.extend(ends[task_name].exits)
        return result


def _ir_group_kind(task: Task | None) -> str:
    if task is None:
        return DAG
    if task.trigger.condition or task.name.startswith("condition-"):
        return CONDITION
    if task.name.startswith("exit-handler"):
        return EXIT_HANDLER
    return DAG
