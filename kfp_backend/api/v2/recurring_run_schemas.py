"""The v2beta1 RecurringRun on the wire (protojson with proto names, unset fields left out), over a job row.

A recurring run is a v1beta1 job seen through v2: `display_name` is the job's name, `mode` and `status` say
whether it is enabled, `runtime_config.parameters` are typed JSON (services/typed_parameters.py keeps both
forms), `trigger` is the same message as v1's. Request bodies refuse unknown keys, as upstream's gateway
does; output-only fields (`recurring_run_id`, times, `status`, `error`) are read, checked and ignored.
"""

from __future__ import annotations

import enum
from typing import Any

from marshmallow import RAISE, fields

from kfp_backend.api.job_schemas import (
    Bool,
    CronScheduleSchema,
    PeriodicScheduleSchema,
    TriggerSchema,
    dump_trigger,
    to_trigger,
)
from kfp_backend.api.schemas import Enum, Int64, ProtoSchema, Timestamp, format_timestamp
from kfp_backend.api.v2.listing import FieldNames
from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.jobs import JobView, NewJob
from kfp_backend.services.pipeline_specs import is_ir_template, manifest_of_struct, spec_struct
from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType
from kfp_backend.services.typed_parameters import parameter_values

# v2 list fields -> the fields JobService lists by.
RECURRING_RUN_FIELDS = FieldNames({"recurring_run_id": "id", "display_name": "name"})


class Mode(enum.IntEnum):
    MODE_UNSPECIFIED = 0
    ENABLE = 1
    DISABLE = 2


class Status(enum.IntEnum):
    STATUS_UNSPECIFIED = 0
    ENABLED = 1
    DISABLED = 3


class _Strict(ProtoSchema):
    class Meta:
        unknown = RAISE


class _CronSchedule(CronScheduleSchema, _Strict):
    pass


class _PeriodicSchedule(PeriodicScheduleSchema, _Strict):
    pass


class _Trigger(TriggerSchema, _Strict):
    """v1's Trigger (one schedule or none), refusing unknown keys."""

    cron_schedule = fields.Nested(_CronSchedule, load_default=None)
    periodic_schedule = fields.Nested(_PeriodicSchedule, load_default=None)


class _VersionReference(_Strict):
    pipeline_id = fields.String(load_default="")
    pipeline_version_id = fields.String(load_default="")


class RuntimeConfigSchema(_Strict):
    parameters = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=None)
    pipeline_root = fields.String(load_default="")


class RecurringRunRequestSchema(_Strict):
    recurring_run_id = fields.String(load_default="")
    display_name = fields.String(load_default="")
    description = fields.String(load_default="")
    pipeline_version_id = fields.String(load_default="")  # deprecated by upstream: a version reference
    pipeline_spec = fields.Dict(load_default=None)
    pipeline_version_reference = fields.Nested(_VersionReference, load_default=None)
    runtime_config = fields.Nested(RuntimeConfigSchema, load_default=None)
    service_account = fields.String(load_default="")
    max_concurrency = Int64(load_default=0)
    trigger = fields.Nested(_Trigger, load_default=None)
    mode = Enum(Mode, load_default=Mode.MODE_UNSPECIFIED)
    created_at = Timestamp(load_default=0)
    updated_at = Timestamp(load_default=0)
    status = Enum(Status, load_default=Status.STATUS_UNSPECIFIED)
    error = fields.Raw(load_default=None)
    no_catchup = Bool(load_default=False)
    namespace = fields.String(load_default="")
    experiment_id = fields.String(load_default="")
    plugins_input = fields.Dict(load_default=None)

    def to_new_job(self, body: dict[str, Any], *, multi_user: bool) -> NewJob:
        """The NewJob of a loaded body. `namespace` becomes a NAMESPACE reference in multi-user mode only
        (single-user mode ignores it, as upstream)."""
        if body["plugins_input"]:
            raise InvalidArgument("recurring_run.plugins_input is not supported by this server.")
        config = body["runtime_config"] or {}
        references: list[ResourceReference] = []
        if body["experiment_id"]:
            references.append(_reference(ResourceType.EXPERIMENT, body["experiment_id"], Relationship.OWNER))
        if multi_user and body["namespace"]:
            references.append(_reference(ResourceType.NAMESPACE, body["namespace"], Relationship.OWNER))
        pipeline_id, workflow_manifest, pipeline_manifest = "", "", ""
        reference, spec = body["pipeline_version_reference"], body["pipeline_spec"]
        version_id = body["pipeline_version_id"]
        if spec is not None and (reference is not None or version_id):
            raise InvalidArgument(
                "Failed to create a recurring run: set pipeline_spec or pipeline_version_reference, not both."
            )
        if reference is not None:
            pipeline_id, version_id = reference["pipeline_id"], reference["pipeline_version_id"] or version_id
        if version_id:
            references.append(_reference(ResourceType.PIPELINE_VERSION, version_id, Relationship.CREATOR))
        if spec is not None:
            manifest = manifest_of_struct(spec).decode()
            if is_ir_template(manifest):
                pipeline_manifest = manifest
            else:
                workflow_manifest = manifest
        return NewJob(
            name=body["display_name"],
            description=body["description"],
            pipeline_id=pipeline_id,
            workflow_manifest=workflow_manifest,
            pipeline_manifest=pipeline_manifest,
            parameter_values=config.get("parameters"),
            pipeline_root=config.get("pipeline_root", ""),
            resource_references=references,
            service_account=body["service_account"],
            max_concurrency=body["max_concurrency"],
            trigger=to_trigger(body["trigger"] or {}),
            enabled=body["mode"] == Mode.ENABLE,
            no_catchup=body["no_catchup"],
        )


def _reference(kind: ResourceType, key_id: str, relationship: Relationship) -> ResourceReference:
    return ResourceReference(ResourceKey(kind, key_id), relationship)


def _pipeline_source(view: JobView) -> dict[str, Any]:
    """`pipeline_version_reference` for a job of a pipeline version, else `pipeline_spec` (on get and create;
    lists read no manifests)."""
    job = view.job
    if job.pipeline_version_id:
        reference = {"pipeline_id": job.pipeline_id, "pipeline_version_id": job.pipeline_version_id}
        return {"pipeline_version_reference": {k: v for k, v in reference.items() if v}}
    spec = spec_struct(view.pipeline_spec_manifest)
    return {"pipeline_spec": spec} if spec is not None else {}


def dump_recurring_run(view: JobView) -> dict[str, Any]:
    """A v2beta1 RecurringRun in the proto's field order, zero values omitted."""
    job = view.job
    parameters = parameter_values(view.parameters)
    body: dict[str, Any] = {"recurring_run_id": job.id}
    if job.name:
        body["display_name"] = job.name
    if job.description:
        body["description"] = job.description
    body.update(_pipeline_source(view))
    config: dict[str, Any] = {}  # none without parameters or a pipeline root, as upstream
    if parameters:
        config["parameters"] = parameters
    if job.pipeline_root:
        config["pipeline_root"] = job.pipeline_root
    if config:
        body["runtime_config"] = config
    if job.service_account:
        body["service_account"] = job.service_account
    if job.max_concurrency:
        body["max_concurrency"] = str(job.max_concurrency)
    body["trigger"] = dump_trigger(view)
    body["mode"] = (Mode.ENABLE if job.enabled else Mode.DISABLE).name
    body["created_at"] = format_timestamp(job.created_at)
    body["updated_at"] = format_timestamp(job.updated_at)
    body["status"] = (Status.ENABLED if job.enabled else Status.DISABLED).name
    if job.no_catchup:
        body["no_catchup"] = True
    if job.namespace:
        body["namespace"] = job.namespace
    if job.experiment_id:
        body["experiment_id"] = job.experiment_id
    return body
