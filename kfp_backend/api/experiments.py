"""ExperimentService over HTTP."""

from __future__ import annotations

from flask import Blueprint

from kfp_backend.api import API_PREFIX, services
from kfp_backend.api.auth import current_caller
from kfp_backend.api.idempotency import idempotent
from kfp_backend.api.listing import list_response
from kfp_backend.api.request_parsing import list_request, load_body, resource_key
from kfp_backend.api.schemas import ExperimentSchema, dump_reference, load_references
from kfp_backend.services.experiments import Experiment, NewExperiment
from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType

blueprint = Blueprint("experiments", __name__, url_prefix=API_PREFIX)
_schema = ExperimentSchema()


def _dump(experiment: Experiment) -> dict:
    """An experiment of a namespace shows it as its NAMESPACE/OWNER reference (multi-user mode)."""
    body = _schema.dump(experiment)
    if experiment.namespace:
        owner = ResourceReference(ResourceKey(ResourceType.NAMESPACE, experiment.namespace), Relationship.OWNER)
        body = {key: value for key, value in body.items() if key != "storage_state"}
        body["resource_references"] = [dump_reference(owner)]
        body["storage_state"] = experiment.storage_state
    return body


@blueprint.post("/experiments")
@idempotent
def create_experiment() -> dict:
    body = load_body(_schema)
    created = services().experiments.create(
        NewExperiment(
            name=body["name"],
            description=body["description"],
            resource_references=load_references(body["resource_references"]),
        ),
        caller=current_caller(),
    )
    return _dump(created)


@blueprint.get("/experiments/<id>")
def get_experiment(id: str) -> dict:
    return _dump(services().experiments.get(id, caller=current_caller()))


@blueprint.get("/experiments")
def list_experiments() -> dict:
    result = services().experiments.list(list_request(), resource_key(), caller=current_caller())
    return list_response("experiments", [_dump(item) for item in result.items], result)


@blueprint.delete("/experiments/<id>")
def delete_experiment(id: str) -> dict:
    services().experiments.delete(id, caller=current_caller())
    return {}


@blueprint.post("/experiments/<id>:archive")
def archive_experiment(id: str) -> dict:
    services().experiments.archive(id, caller=current_caller())
    return {}


@blueprint.post("/experiments/<id>:unarchive")
def unarchive_experiment(id: str) -> dict:
    services().experiments.unarchive(id, caller=current_caller())
    return {}

