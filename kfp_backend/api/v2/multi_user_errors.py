"""Multi-user refusals in the words of upstream's v2beta1 server.

The services refuse a call in a namespace the caller may not use (`NamespaceDenied`) or a call that names no
namespace (`EmptyNamespace`) with v1beta1's texts. Upstream's v2 handlers word the same refusals their own
way: another user-facing message for a missing namespace (`An experiment cannot have an empty namespace in
multi-user mode`) and other contexts around the same PermissionDenied leaf. `v2_refusals(resource,
operation)` wraps a v2 handler and re-words them; status, code and the PermissionDenied message stay.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from kfp_backend.services.errors import EmptyNamespace, InvalidArgument, NamespaceDenied, PermissionDenied

EXPERIMENT = "experiment"
RUN = "run"
RECURRING_RUN = "recurring_run"
PIPELINE = "pipeline"

# The user-facing message of a missing namespace, per resource (upstream's canAccess* checks).
_EMPTY = {
    EXPERIMENT: "An experiment cannot have an empty namespace in multi-user mode",
    RUN: "A run cannot have an empty namespace in multi-user mode",
    RECURRING_RUN: "a recurring run cannot have an empty namespace in multi-user mode",
}
_AUTHORIZE = "Failed to authorize the request"

# resource -> operation -> the contexts around the authorization check, outermost first ({ns}: the namespace,
# {id}: the resource's id).
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
        "get": ["Failed to get a pipeline {id}. Check error stack",
                "Failed to get a pipeline due authorization error for pipeline id {id}"],
        "list": ["Failed to list pipelines in namespace {ns}. Check error stack",
                 "Failed to list pipelines due to authorization error. Check if you have read permission to namespace "
                 "{ns}"],
        "delete": ["Failed to delete pipeline {id}. Check error stack",
                   "Failed to delete a pipeline due authorization error for pipeline id {id}"],
    },
}


def _check_context(resource: str, resource_id: str, namespace: str) -> str:
    """The context the authorization check itself puts around the PermissionDenied leaf."""
    if resource == RUN:
        return f"Failed to access run {resource_id}. Check if you have access to namespace {namespace}"
    if resource == RECURRING_RUN:
        return "failed to authorize with API"
    if resource == PIPELINE:
        return f"Failed to access pipeline {resource_id}. Check if you have access to namespace {namespace}"
    return "Failed to authorize with API"


def _chain(contexts: list[str], namespace: str, resource_id: str) -> str:
    return ": ".join(context.format(ns=namespace, id=resource_id) for context in contexts)


def reworded(error: PermissionDenied | InvalidArgument, resource: str, operation: str, resource_id: str = "") -> Any:
    """`error` as upstream's v2 server words it for `operation` on `resource`; other errors as they are."""
    contexts = _CONTEXTS[resource][operation]
    if isinstance(error, NamespaceDenied):
        check = _check_context(resource, resource_id, error.namespace)
        return PermissionDenied(error.external_message,
                                internal=f"{_chain(contexts, error.namespace, resource_id)}: {check}: {error.leaf}")
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
            except (NamespaceDenied, EmptyNamespace) as exc:
                raise reworded(exc, resource, operation, str(kwargs.get(id_argument, ""))) from None

        return wrapper  # type: ignore[return-value]

    return decorate
