"""The v2beta1 Run on the wire (protojson with proto names, unset fields left out), over the rows v1beta1 shows.

A create body refuses unknown keys, as upstream's gateway does; output-only fields are read, checked for type
and ignored. What a run executes is a `pipeline_version_reference` or an inline `pipeline_spec` (a KFP v2
pipeline spec, or an Argo workflow that runs as a v1 run would). `runtime_config.parameters` are JSON values;
the service takes them as the v1 text form (a string as it is, any other value as its compact JSON), which
the KFP v2 run creation types again by the spec's input definitions.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import RAISE, fields

from kfp_backend.api.schemas import Enum, ProtoSchema, Timestamp, format_timestamp
from kfp_backend.api.v2.experiment_schemas import StorageState
from kfp_backend.api.v2.listing import FieldNames
from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.pipeline_specs import is_ir_template, manifest_of_struct, spec_struct
from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType
from kfp_backend.services.run_states import RpcStatus, RuntimeState, StateChange, state_of_run
from kfp_backend.services.runs import NewRun, RunDetail, RunView
from kfp_backend.services.task_details import TaskDetail, task_details
from kfp_backend.store.states import (
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    STORAGE_ARCHIVED,
    STORAGE_AVAILABLE,
    SUCCEEDED,
    TERMINATING,
)

_STORED_STORAGE = {STORAGE_AVAILABLE: StorageState.AVAILABLE.name, STORAGE_ARCHIVED: StorageState.ARCHIVED.name}
# v2 list fields -> the fields RunService lists by. A `state` filter matches the stored status: FAILED is the
# Failed status (terminated runs included, Error excluded); CANCELED has no stored status of its own.
RUN_FIELDS = FieldNames(
    {"run_id": "id", "display_name": "name", "state": "status"},
    {
        "storage_state": {v2: stored for stored, v2 in _STORED_STORAGE.items()},
        "status": {
            RuntimeState.PENDING.name: PENDING, RuntimeState.RUNNING.name: RUNNING,
            RuntimeState.SUCCEEDED.name: SUCCEEDED, RuntimeState.SKIPPED.name: SKIPPED,
            RuntimeState.FAILED.name: FAILED, RuntimeState.CANCELING.name: TERMINATING,
        },
    },
)


class _Strict(ProtoSchema):
    class Meta:
        unknown = RAISE


class VersionReferenceSchema(_Strict):
    pipeline_id = fields.String(load_default="")
    pipeline_version_id = fields.String(load_default="")


class RuntimeConfigSchema(_Strict):
    parameters = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict)
    pipeline_root = fields.String(load_default="")


class RunRequestSchema(_Strict):
    """The body of CreateRun (a v2beta1 Run)."""

    experiment_id = fields.String(load_default="")
    run_id = fields.String(load_default="")
    display_name = fields.String(load_default="")
    storage_state = Enum(StorageState, load_default=StorageState.STORAGE_STATE_UNSPECIFIED)
    description = fields.String(load_default="")
    pipeline_version_id = fields.String(load_default="")  # deprecated: pipeline_version_reference
    pipeline_spec = fields.Dict(load_default=None)
    pipeline_version_reference = fields.Nested(VersionReferenceSchema, load_default=None)
    runtime_config = fields.Nested(RuntimeConfigSchema, load_default=None)
    service_account = fields.String(load_default="")
    created_at = Timestamp(load_default=0)
    scheduled_at = Timestamp(load_default=0)
    finished_at = Timestamp(load_default=0)
    state = Enum(RuntimeState, load_default=RuntimeState.RUNTIME_STATE_UNSPECIFIED)
    error = fields.Dict(load_default=None)
    run_details = fields.Dict(load_default=None)
    recurring_run_id = fields.String(load_default="")
    state_history = fields.List(fields.Dict(), load_default=None)
    plugins_input = fields.Dict(load_default=None)


def parameter_text(name: str, value: Any) -> str:
    """A runtime_config parameter as the v1 text form: a string as it is, any other JSON value compact."""
    if value is None:
        raise InvalidArgument(f"runtime_config parameter {name!r} is null: give it a value or leave it out.")
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def to_new_run(body: dict[str, Any], query_experiment_id: str) -> NewRun:
    """NewRun of a loaded CreateRun body (`experiment_id` of the query is the deprecated spelling)."""
    if body["plugins_input"]:
        raise InvalidArgument("plugins_input is not supported by this server.")
    reference = body["pipeline_version_reference"] or {}
    version_id = reference.get("pipeline_version_id") or body["pipeline_version_id"]
    if reference.get("pipeline_version_id") and body["pipeline_version_id"] and (
        reference["pipeline_version_id"] != body["pipeline_version_id"]
    ):
        raise InvalidArgument("pipeline_version_id and pipeline_version_reference name different versions.")
    workflow_manifest = pipeline_manifest = ""
    spec = body["pipeline_spec"]
    if spec is not None:
        text = manifest_of_struct(spec).decode("utf-8")
        if is_ir_template(text):
            pipeline_manifest = text
        else:
            workflow_manifest = text
    config = body["runtime_config"] or {}
    if config.get("pipeline_root") and workflow_manifest:
        raise InvalidArgument("runtime_config.pipeline_root applies to KFP v2 pipeline specs, not Argo workflows.")
    parameters = [{"name": name, "value": parameter_text(name, value)}
                  for name, value in (config.get("parameters") or {}).items()]
    references = []
    experiment_id = body["experiment_id"] or query_experiment_id
    if experiment_id:
        references.append(ResourceReference(ResourceKey(ResourceType.EXPERIMENT, experiment_id), Relationship.OWNER))
    if version_id:
        references.append(
            ResourceReference(ResourceKey(ResourceType.PIPELINE_VERSION, version_id), Relationship.CREATOR)
        )
    return NewRun(
        name=body["display_name"],
        description=body["description"],
        pipeline_id=reference.get("pipeline_id", ""),
        workflow_manifest=workflow_manifest,
        pipeline_manifest=pipeline_manifest,
        parameters=parameters or None,
        resource_references=references,
        service_account=body["service_account"],
        pipeline_root=config.get("pipeline_root", ""),
    )


# -- output ------------------------------------------------------------------------------------------------


def _status(error: RpcStatus | None) -> dict[str, Any] | None:
    return None if error is None else {"code": error.code, "message": error.message}


def _history(changes: list[StateChange]) -> list[dict[str, Any]]:
    rendered = []
    for change in changes:
        entry: dict[str, Any] = {}
        if change.at is not None:
            entry["update_time"] = format_timestamp(change.at)
        entry["state"] = change.state.name
        if change.error is not None:
            entry["error"] = _status(change.error)
        rendered.append(entry)
    return rendered


def _time(seconds: int | None) -> str | None:
    return None if seconds is None else format_timestamp(seconds)


def _dump_task(task: TaskDetail) -> dict[str, Any]:
    body: dict[str, Any] = {"run_id": task.run_id, "task_id": task.task_id, "display_name": task.display_name}
    for key, value in (("create_time", task.create_time), ("start_time", task.start_time),
                       ("end_time", task.end_time)):
        if value is not None:
            body[key] = _time(value)
    if task.state != RuntimeState.RUNTIME_STATE_UNSPECIFIED:
        body["state"] = task.state.name
    if task.error is not None:
        body["error"] = _status(task.error)
    if task.inputs:
        body["inputs"] = {name: {} for name in task.inputs}
    if task.outputs:
        body["outputs"] = {name: {} for name in task.outputs}
    if task.parent_task_id:
        body["parent_task_id"] = task.parent_task_id
    if task.state_history:
        body["state_history"] = _history(task.state_history)
    if task.pod_name:
        body["pod_name"] = task.pod_name
    if task.child_tasks:
        body["child_tasks"] = [
            {"pod_name": child.pod_name} if child.pod_name else {"task_id": child.task_id}
            for child in task.child_tasks
        ]
    return body


def _runtime_config(view: RunView, detail: RunDetail | None) -> dict[str, Any]:
    typed, root = _typed_runtime(detail)
    parameters = {p["name"]: typed.get(p["name"], p.get("value", "")) for p in view.parameters}
    body: dict[str, Any] = {}
    if parameters:
        body["parameters"] = parameters
    if root:
        body["pipeline_root"] = root
    return body


def dump_run(view: RunView, detail: RunDetail | None = None) -> dict[str, Any]:
    """A v2beta1 Run; `detail` (get and create) adds what listing does not read: the inline pipeline spec,
    typed parameters of a KFP v2 run, and the task details."""
    run = view.run
    state = state_of_run(run, view.workflow_status)
    body: dict[str, Any] = {"experiment_id": run.experiment_id, "run_id": run.id, "display_name": run.name}
    storage = _STORED_STORAGE.get(run.storage_state)
    if storage:
        body["storage_state"] = storage
    if run.description:
        body["description"] = run.description
    if run.pipeline_version_id:
        body["pipeline_version_reference"] = {
            key: value for key, value in
            (("pipeline_id", run.pipeline_id), ("pipeline_version_id", run.pipeline_version_id)) if value
        }
    elif view.pipeline_spec_manifest:
        struct = spec_struct(view.pipeline_spec_manifest)
        if struct is not None:
            body["pipeline_spec"] = struct
    body["runtime_config"] = _runtime_config(view, detail)
    if run.service_account:
        body["service_account"] = run.service_account
    body["created_at"] = _time(run.created_at)
    body["scheduled_at"] = _time(run.scheduled_at)
    body["finished_at"] = _time(run.finished_at)
    body["state"] = state.state.name
    if state.error is not None:
        body["error"] = _status(state.error)
    if detail is not None:
        tasks = task_details(run.id, detail.nodes, terminated=bool(run.terminate_requested))
        body["run_details"] = {"task_details": [_dump_task(task) for task in tasks]} if tasks else {}
    if run.job_id:
        body["recurring_run_id"] = run.job_id
    body["state_history"] = _history(state.history)
    return body


def dump_run_detail(detail: RunDetail) -> dict[str, Any]:
    return dump_run(detail.view, detail)


def _typed_runtime(detail: RunDetail | None) -> tuple[dict[str, Any], str]:
    """The typed parameter values and the pipeline root a KFP v2 run was created with: they are in its
    runtime document, not in the run row, which keeps the v1 text form."""
    if detail is None or not detail.workflow_manifest:
        return {}, ""
    try:
        document = json.loads(detail.workflow_manifest)
    except ValueError:
        return {}, ""
    config = document.get("runtime_config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        return {}, ""
    values = config.get("parameter_values")
    root = config.get("pipeline_root")
    return (dict(values) if isinstance(values, dict) else {}), (root if isinstance(root, str) else "")
