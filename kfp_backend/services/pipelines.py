"""Pipeline and pipeline-version rules: creation from uploads and URLs, defaults, cascades, templates.

A pipeline is created together with its first version (v2beta1's CreatePipeline: alone); both share one id
and the version takes the pipeline's name. Every version stores its template: an Argo Workflow re-serialized
as compact JSON, or a KFP v2 pipeline spec as uploaded (services/pipeline_specs.py).
Error chains follow the real server's ("Error creating pipeline: Create pipeline failed: Already exist
error: ..."), but a bad input is always a 4xx here (see docs/compatibility.md).
"""

from __future__ import annotations

import http.client
import json
import os
import posixpath
import stat
import urllib.request
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session

from kfp_backend.config import Settings
from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller, validate_namespace
from kfp_backend.services.authorization import SINGLE_USER, Authorizer
from kfp_backend.services.clock import now_seconds
from kfp_backend.services.errors import InvalidArgument, NotFound, error_context
from kfp_backend.services.listing import ListRequest, ListResult, next_page_token, parse_list_request
from kfp_backend.services.pipeline_files import extract_manifest, too_large
from kfp_backend.services.pipeline_specs import manifest_of_struct, template_and_parameters
from kfp_backend.services.references import (
    Relationship,
    ResourceKey,
    ResourceReference,
    ResourceType,
    find_reference,
)
from kfp_backend.services.text_fields import check_reference_ids, check_text
from kfp_backend.services.unit_of_work import refused_as_taken, transaction
from kfp_backend.services.url_fetch import DestinationRefused, TooLarge, fetch, fetch_public
from kfp_backend.store import pipelines_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.models import NAMESPACE_LENGTH, Pipeline, PipelineVersion, description_key

# Pipeline and PipelineVersion rows are part of this service's interface: api/ takes these types from here, not store/.

STATUS_READY = "READY"
PIPELINE_NAME_LENGTH = 100
SHARED_NAMESPACE_ALIAS = "-"
URL_SCHEMES = ("http", "https", "file")
# What errors call a pipeline and a pipeline version (as field prefixes).
PIPELINE = "pipeline"
VERSION = "pipeline_version"


@dataclass(frozen=True)
class PackageFile:
    """A pipeline package as received: its file name (no directories) and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class NewPipeline:
    """CreatePipeline's input: the server downloads the package from `url`."""

    url: str
    name: str = ""
    description: str = ""
    resource_references: Sequence[ResourceReference] = field(default_factory=tuple)
    # v2beta1's CreatePipelineAndVersion: the version's description (v1beta1 leaves it empty) and, instead of
    # a url, the pipeline spec given inline as a JSON struct.
    version_description: str = ""
    pipeline_spec: Any = None


@dataclass(frozen=True)
class NewPipelineVersion:
    """CreatePipelineVersion's input: the package is downloaded from `package_url`."""

    package_url: str
    name: str = ""
    description: str = ""
    code_source_url: str = ""
    resource_references: Sequence[ResourceReference] = field(default_factory=tuple)
    # v2beta1: the pipeline spec given inline as a JSON struct, instead of a package_url.
    pipeline_spec: Any = None


@dataclass(frozen=True)
class VersionWithTemplate:
    """A version and its stored template (None if it has none)."""

    version: PipelineVersion
    template: str | None


@dataclass(frozen=True)
class PipelineDetail:
    """A pipeline with its default version (None when it has none)."""

    pipeline: Pipeline
    default_version: PipelineVersion | None


def decode_parameters(text: str | None) -> list[dict[str, str]]:
    """The stored parameters JSON of a pipeline or version: [{"name", "value"?}, ...]."""
    return json.loads(text) if text else []


class PipelineService:
    """Shared pipelines (namespace "") need no authorization in multi-user mode, as upstream; namespaced
    ones and their versions are authorized against their namespace."""

    def __init__(self, db: Database, settings: Settings, authorizer: Authorizer = SINGLE_USER) -> None:
        self._db = db
        self._settings = settings
        self._authz = authorizer

    # -- pipelines ------------------------------------------------------------------------------------

    def upload(
        self,
        package: PackageFile,
        *,
        name: str = "",
        description: str = "",
        namespace: str = "",
        version_description: str = "",
        caller: Caller,
    ) -> PipelineDetail:
        """UploadPipeline: a pipeline and its first version from an uploaded package."""
        with error_context("Error read pipeline file."):
            manifest = extract_manifest(package.filename, package.data, self._settings.max_upload_bytes)
        with error_context("Invalid namespace."):
            self._check_namespace(namespace)
        with error_context("Authorization to namespace failed."):
            self._authz.pipeline_namespace(caller, namespace, authz.CREATE, name)
        name = _name_and_description(
            PIPELINE, name, package.filename, description, description_context="Error read pipeline description."
        )
        with error_context("Error creating pipeline"), error_context("Create pipeline failed"):
            return self._create_pipeline(
                name, description, namespace, manifest, version_description=version_description
            )

    def create(self, request: NewPipeline, *, caller: Caller) -> PipelineDetail:
        """CreatePipeline: a pipeline and its first version from a package the server downloads (or, from
        v2beta1, a pipeline spec given inline)."""
        url, inline = request.url, request.pipeline_spec is not None
        with error_context("Create pipeline failed."):
            if inline and url:
                raise InvalidArgument("Please specify either a package_url or a pipeline_spec, not both.")
            if not inline:
                _check_url("pipeline.url.pipeline_url", url, allow_files=not self._authz.multi_user)
            namespace = _namespace_of(request.resource_references)
            self._check_namespace(namespace)
        self._authz.pipeline_namespace(caller, namespace, authz.CREATE, request.name)
        with error_context("Create pipeline failed."):
            filename, manifest = self._inline(request.pipeline_spec) if inline else self._fetch(url)
            name = _name_and_description(PIPELINE, request.name, filename, request.description)
            return self._create_pipeline(
                name, request.description, namespace, manifest, package_url=url,
                version_description=request.version_description,
            )

    def create_empty(self, name: str, description: str, namespace: str, *, caller: Caller) -> PipelineDetail:
        """v2beta1's CreatePipeline: a pipeline without any version (and so without a default one)."""
        with error_context("Failed to create a pipeline due to server error"):
            if not name:
                raise InvalidArgument("name is required")
            self._check_namespace(namespace)
            self._authz.pipeline_namespace(caller, namespace, authz.CREATE, name)
            name = _name_and_description(PIPELINE, name, "", description)
            return self._create_pipeline(name, description, namespace, None)

    def get(self, pipeline_id: str, *, caller: Caller) -> PipelineDetail:
        with transaction(self._db, write=False) as session:
            pipeline = repo.get_pipeline(session, pipeline_id)
            if pipeline is None:
                raise NotFound.resource("Pipeline", pipeline_id).wrap("Get pipeline failed.")
            self._authz.pipeline_namespace(caller, pipeline.namespace, authz.GET, pipeline.id)
            return PipelineDetail(pipeline, _default_version(session, pipeline))

    def get_by_name(self, namespace: str, name: str, *, caller: Caller) -> PipelineDetail:
        """GetPipelineByName: `-` names the shared namespace ("")."""
        stored_namespace = "" if namespace == SHARED_NAMESPACE_ALIAS else namespace
        self._authz.pipeline_namespace(caller, stored_namespace, authz.GET, name)
        with transaction(self._db, write=False) as session:
            pipeline = repo.find_pipeline_by_name(session, stored_namespace, name)
            if pipeline is None:
                raise NotFound.resource("Namespace/Pipeline", f"{namespace}/{name}").wrap(
                    "Get pipeline by name failed."
                )
            return PipelineDetail(pipeline, _default_version(session, pipeline))

    def list(self, request: ListRequest, key: ResourceKey | None = None, *, caller: Caller) -> ListResult:
        """ListPipelines: shared pipelines without a key, a namespace's with a NAMESPACE key."""
        namespace = _list_namespace(key)
        query = parse_list_request(repo.PIPELINE_LISTABLE, request)
        self._authz.pipeline_namespace(caller, namespace, authz.LIST)
        with transaction(self._db, write=False) as session:
            page = repo.list_pipelines(session, query, namespace)
            # All default versions of the page in one query.
            versions = repo.get_versions(
                session, [p.default_version_id for p in page.items if p.default_version_id]
            )
        items = [
            PipelineDetail(p, versions.get(p.default_version_id) if p.default_version_id else None)
            for p in page.items
        ]
        return ListResult(items, page, next_page_token(query, page))

    def delete(self, pipeline_id: str, *, cascade: bool = True, caller: Caller) -> None:
        """DeletePipeline: the pipeline and (by cascade) all its versions and templates. Without `cascade`
        (v2beta1's default) a pipeline that still has versions is refused, as upstream refuses it."""
        with transaction(self._db) as session:
            self._authz.pipeline(session, caller, pipeline_id, authz.DELETE)
            if not cascade and repo.get_pipeline(session, pipeline_id, lock=True) is not None:
                version = repo.latest_version(session, pipeline_id)
                if version is not None:
                    raise InvalidArgument(
                        f"Failed to delete pipeline with id {pipeline_id} as it has existing pipeline versions "
                        f"(e.g. {version.id}). Delete them first, or set cascade=true."
                    ).wrap(f"Failed to delete pipeline {pipeline_id}")
            if not repo.delete_pipeline(session, pipeline_id):
                raise NotFound.resource("Pipeline", pipeline_id).wrap("Delete pipeline failed.")

    def get_template(self, pipeline_id: str, *, caller: Caller) -> str | None:
        """The template of the pipeline's default version; None when it has no default version."""
        with transaction(self._db, write=False) as session:
            pipeline = repo.get_pipeline(session, pipeline_id)
            if pipeline is None:
                raise NotFound.resource("Pipeline", pipeline_id).wrap("Get pipeline template failed.")
            self._authz.pipeline_namespace(caller, pipeline.namespace, authz.GET, pipeline.id)
            if not pipeline.default_version_id:
                return None
            return repo.get_template(session, pipeline.default_version_id)

    def update_default_version(self, pipeline_id: str, version_id: str, *, caller: Caller) -> None:
        with transaction(self._db) as session:
            self._authz.pipeline(session, caller, pipeline_id, authz.UPDATE)
            with error_context("Update pipeline default version failed."):
                _existing_pipeline(session, pipeline_id, lock=True)
                version = repo.get_version(session, version_id)
                if version is None:
                    raise NotFound.resource("Version", version_id)
                if version.pipeline_id != pipeline_id:
                    raise InvalidArgument(f"Version {version_id} does not belong to pipeline {pipeline_id}.")
                repo.set_default_version(session, pipeline_id, version_id)

    # -- versions -------------------------------------------------------------------------------------

    def upload_version(
        self, pipeline_id: str, package: PackageFile, *, name: str = "", description: str = "",
        caller: Caller,
    ) -> PipelineVersion:
        """UploadPipelineVersion: a new version of `pipeline_id` from an uploaded package."""
        if not pipeline_id:
            message = "Please specify a pipeline id when creating versions."
            raise InvalidArgument(message, internal=message)
        check_text("pipelineid", pipeline_id)
        with transaction(self._db) as session:
            with error_context("Failed to get namespace from pipelineId."), error_context(
                "Failed to get namespace from Pipeline ID"
            ):
                pipeline = _existing_pipeline(session, pipeline_id)
            with error_context("Authorization to namespace failed."):
                self._authz.pipeline_namespace(caller, pipeline.namespace, authz.CREATE, pipeline_id)
            with error_context("Error read pipeline file."):
                manifest = extract_manifest(package.filename, package.data, self._settings.max_upload_bytes)
            name = _name_and_description(
                VERSION, name, package.filename, description, description_context="Error read pipeline description."
            )
            with error_context("Error creating pipeline version"), error_context("Create pipeline version failed"):
                return self._add_version(session, pipeline_id, name, description, manifest)

    def create_version(self, request: NewPipelineVersion, *, caller: Caller) -> PipelineVersion:
        """CreatePipelineVersion: a new version downloaded from a URL, owned by a PIPELINE reference. The
        download happens between two transactions: the pipeline is checked before it, written to after."""
        with error_context("Create pipeline version failed."):
            url = request.package_url
            inline = request.pipeline_spec is not None
            if inline and url:
                raise InvalidArgument("Please specify either a package_url or a pipeline_spec, not both.")
            if not inline:
                _check_url("pipeline_version.package_url.pipeline_url", url, allow_files=not self._authz.multi_user)
            check_reference_ids("pipeline_version.resource_references", request.resource_references)
            owner = find_reference(list(request.resource_references), ResourceType.PIPELINE, Relationship.OWNER)
            if owner is None or not owner.key.id:
                raise InvalidArgument("Create pipeline version failed due to missing pipeline id")
            pipeline_id = owner.key.id
        with transaction(self._db, write=False) as session:
            with error_context("Create pipeline version failed."):
                pipeline = _existing_pipeline(session, pipeline_id)
            self._authz.pipeline_namespace(caller, pipeline.namespace, authz.CREATE, pipeline_id)
        with error_context("Create pipeline version failed."):
            filename, manifest = self._inline(request.pipeline_spec) if inline else self._fetch(url)
            name = _name_and_description(VERSION, request.name, filename, request.description)
            check_text("pipeline_version.code_source_url", request.code_source_url)
            with transaction(self._db) as session:
                return self._add_version(
                    session,
                    pipeline_id,
                    name,
                    request.description,
                    manifest,
                    code_source_url=request.code_source_url,
                    package_url=url,
                )

    def get_version(self, version_id: str, *, caller: Caller) -> PipelineVersion:
        with transaction(self._db, write=False) as session:
            version = repo.get_version(session, version_id)
            if version is None:
                raise NotFound.resource("Version", version_id).wrap("Get pipeline version failed.")
            self._authz.version(session, caller, version_id, authz.GET)
        return version

    def get_version_spec(self, pipeline_id: str, version_id: str, *, caller: Caller) -> VersionWithTemplate:
        """v2beta1's GetPipelineVersion: the version of `pipeline_id` and its template."""
        with transaction(self._db, write=False) as session:
            version = repo.get_version(session, version_id)
            if version is None or version.pipeline_id != pipeline_id:
                raise NotFound.resource("PipelineVersion", version_id).wrap(
                    f"Failed to get a pipeline version {version_id} of pipeline {pipeline_id}"
                )
            self._authz.version(session, caller, version_id, authz.GET)
            return VersionWithTemplate(version, repo.get_template(session, version_id))

    def list_version_specs(self, request: ListRequest, pipeline_id: str, *, caller: Caller) -> ListResult:
        """v2beta1's ListPipelineVersions: a page of VersionWithTemplate (templates read in one query)."""
        key = ResourceKey(ResourceType.PIPELINE, pipeline_id)
        return self._list_versions(request, key, caller, with_templates=True)

    def list_versions(self, request: ListRequest, key: ResourceKey | None, *, caller: Caller) -> ListResult:
        """ListPipelineVersions: the versions of the pipeline named by `resource_key`."""
        return self._list_versions(request, key, caller, with_templates=False)

    def _list_versions(
        self, request: ListRequest, key: ResourceKey | None, caller: Caller, *, with_templates: bool
    ) -> ListResult:
        if key is None or not key.id:
            raise InvalidArgument("ResourceKey must be set in the input")
        if key.type not in {ResourceType.PIPELINE, ResourceType.UNKNOWN_RESOURCE_TYPE}:
            raise InvalidArgument(
                f"Invalid resource key type {key.type.name}: pipeline versions are listed by PIPELINE."
            )
        query = parse_list_request(repo.VERSION_LISTABLE, request)
        with transaction(self._db, write=False) as session:
            pipeline = repo.get_pipeline(session, key.id)
            if pipeline is None:
                raise NotFound.resource("Pipeline", key.id).wrap("List pipeline versions failed.")
            self._authz.pipeline_namespace(caller, pipeline.namespace, authz.LIST, pipeline.id)
            page = repo.list_versions(session, query, key.id)
            if not with_templates:
                return ListResult(page.items, page, next_page_token(query, page))
            templates = repo.get_templates(session, [version.id for version in page.items])
        items = [VersionWithTemplate(version, templates.get(version.id)) for version in page.items]
        return ListResult(items, page, next_page_token(query, page))

    def delete_version(self, version_id: str, *, pipeline_id: str | None = None, caller: Caller) -> None:
        """DeletePipelineVersion; a deleted default gives way to the most recently created version left.
        With `pipeline_id` (v2beta1), the version must belong to that pipeline."""
        with transaction(self._db) as session:
            self._authz.version(session, caller, version_id, authz.DELETE)
            with error_context("Delete pipeline version failed."):
                version = repo.get_version(session, version_id)
                if version is None or (pipeline_id is not None and version.pipeline_id != pipeline_id):
                    raise NotFound.resource("Version", version_id)
                # Lock the pipeline first, as every version write does, then delete.
                pipeline = repo.get_pipeline(session, version.pipeline_id, lock=True)
                if not repo.delete_version(session, version_id):
                    raise NotFound.resource("Version", version_id)
                if pipeline is not None and pipeline.default_version_id == version_id:
                    latest = repo.latest_version(session, pipeline.id)
                    repo.set_default_version(session, pipeline.id, latest.id if latest is not None else None)

    def get_version_template(self, version_id: str, *, caller: Caller) -> str:
        with transaction(self._db, write=False) as session:
            self._authz.version(session, caller, version_id, authz.GET)
            template = repo.get_template(session, version_id)
        if template is None:
            raise NotFound.resource("Version", version_id).wrap("Get pipeline version template failed.")
        return template

    # -- internals ------------------------------------------------------------------------------------

    def _check_namespace(self, namespace: str) -> None:
        _check_namespace(namespace)
        if self._authz.multi_user and namespace:
            validate_namespace(namespace)

    def _create_pipeline(
        self, name: str, description: str, namespace: str, manifest: bytes | None, *, package_url: str = "",
        version_description: str = "",
    ) -> PipelineDetail:
        """A pipeline and, from `manifest`, its first version (none without a manifest)."""
        template, parameters = template_and_parameters(manifest) if manifest is not None else (None, "[]")
        pipeline_id = str(uuid.uuid4())
        created_at = now_seconds()
        pipeline = Pipeline(
            id=pipeline_id,
            name=name,
            description=description,
            description_key=description_key(description),
            namespace=namespace,
            created_at=created_at,
            status=STATUS_READY,
            parameters=parameters,
            default_version_id=pipeline_id if template is not None else None,
        )
        version = PipelineVersion(
            id=pipeline_id,
            pipeline_id=pipeline_id,
            name=name,
            description=version_description,
            created_at=created_at,
            status=STATUS_READY,
            parameters=parameters,
            code_source_url="",
            package_url=package_url,
        )
        name_taken = f"Failed to create a new pipeline. The name {name} already exist. Please specify a new name."
        with transaction(self._db) as session:
            with refused_as_taken(name_taken):
                repo.add_pipeline(session, pipeline)
            if template is None:
                return PipelineDetail(pipeline, None)
            repo.add_version(session, version, template)
        return PipelineDetail(pipeline, version)

    def _add_version(
        self,
        session: Session,
        pipeline_id: str,
        name: str,
        description: str,
        manifest: bytes,
        *,
        code_source_url: str = "",
        package_url: str = "",
    ) -> PipelineVersion:
        template, parameters = template_and_parameters(manifest)
        version = PipelineVersion(
            id=str(uuid.uuid4()),
            pipeline_id=pipeline_id,
            name=name,
            description=description,
            created_at=now_seconds(),
            status=STATUS_READY,
            parameters=parameters,
            code_source_url=code_source_url,
            package_url=package_url,
        )
        pipeline = _existing_pipeline(session, pipeline_id, lock=True)
        name_taken = (
            f"Failed to create a new pipeline version. The name {name} already exist. Please specify a new name."
        )
        with refused_as_taken(name_taken):
            repo.add_version(session, version, template)
        # A pipeline left without a default (all versions deleted) takes the new one whatever the setting.
        if self._settings.auto_update_default_version or not pipeline.default_version_id:
            repo.set_default_version(session, pipeline_id, version.id)
        return version

    def _inline(self, spec: Any) -> tuple[str, bytes]:
        """("", the manifest) of a pipeline spec given as a JSON struct."""
        manifest = manifest_of_struct(spec)
        if len(manifest) > self._settings.max_upload_bytes:
            raise too_large(self._settings.max_upload_bytes)
        return "", manifest

    def _fetch(self, url: str) -> tuple[str, bytes]:
        """The file name and the manifest of the package at `url`."""
        filename, data = self._download(url)
        with error_context("The URL is valid but pipeline system failed to read the file."):
            return filename, extract_manifest(filename, data, self._settings.max_upload_bytes)

    def _download(self, url: str) -> tuple[str, bytes]:
        """The file name (last path segment) and the bytes at `url`; a failure is the client's (400)."""
        parts = urlsplit(url)
        filename = posixpath.basename(unquote(parts.path).rstrip("/")) or parts.netloc
        limit = self._settings.max_upload_bytes
        timeout = self._settings.url_fetch_timeout_seconds
        try:
            if parts.scheme == "file":
                data = _read_local_file(parts.netloc, parts.path, limit)
            elif self._authz.multi_user:  # no reaching what only the server can reach
                data = fetch_public(url, limit, timeout, self._settings.pipeline_url_allow_list)
            else:
                data = fetch(url, limit, timeout)
        except TooLarge:
            raise too_large(limit) from None
        except DestinationRefused as exc:
            redirected = f" (redirected to {exc.url})" if exc.url != url else ""
            raise InvalidArgument(
                f"Invalid Pipeline URL {url}. Please specify a valid URL: in multi-user mode the server does not "
                f"download from loopback, private, link-local or other non-public addresses, and {exc.host}"
                f"{redirected} resolves to one. An administrator can allow it with "
                "KFP_BACKEND_PIPELINE_URL_ALLOWED_HOSTS."
            ) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            message = (
                f"Failed to download the pipeline from {url} Please double check the URL is valid and can be "
                "accessed by the pipeline system."
            )
            raise InvalidArgument(message, internal=f"InvalidInputError: {message}: {exc}") from None
        return filename, data


def _existing_pipeline(session: Session, pipeline_id: str, *, lock: bool = False) -> Pipeline:
    pipeline = repo.get_pipeline(session, pipeline_id, lock=lock)
    if pipeline is None:
        raise NotFound.resource("Pipeline", pipeline_id)
    return pipeline


def _default_version(session: Session, pipeline: Pipeline) -> PipelineVersion | None:
    return repo.get_version(session, pipeline.default_version_id) if pipeline.default_version_id else None


def _pipeline_name(field: str, name: str, fallback: str) -> str:
    """`name`, else the package's file name; `field` names it in errors (a pipeline's or a version's)."""
    name = name or fallback
    if not name:
        raise InvalidArgument("Pipeline name is empty. Please specify a valid name.")
    if len(name) > PIPELINE_NAME_LENGTH:
        raise InvalidArgument(f"Pipeline name too long. Support maximum length of {PIPELINE_NAME_LENGTH}")
    check_text(field, name)
    return name


def _name_and_description(
    kind: str, name: str, fallback: str, description: str, *, description_context: str = ""
) -> str:
    """The name of a new pipeline or version (`kind`), else the package's file name, and its description,
    checked; `description_context` prefixes a description's error."""
    with error_context("Invalid pipeline version name." if kind == VERSION else "Invalid pipeline name."):
        name = _pipeline_name(f"{kind}.name", name, fallback)
    with error_context(description_context) if description_context else nullcontext():
        check_text(f"{kind}.description", description)
    return name


def _check_namespace(namespace: str) -> None:
    if len(namespace) > NAMESPACE_LENGTH:
        raise InvalidArgument(f"Namespace too long. Support maximum length of {NAMESPACE_LENGTH}")
    check_text("namespace", namespace)


def _namespace_of(references: Sequence[ResourceReference]) -> str:
    reference = find_reference(list(references), ResourceType.NAMESPACE)
    return reference.key.id if reference is not None else ""


def _list_namespace(key: ResourceKey | None) -> str:
    if key is None or (key.type == ResourceType.UNKNOWN_RESOURCE_TYPE and not key.id):
        return ""
    if key.type != ResourceType.NAMESPACE:
        raise InvalidArgument(
            "Invalid resource references for pipelines. ListPipelines requires filtering by namespace."
        ).wrap("Failed to create list options")
    return key.id


def _check_url(field: str, url: str, *, allow_files: bool) -> None:
    """`field` names the URL in errors; `allow_files`: file URLs too (single-user mode only: they read
    this server's files)."""
    if not url:
        raise InvalidArgument("Pipeline URL is empty. Please specify a valid URL.")
    invalid = InvalidArgument(f"Invalid Pipeline URL {url}. Please specify a valid URL")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise invalid from None
    if not parts.scheme:
        raise invalid
    if parts.scheme.lower() not in URL_SCHEMES:
        raise InvalidArgument(
            f"Invalid Pipeline URL {url}. Please specify a valid URL: the server downloads http, https and file URLs."
        )
    if parts.scheme.lower() == "file" and not allow_files:
        raise InvalidArgument(
            f"Invalid Pipeline URL {url}. Please specify a valid URL: in multi-user mode the server downloads http "
            "and https URLs only."
        )
    if parts.scheme.lower() != "file" and not parts.netloc:
        raise invalid
    check_text(field, url)


def _read_local_file(host: str, path: str, limit: int) -> bytes:
    if host not in ("", "localhost"):
        raise OSError(f"a file URL must name a file on this server, not on {host!r}")
    local_path = urllib.request.url2pathname(path)
    # Only regular files: a FIFO or device could block or never end.
    if not stat.S_ISREG(os.stat(local_path).st_mode):
        raise OSError(f"{local_path} is not a regular file")
    with open(local_path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge
    return data
