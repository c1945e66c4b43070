"""Multi-user refusals in the words of upstream's v2beta1 server.

The services refuse a call in a namespace the caller may not use (`NamespaceDenied`), a call that names no
namespace (`EmptyNamespace`) and a new run or recurring run that names no experiment (`NoExperiment`) with
v1beta1's texts. Upstream's v2 handlers word the same refusals their own way: another user-facing message
for a missing namespace (`An experiment cannot have an empty namespace in multi-user mode`) or experiment
(`Experiment id can not be empty in multi-user mode`) and other contexts around the same PermissionDenied
leaf. `v2_refusals(resource, operation)` wraps a v2 handler and re-words them; status, code and the
PermissionDenied message stay.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from kfp_backend.services.errors import (
    EmptyNamespace,
    InvalidArgument,
    NamespaceDenied,
    NoExperiment,
    PermissionDenied,
)

EXPERIMENT = "experiment"
RUN = "run"
RECURRING_RUN = "recurring_run"
PIPELINE = "pipeline"
PIPELINE_VERSION = "pipeline_version"
# The two upload endpoints (upstream's upload server, which answers in its own body shape).
PIPELINE_UPLOAD = "pipeline_upload"

# The user-facing message of a missing namespace, per resource (upstream's canAccess* checks).
_EMPTY = {
    EXPERIMENT: "An experiment cannot have an empty namespace in multi-user mode",
    RUN: "A run cannot have an empty namespace in multi-user mode",
    RECURRING_RUN: "a recurring run cannot have an empty namespace in multi-user mode",
}
_AUTHORIZE = "Failed to authorize the request"

# What upstream says when a new run or recurring run names no experiment (GetValidExperimentNamespacePair).
_NO_EXPERIMENT = "Experiment id can not be empty in multi-user mode"
_NO_EXPERIMENT_CONTEXT = {
    RUN: "Failed to create a run due to invalid experimentId and namespace combination",
    RECURRING_RUN: "Failed to create a recurring run due to invalid experimentId and namespace combination",
}
# The context upstream's check of a pipeline's namespace puts around the PermissionDenied leaf (pipeline
# versions are checked on their pipeline's namespace; a create or a list names no pipeline).
_PIPELINE_CHECK = "Failed to access pipeline {pipeline}. Check if you have access to namespace {ns}"

# resource -> operation -> the contexts around the authorization check, outermost first ({ns}: the namespace,
# {id}: the resource's id, {pipeline_id}/{version_id}/{name}: the handler's path arguments).
_CONTEXTS: dict[str, dict[str, list[str]]] = {
    EXPERIMENT: {
        "create": ["Failed to create a experiment", _AUTHORIZE],
        "get": ["Failed to fetch experiment", _AUTHORIZE],
        "list": ["List experiments failed", "Failed to authorize with API"],
        "delete": ["Failed to delete experiment", _AUTHORIZE],
        "archive": ["Failed to archive experiment", _AUTHORIZE],
        "unarchive": ["Failed to unarchive experiment", _AUTHORIZE],
    },
    RUN: {
        "create": ["Failed to create a new run",
                   "Failed to create a run due to authorization error. Check if you have write permissions to "
                   "namespace {ns}"],
        "get": ["Failed to get a run", _AUTHORIZE],
        "list": ["Failed to list runs",
                 "Failed to list runs due to authorization error. Check if you have permission to access namespace "
                 "{ns}"],
        "delete": ["Failed to delete a run", _AUTHORIZE],
        "archive": ["Failed to archive a run", _AUTHORIZE],
        "unarchive": ["Failed to unarchive a run", _AUTHORIZE],
        "terminate": ["Failed to terminate a run", _AUTHORIZE],
        "retry": ["Failed to retry a run", _AUTHORIZE],
    },
    RECURRING_RUN: {
        "create": ["Failed to create a recurring run",
                   "Failed to create a recurring run due to authorization error. Check if you have write permission "
                   "to namespace {ns}"],
        "get": ["Failed to fetch a recurring run", _AUTHORIZE],
        "list": ["Failed to list jobs",
                 "Failed to list recurring runs due to authorization error. Check if you have permission to access "
                 "namespace {ns}"],
        "delete": ["Failed to delete a recurring run", _AUTHORIZE],
        "enable": ["Failed to enable a recurring run", _AUTHORIZE],
        "disable": ["Failed to disable a recurring run", _AUTHORIZE],
    },
    PIPELINE: {
        "create": ["Failed to create a pipeline due to server error",
                   "Failed to create a pipeline due to authorization error. Check if you have write permissions to "
                   "namespace {ns}"],
        "create_with_version": ["Failed to create a pipeline"],
        "get_by_name": ["Failed to get a pipeline with name {name} and namespace {ns}. Check error stack.",
                        "Failed to fetch a pipeline due to authorization error. Check if you have read permission to "
                        "namespace {ns}"],
        "get": ["Failed to get a pipeline {id}. Check error stack",
                "Failed to get a pipeline due authorization error for pipeline id {id}"],
        "list": ["Failed to list pipelines in namespace {ns}. Check error stack",
                 "Failed to list pipelines due to authorization error. Check if you have read permission to namespace "
                 "{ns}"],
        "delete": ["Failed to delete pipeline {id}. Check error stack",
                   "Failed to delete a pipeline due authorization error for pipeline id {id}"],
    },
    PIPELINE_VERSION: {
        "create": ["Failed to create a pipeline version. Check error stack",
                   "Failed to create a pipeline version due authorization error for pipeline id {pipeline_id}",
                   _PIPELINE_CHECK.replace("{pipeline}", "{pipeline_id}")],
        "get": ["Failed to get a pipeline version {version_id}",
                "Failed to get a pipeline version due to authorization error for pipeline version id {version_id}",
                _PIPELINE_CHECK.replace("{pipeline}", "{pipeline_id}")],
        "list": ["Failed to list pipeline versions for pipeline {pipeline_id}",
                 "Failed to list pipeline versions due to authorization error. Check if you have read permission to "
                 "namespace {ns}",
                 _PIPELINE_CHECK.replace("{pipeline}", "")],
        "delete": ["Failed to delete a pipeline version id {version_id} under pipeline id {pipeline_id}. Check error "
                   "stack",
                   "Failed to delete a pipeline version id {version_id} due to authorization error for pipeline id "
                   "{pipeline_id}",
                   _PIPELINE_CHECK.replace("{pipeline}", "{pipeline_id}")],
    },
    PIPELINE_UPLOAD: {
        "upload": ["Failed to create a pipeline due to authorization error", "Authorization Failure"],
        "upload_version": ["Failed to create a pipeline version due to authorization error", "Authorization Failure"],
    },
}


def _check_context(resource: str, resource_id: str, namespace: str) -> str | None:
    """The context the authorization check itself puts around the PermissionDenied leaf (None: the chain of
    `_CONTEXTS` ends with it already, or the check puts none)."""
    if resource in (PIPELINE_VERSION, PIPELINE_UPLOAD):
        return None
    if resource == RUN:
        return f"Failed to access run {resource_id}. Check if you have access to namespace {namespace}"
    if resource == RECURRING_RUN:
        return "failed to authorize with API"
    if resource == PIPELINE:
        return _PIPELINE_CHECK.format(pipeline=resource_id, ns=namespace)
    return "Failed to authorize with API"


def _chain(contexts: list[str], namespace: str, resource_id: str, fields: dict[str, str] | None = None) -> str:
    values = {**(fields or {}), "ns": namespace, "id": resource_id}
    return ": ".join(context.format(**values) for context in contexts)


def reworded(
    error: PermissionDenied | InvalidArgument, resource: str, operation: str, resource_id: str = "",
    fields: dict[str, str] | None = None,
) -> Any:
    """`error` as upstream's v2 server words it for `operation` on `resource`; other errors as they are.
    `fields`: the handler's arguments, which some contexts name."""
    contexts = _CONTEXTS[resource][operation]
    if isinstance(error, NamespaceDenied):
        check = _check_context(resource, resource_id, error.namespace)
        chain = contexts if check is None else [*contexts, check]
        return PermissionDenied(error.external_message,
                                internal=f"{_chain(chain, error.namespace, resource_id, fields)}: {error.leaf}")
    if isinstance(error, NoExperiment) and operation == "create" and resource in _NO_EXPERIMENT_CONTEXT:
        return InvalidArgument(_NO_EXPERIMENT).wrap(_NO_EXPERIMENT_CONTEXT[resource]).wrap(contexts[0])
    if isinstance(error, EmptyNamespace) and resource in _EMPTY:
        # Creating a run or a recurring run checks the namespace before authorizing (no context around it).
        message = _EMPTY[resource]
        if operation == "create" and resource == RECURRING_RUN:
            message = "Recurring run cannot have an empty namespace in multi-user mode"
        outer = contexts[:1] if operation == "create" and resource != EXPERIMENT else contexts
        return InvalidArgument(message).wrap(_chain(outer, "", resource_id))
    return error


F = TypeVar("F", bound=Callable[..., Any])


def v2_refusals(resource: str, operation: str, id_argument: str = "") -> Callable[[F], F]:
    """A v2 handler whose multi-user refusals are worded as upstream's v2 server words them."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except (NamespaceDenied, EmptyNamespace, NoExperiment) as exc:
                fields = {name: str(value) for name, value in kwargs.items()}
                raise reworded(exc, resource, operation, fields.get(id_argument, ""), fields) from None

        return wrapper  # type: ignore[return-value]

    return decorate
