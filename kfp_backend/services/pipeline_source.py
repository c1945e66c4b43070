"""What runs and jobs share at creation: the pipeline they execute, the resources they reference and the
namespace they live in, all read in the creating operation's one transaction.

Upstream validates both with one function (ValidatePipelineSpecAndResourceReferences) and resolves their
references the same way; so does this module. The messages are upstream's; each caller adds its own
context prefix (`Validate create run request failed.`, `Validate create job request failed.`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller
from kfp_backend.services.authorization import Authorizer
from kfp_backend.services.errors import InvalidArgument, NoExperiment, NotFound, error_context
from kfp_backend.services.experiments import default_experiment
from kfp_backend.services.ir_run_manifest import wrapped_spec
from kfp_backend.services.references import (
    Relationship,
    ResourceKey,
    ResourceReference,
    ResourceType,
    check_create_references,
)
from kfp_backend.services.run_manifest import unknown_parameter
from kfp_backend.services.text_fields import check_parameter_texts, check_reference_ids, check_text
from kfp_backend.store import experiments_repo, pipelines_repo
from kfp_backend.workflow.ir.document import is_pipeline_spec, load_documents
from kfp_backend.workflow.manifest import WorkflowError, parse_workflow

MAX_PARAMETER_BYTES = 10000


class PipelineSpecRequest(Protocol):
    """The fields of a create request (an api.Run or an api.Job) that say what it executes."""

    @property
    def name(self) -> str: ...

    @property
    def pipeline_id(self) -> str: ...

    @property
    def workflow_manifest(self) -> str: ...

    @property
    def pipeline_manifest(self) -> str: ...

    @property
    def parameters(self) -> Sequence[Mapping[str, str]] | None: ...

    @property
    def has_runtime_config(self) -> bool: ...

    @property
    def resource_references(self) -> Sequence[ResourceReference]: ...


@dataclass(frozen=True)
class PipelineSource:
    """The workflow a request executes and where it came from."""

    # The parsed Argo Workflow, or a KFP v2 pipeline spec wrapped as {"pipeline_spec", "platform_spec"}.
    document: dict[str, Any]
    # pipeline_spec.workflow_manifest as shown: the request's manifest verbatim, or the version's template.
    spec_manifest: str
    # The name of the request's pipeline_id ("" without one).
    pipeline_name: str
    # The pipeline version it comes from (None for a manifest).
    version_id: str | None
    version_name: str


def check_new(
    session: Session,
    authorizer: Authorizer,
    caller: Caller,
    request: PipelineSpecRequest,
    resource: str,
    *,
    context: str,
    check_more: Callable[[], None] = lambda: None,
) -> tuple[PipelineSource, str | None]:
    """What a new run or job (`resource`) executes and, in multi-user mode, the namespace it goes to, in
    upstream's order: the caller may read the pipelines named, the pipeline spec (`context` prefixes its
    errors, and those of `check_more`, the caller's own checks that come next, and of the references), then
    the namespace."""
    authorize_sources(session, authorizer, caller, request)
    with error_context(context):
        source = resolve_pipeline_source(session, request)
        check_more()
        check_create_references(request.resource_references)
    namespace = namespace_of_new(session, authorizer, caller, request.resource_references, resource, request.name)
    return source, namespace


def authorize_sources(
    session: Session, authorizer: Authorizer, caller: Caller, request: PipelineSpecRequest
) -> None:
    """Multi-user mode: the caller may read the pipeline and every pipeline version the request names. Checked
    before anything about them is read, so that no answer tells anything of another namespace's pipelines (an
    unknown id passes here: resolving it answers the usual 404)."""
    if request.pipeline_id:
        authorizer.pipeline(session, caller, request.pipeline_id, authz.GET)
    for reference in request.resource_references:
        if reference.key.type == ResourceType.PIPELINE_VERSION and reference.key.id:
            authorizer.version(session, caller, reference.key.id, authz.GET)


def resolve_pipeline_source(session: Session, request: PipelineSpecRequest) -> PipelineSource:
    """Upstream's pipeline-spec validation, in its order: manifest XOR pipeline/version, existence, the
    workflow's format, then parameters vs runtime config and the parameters' size."""
    creator_version = creator_version_id(request.resource_references)
    has_manifest = bool(request.workflow_manifest or request.pipeline_manifest)
    pipeline_name = ""
    version_id: str | None = None
    version_name = ""
    if has_manifest:
        if request.workflow_manifest and request.pipeline_manifest:
            raise InvalidArgument("Please don't specify both workflow manifest and pipeline manifest.")
        if request.pipeline_id or creator_version:
            raise InvalidArgument(
                "Please don't specify a pipeline version or pipeline ID when you specify a workflow manifest "
                "or pipeline manifest."
            )
        spec_manifest = request.workflow_manifest or request.pipeline_manifest
    else:
        if not request.pipeline_id and not creator_version:
            raise InvalidArgument(
                "Please specify a pipeline by providing a (workflow manifest or pipeline manifest) or "
                "(pipeline id or/and pipeline version)."
            )
        if request.pipeline_id:
            pipeline = pipelines_repo.get_pipeline(session, request.pipeline_id)
            if pipeline is None:
                raise NotFound.resource("Pipeline", request.pipeline_id).wrap("Get pipelineId failed.")
            pipeline_name = pipeline.name
        if creator_version:
            version = pipelines_repo.get_version(session, creator_version)
            if version is None:
                raise NotFound.resource("Version", creator_version).wrap("Get pipelineVersionId failed.")
            if request.pipeline_id and version.pipeline_id != request.pipeline_id:
                raise InvalidArgument("pipeline ID should be parent of pipeline version.")
        else:
            default_id = pipeline.default_version_id
            version = pipelines_repo.get_version(session, default_id) if default_id else None
            if version is None:
                raise InvalidArgument(
                    f"Pipeline {request.pipeline_id} has no default version to run. Please specify a "
                    "pipeline version."
                )
        spec_manifest = pipelines_repo.get_template(session, version.id) or ""
        version_id, version_name = version.id, version.name
    document = _parse_spec(spec_manifest, ir_only=bool(request.pipeline_manifest))
    if request.parameters is not None and request.has_runtime_config:
        raise InvalidArgument("Please don't specify both parameters and runtime config.")
    if request.parameters:
        size = len(json.dumps(list(request.parameters), separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_PARAMETER_BYTES:
            raise InvalidArgument(f"The input parameter length exceed maximum size of {MAX_PARAMETER_BYTES}.")
    return PipelineSource(document, spec_manifest, pipeline_name, version_id, version_name)


def _parse_spec(spec_manifest: str, *, ir_only: bool) -> dict[str, Any]:
    """The Argo workflow, or the KFP v2 pipeline spec in its wrapped form (`is_ir`), the manifest holds.
    `pipeline_manifest` holds a pipeline spec only."""
    try:
        loaded = load_documents(spec_manifest)
    except WorkflowError:
        loaded = []
    if is_pipeline_spec(loaded) or ir_only:
        try:
            return wrapped_spec(loaded if loaded else spec_manifest)[0]
        except WorkflowError as exc:
            raise InvalidArgument(f"Invalid IR spec format. {exc}") from None
    try:
        return parse_workflow(spec_manifest).document
    except WorkflowError as exc:
        raise InvalidArgument(f"Invalid argo workflow format. {exc}") from None


def is_ir(document: Mapping[str, Any]) -> bool:
    """Whether a source's document is a KFP v2 pipeline spec (else an Argo workflow)."""
    return is_pipeline_spec(document)


def resolve_references(
    session: Session, references: Sequence[ResourceReference], source: PipelineSource
) -> list[ResourceReference]:
    """The references with names: the request's, the Default experiment when none owns the object, and the
    pipeline's default version when the request names only a pipeline."""
    resolved: list[ResourceReference] = []
    for reference in references:
        kind = reference.key.type
        if kind in (ResourceType.PIPELINE, ResourceType.UNKNOWN_RESOURCE_TYPE):
            raise InvalidArgument(f"Unsupported resource type: {kind.name}")
        name = ""
        if kind == ResourceType.EXPERIMENT:
            experiment = experiments_repo.get_experiment(session, reference.key.id)
            if experiment is None:
                raise NotFound.resource("Experiment", reference.key.id)
            name = experiment.name
        elif kind == ResourceType.PIPELINE_VERSION:
            if reference.key.id == source.version_id:
                name = source.version_name
            else:
                version = pipelines_repo.get_version(session, reference.key.id)
                if version is None:
                    raise NotFound.resource("Version", reference.key.id)
                name = version.name
        elif kind == ResourceType.NAMESPACE:
            name = reference.key.id
        resolved.append(ResourceReference(reference.key, reference.relationship, name))
    if owner_experiment(resolved) is None:
        default = default_experiment(session)
        resolved.append(
            ResourceReference(ResourceKey(ResourceType.EXPERIMENT, default.id), Relationship.OWNER, default.name)
        )
    if source.version_id and not creator_version_id(resolved):
        resolved.append(
            ResourceReference(
                ResourceKey(ResourceType.PIPELINE_VERSION, source.version_id), Relationship.CREATOR,
                source.version_name,
            )
        )
    return resolved


def check_parameters(document: Mapping[str, Any], parameters: Sequence[Mapping[str, str]]) -> None:
    """Every given parameter must be declared in the workflow's spec.arguments.parameters."""
    unknown = unknown_parameter(document, parameters)
    if unknown is not None:
        raise InvalidArgument(f"Unrecognized input parameter: {unknown}")


def namespace_of_new(
    session: Session,
    authorizer: Authorizer,
    caller: Caller,
    references: Sequence[ResourceReference],
    resource: str,
    name: str,
) -> str | None:
    """Multi-user mode: the namespace a new run or job lives in, its experiment's, once the caller may
    create there (upstream's messages, "Job" for runs too). A NAMESPACE reference must name that namespace,
    which the caller may use. Single-user mode: None, nothing checked."""
    if not authorizer.multi_user:
        return None
    owner = owner_experiment(references)
    if owner is None or not owner.key.id:
        raise NoExperiment("Job has no experiment.")
    experiment = experiments_repo.get_experiment(session, owner.key.id)
    if experiment is None:
        raise NotFound.resource("Experiment", owner.key.id).wrap("Failed to get experiment namespace.")
    if not experiment.namespace:
        raise InvalidArgument("Job's experiment has no namespace.")
    authorizer.namespace(caller, experiment.namespace, resource, authz.CREATE, name)
    for reference in references:
        if reference.key.type != ResourceType.NAMESPACE:
            continue
        authorizer.namespace(caller, reference.key.id, resource, authz.CREATE, name)
        if reference.key.id != experiment.namespace:
            raise InvalidArgument(
                f"Invalid resource references: namespace {reference.key.id} is not the namespace of the experiment."
            )
    return experiment.namespace


def experiment_namespace(session: Session, experiment_id: str) -> str:
    experiment = experiments_repo.get_experiment(session, experiment_id)
    return experiment.namespace if experiment is not None else ""


def owner_experiment(references: Sequence[ResourceReference]) -> ResourceReference | None:
    for reference in references:
        if reference.key.type == ResourceType.EXPERIMENT and reference.relationship == Relationship.OWNER:
            return reference
    return None


def creator_version_id(references: Sequence[ResourceReference]) -> str:
    """The id of the PIPELINE_VERSION/CREATOR reference (the last one, as upstream), or ""."""
    found = ""
    for reference in references:
        if reference.key.type == ResourceType.PIPELINE_VERSION and reference.relationship == Relationship.CREATOR:
            found = reference.key.id
    return found


def check_spec_texts(resource: str, request: PipelineSpecRequest) -> None:
    """What a run or job (`resource`) stores of its pipeline spec and references, as every database can."""
    check_text(f"{resource}.pipeline_spec.pipeline_id", request.pipeline_id)
    check_text(f"{resource}.pipeline_spec.workflow_manifest", request.workflow_manifest, max_bytes=None)
    check_text(f"{resource}.pipeline_spec.pipeline_manifest", request.pipeline_manifest, max_bytes=None)
    check_parameter_texts(f"{resource}.pipeline_spec.parameters", request.parameters)
    check_reference_ids(f"{resource}.resource_references", request.resource_references)
