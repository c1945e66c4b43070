"""RunService of the v2beta1 API over HTTP: the same RunService calls, and so the same rows, as v1beta1's
handlers. A run created through either API is seen by both."""

from __future__ import annotations

from flask import Blueprint, request

from kfp_backend.api import runs as v1_runs
from kfp_backend.api import services
from kfp_backend.api.auth import current_caller
from kfp_backend.api.idempotency import idempotent
from kfp_backend.api.listing import list_response
from kfp_backend.api.request_parsing import load_body
from kfp_backend.api.run_batch_schemas import batch_request, dump_v2, start_parameter
from kfp_backend.api.v2 import V2_PREFIX
from kfp_backend.api.v2.listing import v2_list_request
from kfp_backend.api.v2.multi_user_errors import RUN, v2_refusals
from kfp_backend.api.v2.run_schemas import RUN_FIELDS, RunRequestSchema, dump_run, dump_run_detail, to_new_run
from kfp_backend.services.references import ResourceKey, ResourceType

blueprint = Blueprint("v2_runs", __name__, url_prefix=V2_PREFIX)
_run_request = RunRequestSchema()


def _list_key() -> ResourceKey | None:
    """The runs of an experiment, else of a namespace: as v2 experiments, a namespace counts in multi-user
    mode only (single-user mode ignores it, as upstream)."""
    experiment_id = request.args.get("experiment_id") or request.args.get("experimentId")
    if experiment_id:
        return ResourceKey(ResourceType.EXPERIMENT, experiment_id)
    if not services().experiments.authorizer.multi_user:
        return None
    return ResourceKey(ResourceType.NAMESPACE, request.args.get("namespace", ""))


@blueprint.post("/runs")
@idempotent
@v2_refusals(RUN, "create")
def create_run() -> dict:
    start = start_parameter()  # our extension, as v1beta1's: ?start=false stores the run held until :start
    body = load_body(_run_request)
    new_run = to_new_run(body, request.args.get("experiment_id", ""))
    return dump_run_detail(services().runs.create(new_run, caller=current_caller(), start=start))


@blueprint.post("/runs:batchGetStatus")
def batch_get_status() -> dict:
    """Our extension, as v1beta1's with v2 names (display_name, state, start_time/end_time)."""
    return dump_v2(services().runs.batch_status(batch_request(), caller=current_caller()), V2_PREFIX)


@blueprint.get("/runs/<run_id>")
@v2_refusals(RUN, "get", "run_id")
def get_run(run_id: str) -> dict:
    return dump_run_detail(services().runs.get(run_id, caller=current_caller()))


@blueprint.get("/runs")
@v2_refusals(RUN, "list")
def list_runs() -> dict:
    result = services().runs.list(v2_list_request(RUN_FIELDS), _list_key(), caller=current_caller(), with_status=True)
    return list_response("runs", [dump_run(item) for item in result.items], result)


# The actions on one run are v1beta1's handlers under v2beta1's paths: the same call, the same empty answer.
# Their multi-user refusals are worded as upstream's v2 server words them.
for rule, methods, view in (
    ("/runs/<run_id>", ["DELETE"], v2_refusals(RUN, "delete", "run_id")(v1_runs.delete_run)),
    ("/runs/<run_id>:archive", ["POST"], v2_refusals(RUN, "archive", "run_id")(v1_runs.archive_run)),
    ("/runs/<run_id>:unarchive", ["POST"], v2_refusals(RUN, "unarchive", "run_id")(v1_runs.unarchive_run)),
    ("/runs/<run_id>:terminate", ["POST"], v2_refusals(RUN, "terminate", "run_id")(v1_runs.terminate_run)),
    ("/runs/<run_id>:retry", ["POST"], v2_refusals(RUN, "retry", "run_id")(v1_runs.retry_run)),
    ("/runs/<run_id>:start", ["POST"], v1_runs.start_run),  # an extension: no upstream wording
    ("/runs/<run_id>/nodes/<node_id>/artifacts/<artifact_name>:read", ["GET"], v1_runs.read_artifact),
):
    blueprint.add_url_rule(rule, view_func=view, methods=methods)
