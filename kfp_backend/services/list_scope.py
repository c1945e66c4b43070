"""The scope of ListRuns and ListJobs: the resource key a list call filters by, checked (in multi-user mode
the caller must be allowed to list what it names) and turned into the store's filter, in the list's session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller
from kfp_backend.services.authorization import Authorizer
from kfp_backend.services.errors import InvalidArgument, NotFound
from kfp_backend.services.references import ResourceKey, ResourceType, describe_key
from kfp_backend.store import experiments_repo

ScopeFilter = Callable[[str], ColumnElement[bool]]


@dataclass(frozen=True)
class ScopeFilters:
    """A listed resource's store filters, one per type of key a list call may name (a namespace key, or a
    key of no type with an id, scopes to a namespace)."""

    experiment: ScopeFilter
    job: ScopeFilter
    pipeline_version: ScopeFilter
    namespace: ScopeFilter


def list_scope(
    session: Session, authorizer: Authorizer, caller: Caller, key: ResourceKey | None, filters: ScopeFilters,
    resource: str, operation: str,
) -> list[ColumnElement[bool]]:
    """The store filters of a list call scoped by `key` (already checked by check_filter_key); `resource` and
    `operation` name what is listed, for the authorizer and the messages (authz.RUNS, "ListRuns")."""
    if authorizer.multi_user:
        _check_multi_user_scope(session, authorizer, caller, key, resource, operation)
    if key is None:
        return []
    if key.type == ResourceType.EXPERIMENT:
        return [filters.experiment(key.id)]
    if key.type == ResourceType.JOB:
        return [filters.job(key.id)]
    if key.type == ResourceType.PIPELINE_VERSION:
        return [filters.pipeline_version(key.id)]
    if key.id:
        return [filters.namespace(key.id)]
    return []


def _check_multi_user_scope(
    session: Session, authorizer: Authorizer, caller: Caller, key: ResourceKey | None, resource: str, operation: str,
) -> None:
    """Multi-user ListRuns / ListJobs: the key must name a namespace or an experiment, which the caller
    may list (the scope itself is the single-user one)."""
    if key is None or (key.type == ResourceType.UNKNOWN_RESOURCE_TYPE and not key.id):
        raise InvalidArgument(f"{operation} must filter by resource reference in multi-user mode.")
    if key.type == ResourceType.NAMESPACE:
        if not key.id:
            raise InvalidArgument(f"Invalid resource references for {operation}. Namespace is empty.")
        authorizer.namespace(caller, key.id, resource, authz.LIST)
    elif key.type == ResourceType.EXPERIMENT:
        experiment = experiments_repo.get_experiment(session, key.id)
        if experiment is None:
            raise NotFound.resource("Experiment", key.id).wrap("Failed to get namespace from experiment ID")
        authorizer.namespace(caller, experiment.namespace, resource, authz.LIST)
    else:
        raise InvalidArgument(f"Invalid resource references for {operation}. Got {describe_key(key)}")
