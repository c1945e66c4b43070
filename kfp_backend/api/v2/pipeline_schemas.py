"""The v2beta1 Pipeline and PipelineVersion on the wire (protojson with proto names, unset fields left out).

This server keeps one name per pipeline and per version: `name` and `display_name` are written the same, and
a request may give either (or both, equal). `pipeline_spec` is the version's template as a JSON struct
(services/pipeline_specs.py). Request bodies refuse unknown keys, as upstream's gateway does; output-only
fields (ids, `created_at`, `error`) are read, checked for type and ignored.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, fields

from kfp_backend.api.schemas import ProtoSchema, Timestamp, UrlSchema
from kfp_backend.api.v2.listing import FieldNames
from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.pipeline_specs import spec_struct
from kfp_backend.services.pipelines import PipelineDetail, PipelineVersion, VersionWithTemplate

# v2 list fields -> the fields PipelineService lists by.
PIPELINE_FIELDS = FieldNames({"pipeline_id": "id", "display_name": "name"})
VERSION_FIELDS = FieldNames({"pipeline_version_id": "id", "display_name": "name"})


class _Strict(ProtoSchema):
    class Meta:
        unknown = RAISE


class _UrlRequest(UrlSchema, _Strict):
    pass


class PipelineRequestSchema(_Strict):
    pipeline_id = fields.String(load_default="")
    display_name = fields.String(load_default="")
    name = fields.String(load_default="")
    description = fields.String(load_default="")
    created_at = Timestamp(load_default=0)
    namespace = fields.String(load_default="")
    error = fields.Dict(load_default=None)
    tags = fields.Dict(keys=fields.String(), values=fields.String(), load_default=None)


class PipelineVersionRequestSchema(_Strict):
    pipeline_id = fields.String(load_default="")
    pipeline_version_id = fields.String(load_default="")
    display_name = fields.String(load_default="")
    name = fields.String(load_default="")
    description = fields.String(load_default="")
    created_at = Timestamp(load_default=0)
    package_url = fields.Nested(_UrlRequest, load_default=None)
    code_source_url = fields.String(load_default="")
    pipeline_spec = fields.Dict(load_default=None)
    error = fields.Dict(load_default=None)
    tags = fields.Dict(keys=fields.String(), values=fields.String(), load_default=None)


class CreatePipelineAndVersionSchema(_Strict):
    pipeline = fields.Nested(PipelineRequestSchema, load_default=None)
    pipeline_version = fields.Nested(PipelineVersionRequestSchema, load_default=None)


class _PipelineOut(ProtoSchema):
    pipeline_id = fields.String()
    display_name = fields.String()
    name = fields.String()
    description = fields.String()
    created_at = Timestamp()
    namespace = fields.String()


class _VersionOut(ProtoSchema):
    pipeline_id = fields.String()
    pipeline_version_id = fields.String()
    display_name = fields.String()
    name = fields.String()
    description = fields.String()
    created_at = Timestamp()
    package_url = fields.Dict()
    code_source_url = fields.String()
    pipeline_spec = fields.Raw()


_pipeline_out = _PipelineOut()
_version_out = _VersionOut()


def one_name(body: dict[str, Any], what: str) -> str:
    """The one name a request gives (`name`, else `display_name`); both given must agree. Tags are refused:
    this server does not store them."""
    name, display_name = body.get("name", ""), body.get("display_name", "")
    if name and display_name and name != display_name:
        raise InvalidArgument(
            f"{what} name {name!r} and display_name {display_name!r} differ: this server keeps one name per "
            f"{what}, so give display_name equal to name, or only one of them."
        )
    if body.get("tags"):
        raise InvalidArgument(f"{what} tags are not supported by this server.")
    return name or display_name


def dump_pipeline(detail: PipelineDetail) -> dict[str, Any]:
    pipeline = detail.pipeline
    return _pipeline_out.dump({
        "pipeline_id": pipeline.id,
        "display_name": pipeline.name,
        "name": pipeline.name,
        "description": pipeline.description,
        "created_at": pipeline.created_at,
        "namespace": pipeline.namespace,
    })


def dump_version(version: PipelineVersion, template: str | None) -> dict[str, Any]:
    return _version_out.dump({
        "pipeline_id": version.pipeline_id,
        "pipeline_version_id": version.id,
        "display_name": version.name,
        "name": version.name,
        "description": version.description,
        "created_at": version.created_at,
        "package_url": {"pipeline_url": version.package_url} if version.package_url else None,
        "code_source_url": version.code_source_url,
        "pipeline_spec": spec_struct(template),
    })


def dump_version_spec(item: VersionWithTemplate) -> dict[str, Any]:
    return dump_version(item.version, item.template)
