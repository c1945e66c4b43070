"""PipelineService and PipelineUploadService over HTTP.

The two upload endpoints keep their function names: api/errors.py renders their errors in the upload
body shape (`{"error_message", "error_details"}`) by endpoint name.
"""

from __future__ import annotations

import posixpath

from flask import Blueprint, request
from werkzeug.exceptions import RequestEntityTooLarge

from kfp_backend.api import API_PREFIX, services
from kfp_backend.api.auth import current_caller
from kfp_backend.api.idempotency import idempotent
from kfp_backend.api.listing import list_response
from kfp_backend.api.pipeline_schemas import (
    PipelineRequestSchema,
    PipelineVersionRequestSchema,
    dump_pipeline,
    dump_template,
    dump_version,
)
from kfp_backend.api.request_parsing import list_request, load_body, resource_key
from kfp_backend.api.schemas import load_references
from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.pipeline_files import too_large
from kfp_backend.services.pipelines import NewPipeline, NewPipelineVersion, PackageFile

blueprint = Blueprint("pipelines", __name__, url_prefix=API_PREFIX)
_pipeline_request = PipelineRequestSchema()
_version_request = PipelineVersionRequestSchema()

UPLOAD_FIELD = "uploadfile"


def uploaded_package() -> PackageFile:
    """The multipart `uploadfile` part, read up to one byte past the size limit (the service refuses more)."""
    limit = services().settings.max_upload_bytes
    try:
        upload = request.files.get(UPLOAD_FIELD)
    except RequestEntityTooLarge:
        # A body beyond what Flask reads at all holds a file beyond the limit: the same 400 as a file just over.
        raise too_large(limit).wrap("Error read pipeline file.") from None
    except ValueError as exc:  # a malformed multipart body
        message = f"Failed to read pipeline from file: {exc}"
        raise InvalidArgument(message, internal=message) from None
    if upload is None:
        message = "Failed to read pipeline from file: http: no such file"
        raise InvalidArgument(message, internal=message)
    data = upload.stream.read(limit + 1)
    return PackageFile(filename=posixpath.basename(upload.filename or ""), data=data)


def _query(name: str) -> str:
    return request.args.get(name, "")


# -- PipelineUploadService ---------------------------------------------------------------------------


@blueprint.post("/pipelines/upload")
@idempotent
def upload_pipeline() -> dict:
    package = uploaded_package()
    detail = services().pipelines.upload(
        package, name=_query("name"), description=_query("description"), namespace=_query("namespace"),
        caller=current_caller(),
    )
    return dump_pipeline(detail)


@blueprint.post("/pipelines/upload_version")
@idempotent
def upload_pipeline_version() -> dict:
    package = uploaded_package()
    version = services().pipelines.upload_version(
        _query("pipelineid"), package, name=_query("name"), description=_query("description"),
        caller=current_caller(),
    )
    return dump_version(version)


# -- PipelineService: pipelines ----------------------------------------------------------------------


@blueprint.post("/pipelines")
@idempotent
def create_pipeline() -> dict:
    body = load_body(_pipeline_request)
    detail = services().pipelines.create(
        NewPipeline(
            url=(body["url"] or {}).get("pipeline_url", ""),
            name=body["name"],
            description=body["description"],
            resource_references=load_references(body["resource_references"]),
        ),
        caller=current_caller(),
    )
    return dump_pipeline(detail)


@blueprint.get("/pipelines/<id>")
def get_pipeline(id: str) -> dict:
    return dump_pipeline(services().pipelines.get(id, caller=current_caller()))


@blueprint.get("/namespaces/<namespace>/pipelines/<path:name>")
def get_pipeline_by_name(namespace: str, name: str) -> dict:
    return dump_pipeline(services().pipelines.get_by_name(namespace, name, caller=current_caller()))


@blueprint.get("/pipelines")
def list_pipelines() -> dict:
    result = services().pipelines.list(list_request(), resource_key(), caller=current_caller())
    return list_response("pipelines", [dump_pipeline(item) for item in result.items], result)


@blueprint.delete("/pipelines/<id>")
def delete_pipeline(id: str) -> dict:
    services().pipelines.delete(id, caller=current_caller())
    return {}


@blueprint.get("/pipelines/<id>/templates")
def get_template(id: str) -> dict:
    return dump_template(services().pipelines.get_template(id, caller=current_caller()))


@blueprint.post("/pipelines/<pipeline_id>/default_version/<version_id>")
def update_pipeline_default_version(pipeline_id: str, version_id: str) -> dict:
    services().pipelines.update_default_version(pipeline_id, version_id, caller=current_caller())
    return {}


# -- PipelineService: versions -----------------------------------------------------------------------


@blueprint.post("/pipeline_versions")
@idempotent
def create_pipeline_version() -> dict:
    body = load_body(_version_request)
    version = services().pipelines.create_version(
        NewPipelineVersion(
            package_url=(body["package_url"] or {}).get("pipeline_url", ""),
            name=body["name"],
            description=body["description"],
            code_source_url=body["code_source_url"],
            resource_references=load_references(body["resource_references"]),
        ),
        caller=current_caller(),
    )
    return dump_version(version)


@blueprint.get("/pipeline_versions/<version_id>")
def get_pipeline_version(version_id: str) -> dict:
    return dump_version(services().pipelines.get_version(version_id, caller=current_caller()))


@blueprint.get("/pipeline_versions")
def list_pipeline_versions() -> dict:
    result = services().pipelines.list_versions(list_request(), resource_key("resource_key"), caller=current_caller())
    return list_response("versions", [dump_version(item) for item in result.items], result)


@blueprint.delete("/pipeline_versions/<version_id>")
def delete_pipeline_version(version_id: str) -> dict:
    services().pipelines.delete_version(version_id, caller=current_caller())
    return {}


@blueprint.get("/pipeline_versions/<version_id>/templates")
def get_pipeline_version_template(version_id: str) -> dict:
    return dump_template(services().pipelines.get_version_template(version_id, caller=current_caller()))
