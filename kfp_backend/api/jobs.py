"""JobService over HTTP: recurring runs."""

from __future__ import annotations

from flask import Blueprint

from kfp_backend.api import API_PREFIX, services
from kfp_backend.api.auth import current_caller
from kfp_backend.api.idempotency import idempotent
from kfp_backend.api.job_schemas import JobRequestSchema, dump_job
from kfp_backend.api.listing import list_response
from kfp_backend.api.request_parsing import list_request, load_body, resource_key

blueprint = Blueprint("jobs", __name__, url_prefix=API_PREFIX)
_job_request = JobRequestSchema()


@blueprint.post("/jobs")
@idempotent
def create_job() -> dict:
    body = load_body(_job_request)
    return dump_job(services().jobs.create(_job_request.to_new_job(body), caller=current_caller()))


@blueprint.get("/jobs/<job_id>")
def get_job(job_id: str) -> dict:
    return dump_job(services().jobs.get(job_id, caller=current_caller()))


@blueprint.get("/jobs")
def list_jobs() -> dict:
    result = services().jobs.list(list_request(), resource_key(), caller=current_caller())
    return list_response("jobs", [dump_job(item) for item in result.items], result)


@blueprint.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> dict:
    services().jobs.delete(job_id, caller=current_caller())
    return {}


@blueprint.post("/jobs/<job_id>/enable")
def enable_job(job_id: str) -> dict:
    services().jobs.enable(job_id, caller=current_caller())
    return {}


@blueprint.post("/jobs/<job_id>/disable")
def disable_job(job_id: str) -> dict:
    services().jobs.disable(job_id, caller=current_caller())
    return {}
