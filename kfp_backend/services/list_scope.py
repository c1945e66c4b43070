"""The query and scope of ListRuns and ListJobs: the request's paging, sorting and filter, and the resource
key the call filters by, checked (in multi-user mode the caller must be allowed to list what it names) and
turned into the store's filters, in the list's own session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller
from kfp_backend.services.authorization import Authorizer
from kfp_backend.services.errors import EmptyNamespace, InvalidArgument, NotFound
from kfp_backend.services.listing import ListRequest, parse_list_request
from kfp_backend.services.references import ResourceKey, ResourceType, check_filter_key, describe_key
from kfp_backend.store import experiments_repo
from kfp_backend.store.listing import Listable, ListQuery

ScopeFilter = Callable[[str], ColumnElement[bool]]


@dataclass(frozen=True)
class ScopedListing:
    """What a list call lists (`listable`; `resource` and `operation` name it to the authorizer and in
    messages: authz.RUNS, "ListRuns"), and its store filters by the type of key the call names (a namespace
    key, or a key of no type with an id, scopes to a namespace)."""

    listable: Listable
    resource: str
    operation: str
    experiment: ScopeFilter
    job: ScopeFilter
    pipeline_version: ScopeFilter
    namespace: ScopeFilter


def scoped_query(
    session: Session, authorizer: Authorizer, caller: Caller, request: ListRequest, key: ResourceKey | None,
    listing: ScopedListing,
) -> tuple[ListQuery, list[ColumnElement[bool]]]:
    """The query of a list call and the store filters of its `key`, in the list's own session: the request
    is checked first, then the key, then (in multi-user mode) that the caller may list what it names."""
    query = parse_list_request(listing.listable, request)
    check_filter_key(key)
    if authorizer.multi_user:
        _check_multi_user_scope(session, authorizer, caller, key, listing.resource, listing.operation)
    return query, _scope(key, listing)


def _scope(key: ResourceKey | None, listing: ScopedListing) -> list[ColumnElement[bool]]:
    if key is None:
        return []
    if key.type == ResourceType.EXPERIMENT:
        return [listing.experiment(key.id)]
    if key.type == ResourceType.JOB:
        return [listing.job(key.id)]
    if key.type == ResourceType.PIPELINE_VERSION:
        return [listing.pipeline_version(key.id)]
    if key.id:
        return [listing.namespace(key.id)]
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
            raise EmptyNamespace(f"Invalid resource references for {operation}. Namespace is empty.")
        authorizer.namespace(caller, key.id, resource, authz.LIST)
    elif key.type == ResourceType.EXPERIMENT:
        experiment = experiments_repo.get_experiment(session, key.id)
        if experiment is None:
            raise NotFound.resource("Experiment", key.id).wrap("Failed to get namespace from experiment ID")
        authorizer.namespace(caller, experiment.namespace, resource, authz.LIST)
    else:
        raise InvalidArgument(f"Invalid resource references for {operation}. Got {describe_key(key)}")
