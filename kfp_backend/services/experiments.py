"""Experiment rules: validation, namespaces (multi-user mode), the default experiment, archive cascades."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller, validate_namespace
from kfp_backend.services.authorization import SINGLE_USER, Authorizer
from kfp_backend.services.clock import now_seconds
from kfp_backend.services.errors import EmptyNamespace, InvalidArgument, NotFound, error_context
from kfp_backend.services.listing import ListRequest, ListResult, next_page_token, parse_list_request
from kfp_backend.services.references import (
    Relationship,
    ResourceKey,
    ResourceReference,
    ResourceType,
    check_filter_key,
    describe_key,
)
from kfp_backend.services.text_fields import check_texts
from kfp_backend.services.unit_of_work import refused_as_taken, transaction
from kfp_backend.store import experiments_repo as repo
from kfp_backend.store import jobs_repo, runs_repo, settings_repo
from kfp_backend.store.db import Database
from kfp_backend.store.errors import DuplicateKeyError
from kfp_backend.store.models import NAME_LENGTH, Experiment, description_key
from kfp_backend.store.states import STORAGE_ARCHIVED, STORAGE_AVAILABLE

# Experiment rows and storage states are part of this service's interface: api/ takes them from here, not
# store/.

DEFAULT_EXPERIMENT_NAME = "Default"
DEFAULT_EXPERIMENT_DESCRIPTION = "All runs created without specifying an experiment will be grouped here."
# The resource types upstream's ValidateFilter can convert; others (UNKNOWN, PIPELINE) are a 400.

@dataclass(frozen=True)
class NewExperiment:
    name: str
    description: str = ""
    resource_references: list[ResourceReference] = field(default_factory=list)


class ExperimentService:
    def __init__(self, db: Database, authorizer: Authorizer = SINGLE_USER) -> None:
        self._db = db
        self._authz = authorizer

    @property
    def authorizer(self) -> Authorizer:
        return self._authz

    def create(self, request: NewExperiment, *, caller: Caller) -> Experiment:
        try:
            _validate_new_experiment(request)
            namespace = self._namespace_of_new(request)
        except InvalidArgument as exc:
            raise exc.wrap("Validate experiment request failed.") from None
        self._authz.namespace(caller, namespace, authz.EXPERIMENTS, authz.CREATE, request.name)
        experiment = _new_experiment(request.name, request.description, namespace)
        name_taken = (
            f"Failed to create a new experiment. The name {request.name} already exists. Please specify a new name."
        )
        with error_context("Create experiment failed."), transaction(self._db) as session, refused_as_taken(name_taken):
            repo.add_experiment(session, experiment)
        return experiment

    def _namespace_of_new(self, request: NewExperiment) -> str:
        """The namespace a new experiment goes to: "" in single-user mode (which refuses references);
        in multi-user mode that of its one NAMESPACE/OWNER reference."""
        references = request.resource_references
        if not self._authz.multi_user:
            if references:
                raise InvalidArgument(
                    "In single-user mode, CreateExperimentRequest shouldn't contain resource references."
                )
            return ""
        if (
            len(references) != 1
            or references[0].key.type != ResourceType.NAMESPACE
            or references[0].relationship != Relationship.OWNER
        ):
            got = " ".join(_describe_reference(r) for r in references)
            raise InvalidArgument(
                "Invalid resource references for experiment. Expect one namespace type with owner relationship. "
                f"Got: [{got}]"
            )
        namespace = references[0].key.id
        if not namespace:
            raise EmptyNamespace("Invalid resource references for experiment. Namespace is empty.")
        # A Kubernetes namespace name: what tokens name, compared alike on every database's collation.
        validate_namespace(namespace)
        return namespace

    def get(self, experiment_id: str, *, caller: Caller) -> Experiment:
        with transaction(self._db, write=False) as session:
            experiment = repo.get_experiment(session, experiment_id)
        if experiment is None:
            raise NotFound.resource("Experiment", experiment_id).wrap("Get experiment failed.")
        self._authz.namespace(caller, experiment.namespace, authz.EXPERIMENTS, authz.GET, experiment_id)
        return experiment

    def list(self, request: ListRequest, key: ResourceKey | None = None, *, caller: Caller) -> ListResult:
        # Upstream's order: list options first, then the key's type, then the mode's rule.
        # Single-user: any other convertible key (EXPERIMENT, JOB, ...) is ignored, everything is listed.
        # Multi-user: the key must name a namespace, which is the one listed.
        query = parse_list_request(repo.EXPERIMENT_LISTABLE, request)
        check_filter_key(key)
        namespace: str | None = None
        if self._authz.multi_user:
            if key is None or key.type != ResourceType.NAMESPACE:
                raise InvalidArgument(
                    "Invalid resource references for experiment. ListExperiment requires filtering by namespace."
                )
            if not key.id:
                raise EmptyNamespace("Invalid resource references for experiment. Namespace is empty.")
            namespace = key.id
            self._authz.namespace(caller, namespace, authz.EXPERIMENTS, authz.LIST)
        elif key is not None and key.type == ResourceType.NAMESPACE and key.id:
            raise InvalidArgument("In single-user mode, ListExperiment cannot filter by namespace.")
        with transaction(self._db, write=False) as session:
            page = repo.list_experiments(session, query, namespace)
        return ListResult(page.items, page, next_page_token(query, page))

    def delete(self, experiment_id: str, *, caller: Caller) -> None:
        with transaction(self._db) as session:
            self._authz.experiment(session, caller, experiment_id, authz.DELETE)
            if not repo.delete_experiment(session, experiment_id):
                raise NotFound.resource("Experiment", experiment_id).wrap("Delete experiment failed")
            # A deleted default is re-created the next time a run needs one.
            settings_repo.clear_setting(session, settings_repo.DEFAULT_EXPERIMENT_ID, only_if=experiment_id)

    def archive(self, experiment_id: str, *, caller: Caller) -> None:
        with transaction(self._db) as session:
            self._authz.experiment(session, caller, experiment_id, authz.ARCHIVE)
            if not repo.set_experiment_storage_state(session, experiment_id, STORAGE_ARCHIVED):
                raise NotFound.resource("Experiment", experiment_id).wrap("Archive experiment failed")
            runs_repo.set_experiment_runs_storage_state(session, experiment_id, STORAGE_ARCHIVED)
            # As upstream: every job of the experiment is disabled (and its updated_at touched).
            jobs_repo.disable_experiment_jobs(session, experiment_id, now_seconds())

    def unarchive(self, experiment_id: str, *, caller: Caller) -> None:
        # Only the experiment comes back: its runs stay archived and its jobs stay disabled, as upstream.
        with transaction(self._db) as session:
            self._authz.experiment(session, caller, experiment_id, authz.UNARCHIVE)
            if not repo.set_experiment_storage_state(session, experiment_id, STORAGE_AVAILABLE):
                raise NotFound.resource("Experiment", experiment_id).wrap("Unarchive experiment failed")

    def ensure_default(self) -> Experiment:
        """The experiment that holds runs created without one; created on first need, as upstream."""
        with transaction(self._db) as session:
            return default_experiment(session)


def default_experiment(session: Session) -> Experiment:
    """The Default experiment, created in `session` if there is none yet."""
    recorded = settings_repo.get_setting(session, settings_repo.DEFAULT_EXPERIMENT_ID)
    if recorded is not None:
        experiment = repo.get_experiment(session, recorded)
        if experiment is not None:
            return experiment
        settings_repo.clear_setting(session, settings_repo.DEFAULT_EXPERIMENT_ID)
    experiment = repo.find_experiment_by_name(session, "", DEFAULT_EXPERIMENT_NAME)
    if experiment is None:
        experiment = _new_experiment(DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_DESCRIPTION, "")
        try:
            repo.add_experiment(session, experiment)
        except DuplicateKeyError:
            # Another replica created it a moment ago.
            experiment = repo.find_experiment_by_name(session, "", DEFAULT_EXPERIMENT_NAME)
            assert experiment is not None
    recorded = settings_repo.set_setting_if_absent(session, settings_repo.DEFAULT_EXPERIMENT_ID, experiment.id)
    if recorded != experiment.id:
        experiment = repo.get_experiment(session, recorded) or experiment
    return experiment


def _new_experiment(name: str, description: str, namespace: str) -> Experiment:
    return Experiment(
        id=str(uuid.uuid4()),
        name=name,
        description=description,
        description_key=description_key(description),
        namespace=namespace,
        created_at=now_seconds(),
        storage_state=STORAGE_AVAILABLE,
    )


def _validate_new_experiment(request: NewExperiment) -> None:
    if not request.name:
        raise InvalidArgument("Experiment name is empty. Please specify a valid experiment name.")
    if len(request.name) > NAME_LENGTH:
        raise InvalidArgument(
            f"Experiment name is too long. Support maximum length of {NAME_LENGTH} characters."
        )
    check_texts([("experiment.name", request.name), ("experiment.description", request.description)])


def _describe_reference(reference: ResourceReference) -> str:
    text = f"key:{{{describe_key(reference.key)}}}"
    if reference.name:
        text += f" name:{reference.name!r}"
    if reference.relationship:
        text += f" relationship:{reference.relationship.name}"
    return text
