"""RunService over HTTP, plus our step-log extension (`GET .../runs/{run_id}/nodes/{node_id}/log`)."""

from __future__ import annotations

from flask import Blueprint, Response

from kfp_backend.api import API_PREFIX, services
from kfp_backend.api.auth import current_caller
from kfp_backend.api.idempotency import idempotent
from kfp_backend.api.listing import list_response
from kfp_backend.api.request_parsing import json_body, list_request, load_body, resource_key
from kfp_backend.api.run_batch_schemas import batch_request, dump_v1, start_parameter
from kfp_backend.api.run_schemas import (
    ReportMetricsRequestSchema,
    RunRequestSchema,
    dump_report_results,
    dump_run,
    dump_run_detail,
)
from kfp_backend.api.streaming import stream_base64_json, stream_file

blueprint = Blueprint("runs", __name__, url_prefix=API_PREFIX)
_run_request = RunRequestSchema()
_metrics_request = ReportMetricsRequestSchema()


@blueprint.post("/runs")
@idempotent
def create_run() -> dict:
    start = start_parameter()  # our extension: ?start=false stores the run held until :start
    body = load_body(_run_request)
    new_run = _run_request.to_new_run(body)
    return dump_run_detail(services().runs.create(new_run, caller=current_caller(), start=start))


@blueprint.post("/runs:batchGetStatus")
def batch_get_status() -> dict:
    """Our extension: the status of up to 200 runs, or of up to 200 nodes, each entry answered on its own."""
    return dump_v1(services().runs.batch_status(batch_request(), caller=current_caller()), API_PREFIX)


@blueprint.post("/runs/<run_id>:start")
def start_run(run_id: str) -> dict:
    """Our extension: start a run created with ?start=false (a run not held: nothing happens)."""
    services().runs.start(run_id, caller=current_caller())
    return {}


@blueprint.get("/runs/<run_id>")
def get_run(run_id: str) -> dict:
    return dump_run_detail(services().runs.get(run_id, caller=current_caller()))


@blueprint.get("/runs")
def list_runs() -> dict:
    result = services().runs.list(list_request(), resource_key(), caller=current_caller())
    return list_response("runs", [dump_run(item) for item in result.items], result)


@blueprint.delete("/runs/<run_id>")
def delete_run(run_id: str) -> dict:
    services().runs.delete(run_id, caller=current_caller())
    return {}


@blueprint.post("/runs/<run_id>:archive")
def archive_run(run_id: str) -> dict:
    services().runs.archive(run_id, caller=current_caller())
    return {}


@blueprint.post("/runs/<run_id>:unarchive")
def unarchive_run(run_id: str) -> dict:
    services().runs.unarchive(run_id, caller=current_caller())
    return {}


@blueprint.post("/runs/<run_id>/terminate")
def terminate_run(run_id: str) -> dict:
    services().runs.terminate(run_id, caller=current_caller())
    return {}


@blueprint.post("/runs/<run_id>/retry")
def retry_run(run_id: str) -> dict:
    services().runs.retry(run_id, caller=current_caller())
    return {}


@blueprint.post("/runs/<run_id>:reportMetrics")
def report_run_metrics(run_id: str) -> dict:
    # body "*": the whole ReportRunMetricsRequest; the run id of the path wins.
    body = load_body(_metrics_request, json_body())
    results = services().metrics.report(run_id, _metrics_request.to_metrics(body), caller=current_caller())
    return dump_report_results(results)


@blueprint.get("/runs/<run_id>/nodes/<node_id>/artifacts/<artifact_name>:read")
def read_artifact(run_id: str, node_id: str, artifact_name: str) -> Response:
    opened = services().runs.read_artifact(run_id, node_id, artifact_name, caller=current_caller())
    return stream_base64_json(opened.file, opened.size)


@blueprint.get("/runs/<run_id>/nodes/<node_id>/log")
def read_node_log(run_id: str, node_id: str) -> Response:
    step_log = services().runs.read_node_log(run_id, node_id, caller=current_caller())
    return stream_file(step_log.file, step_log.size, "text/plain; charset=utf-8")
