"""Pipeline pages: the list (shared pipelines and the namespace's; upload a file) and one pipeline with its
versions (upload one), a version's graph and YAML, and a run created from it."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kfp_backend.services.errors import ApiError, InvalidArgument
from kfp_backend.services.listing import ListRequest
from kfp_backend.services.pipelines import PackageFile
from kfp_backend.services.references import ResourceKey, ResourceType
from kfp_backend.ui.blueprint import blueprint
from kfp_backend.ui.common import list_request, namespace_key, parameters_of, services
from kfp_backend.ui.runs import manifest_yaml
from kfp_backend.ui.session import current_caller, current_namespace

PIPELINE_SORTS = {"name", "created_at"}


@blueprint.get("/pipelines")
def pipelines() -> str:
    name = request.args.get("name", "").strip()
    predicates: list[dict[str, Any]] = [{"key": "name", "op": "IS_SUBSTRING", "string_value": name}] if name else []
    listing, sort, descending = list_request("created_at", PIPELINE_SORTS, predicates)
    caller = current_caller()
    shared = services().pipelines.list(listing, None, caller=caller)
    key = namespace_key()
    own = services().pipelines.list(listing, key, caller=caller) if key is not None else None
    return render_template(
        "pipelines.html", shared=shared, own=own, sort=sort, descending=descending,
        query={"name": name} if name else {}, namespace=current_namespace(),
    )


def _package() -> PackageFile:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidArgument("Choose a pipeline file to upload (.yaml, .zip or .tar.gz).")
    return PackageFile(filename=upload.filename.rsplit("/", 1)[-1], data=upload.read())


@blueprint.post("/pipelines")
def upload_pipeline() -> Response:
    namespace = current_namespace() if request.form.get("scope") == "namespace" else ""
    try:
        detail = services().pipelines.upload(
            _package(), name=request.form.get("name", "").strip(), description=request.form.get("description", ""),
            namespace=namespace or "", caller=current_caller())
    except ApiError as exc:
        flash(exc.external_message, "error")
        return redirect(url_for("ui.pipelines"))
    flash(f"Pipeline {detail.pipeline.name!r} uploaded.", "info")
    return redirect(url_for("ui.pipeline_page", pipeline_id=detail.pipeline.id))


@blueprint.get("/pipelines/<pipeline_id>")
def pipeline_page(pipeline_id: str) -> str:
    caller = current_caller()
    detail = services().pipelines.get(pipeline_id, caller=caller)
    versions = services().pipelines.list_versions(
        ListRequest(page_size=100, sort_by="created_at desc"), ResourceKey(ResourceType.PIPELINE, pipeline_id),
        caller=caller).items
    chosen = request.args.get("version") or (detail.default_version.id if detail.default_version else "")
    version = next((v for v in versions if v.id == chosen), None)
    if version is None and chosen:
        version = services().pipelines.get_version(chosen, caller=caller)
        if version.pipeline_id != pipeline_id:
            raise InvalidArgument(f"Version {chosen} is not a version of pipeline {pipeline_id}.")
    template = services().pipelines.get_version_template(version.id, caller=caller) if version else ""
    return render_template(
        "pipeline.html", pipeline=detail.pipeline, versions=versions, version=version,
        parameters=parameters_of(version.parameters) if version else [], manifest=manifest_yaml(template),
    )


@blueprint.post("/pipelines/<pipeline_id>/versions")
def upload_version(pipeline_id: str) -> Response:
    try:
        version = services().pipelines.upload_version(
            pipeline_id, _package(), name=request.form.get("name", "").strip(),
            description=request.form.get("description", ""), caller=current_caller())
    except ApiError as exc:
        flash(exc.external_message, "error")
        return redirect(url_for("ui.pipeline_page", pipeline_id=pipeline_id))
    flash(f"Version {version.name!r} uploaded.", "info")
    return redirect(url_for("ui.pipeline_page", pipeline_id=pipeline_id, version=version.id))
