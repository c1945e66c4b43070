"""Wire schemas of PipelineService and PipelineUploadService (see api/schemas.py for the conventions)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from kfp_backend.api.schemas import (
    ParameterSchema,
    ProtoSchema,
    ResourceReferenceSchema,
    Timestamp,
    UrlSchema,
    dump_reference,
)
from kfp_backend.services.pipelines import PipelineDetail, PipelineVersion, decode_parameters
from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType

_parameters_schema = ParameterSchema(many=True)


def _dump_parameters(text: str) -> list[dict[str, Any]]:
    return _parameters_schema.dump(decode_parameters(text))


class PipelineRequestSchema(ProtoSchema):
    """The body of CreatePipeline (an api.Pipeline); output-only fields are ignored."""

    name = fields.String(load_default="")
    description = fields.String(load_default="")
    url = fields.Nested(UrlSchema, load_default=None)
    resource_references = fields.List(fields.Nested(ResourceReferenceSchema), load_default=list)


class PipelineVersionRequestSchema(ProtoSchema):
    """The body of CreatePipelineVersion (an api.PipelineVersion)."""

    name = fields.String(load_default="")
    description = fields.String(load_default="")
    code_source_url = fields.String(load_default="")
    package_url = fields.Nested(UrlSchema, load_default=None)
    resource_references = fields.List(fields.Nested(ResourceReferenceSchema), load_default=list)


class PipelineVersionSchema(ProtoSchema):
    """An api.PipelineVersion as the server writes it, from a PipelineVersion row."""

    id = fields.String()
    name = fields.String()
    created_at = Timestamp()
    parameters = fields.Method("_parameters")
    code_source_url = fields.String()
    resource_references = fields.Method("_references")
    description = fields.String()

    def _parameters(self, version: PipelineVersion) -> list[dict[str, Any]]:
        return _dump_parameters(version.parameters)

    def _references(self, version: PipelineVersion) -> list[dict[str, Any]]:
        owner = ResourceReference(
            key=ResourceKey(ResourceType.PIPELINE, version.pipeline_id), relationship=Relationship.OWNER
        )
        return [dump_reference(owner)]


_version_schema = PipelineVersionSchema()


class PipelineSchema(ProtoSchema):
    """An api.Pipeline as the server writes it, from a PipelineDetail (the row and its default version)."""

    id = fields.String(attribute="pipeline.id")
    created_at = Timestamp(attribute="pipeline.created_at")
    name = fields.String(attribute="pipeline.name")
    description = fields.String(attribute="pipeline.description")
    parameters = fields.Method("_parameters")
    default_version = fields.Method("_default_version")

    def _parameters(self, detail: PipelineDetail) -> list[dict[str, Any]]:
        return _dump_parameters(detail.pipeline.parameters)

    def _default_version(self, detail: PipelineDetail) -> dict[str, Any] | None:
        return dump_version(detail.default_version) if detail.default_version is not None else None


_pipeline_schema = PipelineSchema()


def dump_version(version: PipelineVersion) -> dict[str, Any]:
    return _version_schema.dump(version)


def dump_pipeline(detail: PipelineDetail) -> dict[str, Any]:
    return _pipeline_schema.dump(detail)


def dump_template(template: str | None) -> dict[str, Any]:
    """api.GetTemplateResponse: `{}` when there is no template (EmitDefaults=false)."""
    return {"template": template} if template else {}
