"""ExperimentService of the v2beta1 API over HTTP: the same ExperimentService calls as v1beta1's handlers."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from kfp_backend.api import services
from kfp_backend.api.auth import current_caller
from kfp_backend.api.idempotency import idempotent
from kfp_backend.api.listing import list_response
from kfp_backend.api.request_parsing import load_body
from kfp_backend.api.v2 import V2_PREFIX
from kfp_backend.api.v2.experiment_schemas import EXPERIMENT_FIELDS, dump_experiment, experiment_schema
from kfp_backend.api.v2.listing import v2_list_request
from kfp_backend.api.v2.multi_user_errors import EXPERIMENT, v2_refusals
from kfp_backend.services.experiment_activity import ExperimentActivity
from kfp_backend.services.experiments import Experiment, NewExperiment
from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType

blueprint = Blueprint("v2_experiments", __name__, url_prefix=V2_PREFIX)
ACTIVITY_EXTENSION = "kfp_backend.experiment_activity"


def _activity() -> ExperimentActivity:
    return current_app.extensions[ACTIVITY_EXTENSION]


def _dump_all(experiments: list[Experiment]) -> list[dict]:
    last_runs = _activity().last_run_created_at(experiments)
    return [dump_experiment(experiment, last_runs.get(experiment.id, 0)) for experiment in experiments]


def _namespace_key(namespace: str) -> ResourceKey | None:
    """v2 names a namespace in a field. As upstream, single-user mode ignores it; multi-user mode passes it on
    as the NAMESPACE key the service reads (where an empty one is refused)."""
    if not services().experiments.authorizer.multi_user:
        return None
    return ResourceKey(ResourceType.NAMESPACE, namespace)


@blueprint.post("/experiments")
@idempotent
@v2_refusals(EXPERIMENT, "create")
def create_experiment() -> dict:
    body = load_body(experiment_schema())
    key = _namespace_key(body["namespace"])
    created = services().experiments.create(
        NewExperiment(
            name=body["display_name"],
            description=body["description"],
            resource_references=[ResourceReference(key, Relationship.OWNER)] if key else [],
        ),
        caller=current_caller(),
    )
    return dump_experiment(created, 0)


@blueprint.get("/experiments/<experiment_id>")
@v2_refusals(EXPERIMENT, "get", "experiment_id")
def get_experiment(experiment_id: str) -> dict:
    (body,) = _dump_all([services().experiments.get(experiment_id, caller=current_caller())])
    return body


@blueprint.get("/experiments")
@v2_refusals(EXPERIMENT, "list")
def list_experiments() -> dict:
    key = _namespace_key(request.args.get("namespace", ""))
    result = services().experiments.list(v2_list_request(EXPERIMENT_FIELDS), key, caller=current_caller())
    return list_response("experiments", _dump_all(result.items), result)


@blueprint.delete("/experiments/<experiment_id>")
@v2_refusals(EXPERIMENT, "delete", "experiment_id")
def delete_experiment(experiment_id: str) -> dict:
    services().experiments.delete(experiment_id, caller=current_caller())
    return {}


@blueprint.post("/experiments/<experiment_id>:archive")
@v2_refusals(EXPERIMENT, "archive", "experiment_id")
def archive_experiment(experiment_id: str) -> dict:
    services().experiments.archive(experiment_id, caller=current_caller())
    return {}


@blueprint.post("/experiments/<experiment_id>:unarchive")
@v2_refusals(EXPERIMENT, "unarchive", "experiment_id")
def unarchive_experiment(experiment_id: str) -> dict:
    services().experiments.unarchive(experiment_id, caller=current_caller())
    return {}
