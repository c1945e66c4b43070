"""RecurringRunService of the v2beta1 API over HTTP: the same JobService (and so the same job rows) as
v1beta1's JobService handlers. A job created through either API is seen by both."""

from __future__ import annotations

from flask import Blueprint, request

from kfp_backend.api import services
from kfp_backend.api.auth import current_caller
from kfp_backend.api.idempotency import idempotent
from kfp_backend.api.listing import list_response
from kfp_backend.api.request_parsing import load_body
from kfp_backend.api.v2 import V2_PREFIX
from kfp_backend.api.v2.listing import v2_list_request
from kfp_backend.api.v2.multi_user_errors import RECURRING_RUN, v2_refusals
from kfp_backend.api.v2.recurring_run_schemas import (
    RECURRING_RUN_FIELDS,
    RecurringRunRequestSchema,
    dump_recurring_run,
)
from kfp_backend.services.references import ResourceKey, ResourceType

blueprint = Blueprint("v2_recurring_runs", __name__, url_prefix=V2_PREFIX)
_request = RecurringRunRequestSchema()


def _multi_user() -> bool:
    return services().jobs.authorizer.multi_user


@blueprint.post("/recurringruns")
@idempotent
@v2_refusals(RECURRING_RUN, "create")
def create_recurring_run() -> dict:
    body = load_body(_request)
    new_job = _request.to_new_job(body, multi_user=_multi_user())
    return dump_recurring_run(services().jobs.create(new_job, caller=current_caller()))


@blueprint.get("/recurringruns/<recurring_run_id>")
@v2_refusals(RECURRING_RUN, "get", "recurring_run_id")
def get_recurring_run(recurring_run_id: str) -> dict:
    return dump_recurring_run(services().jobs.get(recurring_run_id, caller=current_caller()))


def _list_key() -> ResourceKey | None:
    """The experiment when one is named; else, in multi-user mode, the namespace (single-user mode ignores
    it, as upstream)."""
    experiment_id = request.args.get("experiment_id") or request.args.get("experimentId")
    if experiment_id:
        return ResourceKey(ResourceType.EXPERIMENT, experiment_id)
    if _multi_user():
        return ResourceKey(ResourceType.NAMESPACE, request.args.get("namespace", ""))
    return None


@blueprint.get("/recurringruns")
@v2_refusals(RECURRING_RUN, "list")
def list_recurring_runs() -> dict:
    result = services().jobs.list(v2_list_request(RECURRING_RUN_FIELDS), _list_key(), caller=current_caller())
    return list_response("recurringRuns", [dump_recurring_run(item) for item in result.items], result)


@blueprint.delete("/recurringruns/<recurring_run_id>")
@v2_refusals(RECURRING_RUN, "delete", "recurring_run_id")
def delete_recurring_run(recurring_run_id: str) -> dict:
    services().jobs.delete(recurring_run_id, caller=current_caller())
    return {}


@blueprint.post("/recurringruns/<recurring_run_id>:enable")
@v2_refusals(RECURRING_RUN, "enable", "recurring_run_id")
def enable_recurring_run(recurring_run_id: str) -> dict:
    services().jobs.enable(recurring_run_id, caller=current_caller())
    return {}


@blueprint.post("/recurringruns/<recurring_run_id>:disable")
@v2_refusals(RECURRING_RUN, "disable", "recurring_run_id")
def disable_recurring_run(recurring_run_id: str) -> dict:
    services().jobs.disable(recurring_run_id, caller=current_caller())
    return {}
