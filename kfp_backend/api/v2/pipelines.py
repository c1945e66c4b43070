"""PipelineService and PipelineUploadService of the v2beta1 API over HTTP: the same PipelineService (and so
the same rows) as v1beta1's handlers. A pipeline uploaded through either API is seen by both.

The two upload endpoints answer errors in the upload body shape (`{"error_message", "error_details"}`), as
upstream's one upload server does for both APIs (api/errors.py lists them by endpoint name).
"""

from __future__ import annotations

from flask import Blueprint, request

from kfp_backend.api import services
from kfp_backend.api.auth import current_caller
from kfp_backend.api.idempotency import idempotent
from kfp_backend.api.listing import list_response
from kfp_backend.api.pipelines import uploaded_package
from kfp_backend.api.request_parsing import load_body
from kfp_backend.api.v2 import V2_PREFIX
from kfp_backend.api.v2.listing import v2_list_request
from kfp_backend.api.v2.multi_user_errors import PIPELINE, PIPELINE_UPLOAD, PIPELINE_VERSION, v2_refusals
from kfp_backend.api.v2.pipeline_schemas import (
    PIPELINE_FIELDS,
    VERSION_FIELDS,
    CreatePipelineAndVersionSchema,
    PipelineRequestSchema,
    PipelineVersionRequestSchema,
    dump_pipeline,
    dump_version,
    dump_version_spec,
    one_name,
)
from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.pipelines import NewPipeline, NewPipelineVersion
from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType

blueprint = Blueprint("v2_pipelines", __name__, url_prefix=V2_PREFIX)
_pipeline_request = PipelineRequestSchema()
_version_request = PipelineVersionRequestSchema()
_create_request = CreatePipelineAndVersionSchema()
_TRUE = {"true", "1"}
_FALSE = {"false", "0", ""}


def _query(name: str) -> str:
    return request.args.get(name, "")


def _query_name(what: str) -> str:
    tags = _query("tags")
    if tags not in ("", "{}"):
        raise InvalidArgument(f"{what} tags are not supported by this server.")
    return one_name({"name": _query("name"), "display_name": _query("display_name")}, what)


def _namespace_reference(namespace: str) -> list[ResourceReference]:
    if not namespace:
        return []
    return [ResourceReference(ResourceKey(ResourceType.NAMESPACE, namespace), Relationship.OWNER)]


def _template(version_id: str) -> str | None:
    return services().pipelines.get_version_template(version_id, caller=current_caller())


# -- PipelineUploadService ---------------------------------------------------------------------------


@blueprint.post("/pipelines/upload")
@idempotent
@v2_refusals(PIPELINE_UPLOAD, "upload")
def upload_pipeline() -> dict:
    package = uploaded_package()
    description = _query("description")
    detail = services().pipelines.upload(
        package, name=_query_name("pipeline"), description=description, namespace=_query("namespace"),
        version_description=description, caller=current_caller(),
    )
    return dump_pipeline(detail)


@blueprint.post("/pipelines/upload_version")
@idempotent
@v2_refusals(PIPELINE_UPLOAD, "upload_version")
def upload_pipeline_version() -> dict:
    package = uploaded_package()
    version = services().pipelines.upload_version(
        _query("pipelineid"), package, name=_query_name("pipeline version"), description=_query("description"),
        caller=current_caller(),
    )
    return dump_version(version, _template(version.id))


# -- PipelineService: pipelines ----------------------------------------------------------------------


@blueprint.post("/pipelines")
@idempotent
@v2_refusals(PIPELINE, "create")
def create_pipeline() -> dict:
    body = load_body(_pipeline_request)
    name = one_name(body, "pipeline")
    detail = services().pipelines.create_empty(name, body["description"], body["namespace"], caller=current_caller())
    return dump_pipeline(detail)


@blueprint.post("/pipelines/create")
@idempotent
@v2_refusals(PIPELINE, "create_with_version")
def create_pipeline_and_version() -> dict:
    body = load_body(_create_request)
    pipeline, version = body["pipeline"], body["pipeline_version"]
    if pipeline is None:
        raise InvalidArgument("Failed to create a pipeline and a pipeline version: pipeline is missing.")
    if version is None:
        raise InvalidArgument("Failed to create a pipeline and a pipeline version: pipeline_version is missing.")
    one_name(version, "pipeline version")
    url = (version["package_url"] or {}).get("pipeline_url", "")
    spec = version["pipeline_spec"]
    name, namespace, description = one_name(pipeline, "pipeline"), pipeline["namespace"], pipeline["description"]
    detail = services().pipelines.create(
        NewPipeline(
            url=url, name=name, description=description, resource_references=_namespace_reference(namespace),
            version_description=description, pipeline_spec=spec,
        ),
        caller=current_caller(),
    )
    return dump_pipeline(detail)


@blueprint.get("/pipelines/<pipeline_id>")
@v2_refusals(PIPELINE, "get", "pipeline_id")
def get_pipeline(pipeline_id: str) -> dict:
    return dump_pipeline(services().pipelines.get(pipeline_id, caller=current_caller()))


@blueprint.get("/pipelines/names/<path:name>")
@v2_refusals(PIPELINE, "get_by_name")
def get_pipeline_by_name(name: str) -> dict:
    return dump_pipeline(services().pipelines.get_by_name(_query("namespace"), name, caller=current_caller()))


@blueprint.get("/pipelines")
@v2_refusals(PIPELINE, "list")
def list_pipelines() -> dict:
    namespace = _query("namespace")
    key = ResourceKey(ResourceType.NAMESPACE, namespace) if namespace else None
    result = services().pipelines.list(v2_list_request(PIPELINE_FIELDS), key, caller=current_caller())
    return list_response("pipelines", [dump_pipeline(item) for item in result.items], result)


@blueprint.delete("/pipelines/<pipeline_id>")
@v2_refusals(PIPELINE, "delete", "pipeline_id")
def delete_pipeline(pipeline_id: str) -> dict:
    cascade = _query("cascade").lower()
    if cascade not in _TRUE | _FALSE:
        raise InvalidArgument(f"cascade must be true or false, got {cascade!r}.")
    services().pipelines.delete(pipeline_id, cascade=cascade in _TRUE, caller=current_caller())
    return {}


# -- PipelineService: versions -----------------------------------------------------------------------


def _owner(pipeline_id: str) -> ResourceReference:
    return ResourceReference(ResourceKey(ResourceType.PIPELINE, pipeline_id), Relationship.OWNER)


@blueprint.post("/pipelines/<pipeline_id>/versions")
@idempotent
@v2_refusals(PIPELINE_VERSION, "create")
def create_pipeline_version(pipeline_id: str) -> dict:
    body = load_body(_version_request)
    if body["pipeline_id"] and body["pipeline_id"] != pipeline_id:
        raise InvalidArgument(
            f"Failed to create a pipeline version: pipeline_id {body['pipeline_id']!r} in the body differs from "
            f"{pipeline_id!r} in the path."
        )
    version = services().pipelines.create_version(
        NewPipelineVersion(
            package_url=(body["package_url"] or {}).get("pipeline_url", ""),
            name=one_name(body, "pipeline version"),
            description=body["description"],
            code_source_url=body["code_source_url"],
            resource_references=[_owner(pipeline_id)],
            pipeline_spec=body["pipeline_spec"],
        ),
        caller=current_caller(),
    )
    return dump_version(version, _template(version.id))


@blueprint.get("/pipelines/<pipeline_id>/versions/<version_id>")
@v2_refusals(PIPELINE_VERSION, "get")
def get_pipeline_version(pipeline_id: str, version_id: str) -> dict:
    return dump_version_spec(services().pipelines.get_version_spec(pipeline_id, version_id, caller=current_caller()))


@blueprint.get("/pipelines/<pipeline_id>/versions")
@v2_refusals(PIPELINE_VERSION, "list")
def list_pipeline_versions(pipeline_id: str) -> dict:
    result = services().pipelines.list_version_specs(
        v2_list_request(VERSION_FIELDS), pipeline_id, caller=current_caller()
    )
    return list_response("pipeline_versions", [dump_version_spec(item) for item in result.items], result)


@blueprint.delete("/pipelines/<pipeline_id>/versions/<version_id>")
@v2_refusals(PIPELINE_VERSION, "delete")
def delete_pipeline_version(pipeline_id: str, version_id: str) -> dict:
    services().pipelines.delete_version(version_id, pipeline_id=pipeline_id, caller=current_caller())
    return {}
