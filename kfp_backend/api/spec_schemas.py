"""Wire schemas a run and a job share (see api/schemas.py for the conventions): the fields each is created
with, a pipeline spec among them, read from a request and written back in the gateway's order."""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from kfp_backend.api.schemas import (
    ParameterSchema,
    ProtoSchema,
    ResourceReferenceSchema,
    dump_reference,
    load_references,
    omit_zero,
)
from kfp_backend.services.spec_views import SpecView
from kfp_backend.services.typed_parameters import v1_parameters


class PipelineSpecRequestSchema(ProtoSchema):
    pipeline_id = fields.String(load_default="")
    pipeline_name = fields.String(load_default="")
    workflow_manifest = fields.String(load_default="")
    pipeline_manifest = fields.String(load_default="")
    parameters = fields.List(fields.Nested(ParameterSchema), load_default=None)
    runtime_config = fields.Dict(load_default=None)


class SpecRequestSchema(ProtoSchema):
    """The fields of an api.Run or api.Job body that NewRun and NewJob share."""

    name = fields.String(load_default="")
    description = fields.String(load_default="")
    pipeline_spec = fields.Nested(PipelineSpecRequestSchema, load_default=None)
    resource_references = fields.List(fields.Nested(ResourceReferenceSchema), load_default=list)
    service_account = fields.String(load_default="")

    def spec_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """The loaded body's shared fields, as keyword arguments of NewRun and NewJob."""
        spec = body["pipeline_spec"] or {}
        return {
            "name": body["name"],
            "description": body["description"],
            "pipeline_id": spec.get("pipeline_id", ""),
            "workflow_manifest": spec.get("workflow_manifest", ""),
            "pipeline_manifest": spec.get("pipeline_manifest", ""),
            "parameters": spec.get("parameters"),
            "has_runtime_config": spec.get("runtime_config") is not None,
            "resource_references": load_references(body["resource_references"]),
            "service_account": body["service_account"],
        }


def dump_spec_fields(view: SpecView) -> dict[str, Any]:
    """The shared fields after id and name, in the gateway's order, zero values omitted (pipeline_spec is
    always written, if empty)."""
    row = view.row
    return omit_zero({
        "description": row.description,
        "pipeline_spec": omit_zero({
            "pipeline_id": row.pipeline_id,
            "pipeline_name": row.pipeline_name,
            "workflow_manifest": view.pipeline_spec_manifest,
            "parameters": [{k: v for k, v in p.items() if v} for p in v1_parameters(view.parameters)],
        }),
        "resource_references": [dump_reference(r) for r in view.references],
        "service_account": row.service_account,
    })
