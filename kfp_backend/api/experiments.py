"""ExperimentService over HTTP."""

from __future__ import annotations

from flask import Blueprint

from kfp_backend.api import API_PREFIX, services
from kfp_backend.api.listing import list_response
from kfp_backend.api.request_parsing import list_request, load_body, resource_key
from kfp_backend.api.schemas import ExperimentSchema, load_references
from kfp_backend.services.experiments import NewExperiment

blueprint = Blueprint("experiments", __name__, url_prefix=API_PREFIX)
_schema = ExperimentSchema()


@blueprint.post("/experiments")
def create_experiment() -> dict:
    body = load_body(_schema)
    created = services().experiments.create(
        NewExperiment(
            name=body["name"],
            description=body["description"],
            resource_references=load_references(body["resource_references"]),
        )
    )
    return _schema.dump(created)


@blueprint.get("/experiments/<id>")
def get_experiment(id: str) -> dict:
    return _schema.dump(services().experiments.get(id))


@blueprint.get("/experiments")
def list_experiments() -> dict:
    result = services().experiments.list(list_request(), resource_key())
    return list_response("experiments", [_schema.dump(item) for item in result.items], result)


@blueprint.delete("/experiments/<id>")
def delete_experiment(id: str) -> dict:
    services().experiments.delete(id)
    return {}


@blueprint.post("/experiments/<id>:archive")
def archive_experiment(id: str) -> dict:
    services().experiments.archive(id)
    return {}


@blueprint.post("/experiments/<id>:unarchive")
def unarchive_experiment(id: str) -> dict:
    services().experiments.unarchive(id)
    return {}

