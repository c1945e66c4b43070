"""The v2beta1 RunService: create (inline spec or version reference), get, list, archive, terminate, retry,
delete over the rows v1beta1 shows; the RuntimeState derived from them; task details from node rows."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from kfp_backend.services.all_services import Services
from kfp_backend.store.models import Run, RunManifest, RunNode
from tests import exit_retry_pipelines as pipelines
from tests.api.recorded_hooks import RecordingExecution, recording_app
from tests.api.test_v2_experiments import multi_user, v2_error
from tests.api.test_v2_pipelines import IR

__all__ = ["multi_user"]  # the fixture, shared with the experiments' tests

V2 = "/apis/v2beta1"
V1 = "/apis/v1beta1"
STATUS_TYPE = "type.googleapis.com/google.rpc.Status"


@pytest.fixture(scope="module")
def argo() -> dict:
    """A small Argo workflow (kfp 1.8 compiled), as a struct."""
    return json.loads(pipelines.workflow_manifest(pipelines.exit_with_parameter("v2-runs-api")))


@pytest.fixture
def app(settings: Any) -> Iterator[Flask]:
    yield from recording_app(settings)


@pytest.fixture
def execution(services: Services) -> RecordingExecution:
    assert isinstance(services.runs.execution, RecordingExecution)
    return services.runs.execution


def ok(response: Any) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def create(client: FlaskClient, body: dict, **query: str) -> dict:
    return ok(client.post(f"{V2}/runs", json=body, query_string=query))


def get(client: FlaskClient, run_id: str) -> dict:
    return ok(client.get(f"{V2}/runs/{run_id}"))


def set_run(services: Services, run_id: str, **values: Any) -> None:
    with services.db.transaction() as session:
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def set_status(services: Services, run_id: str, status: dict) -> None:
    with services.db.transaction() as session:
        statement = update(RunManifest).where(RunManifest.run_id == run_id)
        session.execute(statement.values(workflow_status=json.dumps(status)))


def add_nodes(services: Services, run_id: str, nodes: list[dict]) -> None:
    with services.db.transaction() as session:
        for node in nodes:
            session.add(RunNode(run_id=run_id, node_id=node["id"], phase=node["phase"], data=json.dumps(node)))


def experiment(client: FlaskClient, name: str) -> str:
    return ok(client.post(f"{V2}/experiments", json={"display_name": name}))["experiment_id"]


def upload(client: FlaskClient, text: str, name: str) -> dict:
    form = {"uploadfile": (io.BytesIO(text.encode()), "p.yaml")}
    return ok(client.post(f"{V2}/pipelines/upload", query_string={"name": name}, data=form,
                          content_type="multipart/form-data"))


# -- create and get --------------------------------------------------------------------------------------------


def test_create_from_an_inline_argo_spec_runs_it_as_v1_and_both_apis_see_it(
    client: FlaskClient, argo: dict, execution: RecordingExecution
) -> None:
    experiment_id = experiment(client, "v2-runs")
    run = create(client, {
        "display_name": "inline", "description": "d", "experiment_id": experiment_id, "pipeline_spec": argo,
        "runtime_config": {"parameters": {"message": "hi"}}, "service_account": "sa",
    })
    assert execution.calls == [("run_created", run["run_id"])]
    assert run["display_name"] == "inline" and run["description"] == "d"
    assert run["experiment_id"] == experiment_id
    assert run["storage_state"] == "AVAILABLE" and run["state"] == "PENDING"
    assert run["runtime_config"] == {"parameters": {"message": "hi"}}
    assert run["service_account"] == "sa"
    assert run["pipeline_spec"]["kind"] == "Workflow"
    assert "pipeline_version_reference" not in run and "error" not in run
    assert [entry["state"] for entry in run["state_history"]] == ["PENDING"]
    assert run["state_history"][0]["update_time"] == run["created_at"]
    assert run["finished_at"] == "1970-01-01T00:00:00Z"
    assert get(client, run["run_id"]) == run
    v1 = ok(client.get(f"{V1}/runs/{run['run_id']}"))["run"]
    assert v1["name"] == "inline" and v1["pipeline_spec"]["parameters"] == [{"name": "message", "value": "hi"}]
    # Created through v1beta1: seen by v2beta1.
    made = ok(client.post(f"{V1}/runs", json={"name": "from-v1", "pipeline_spec": {
        "workflow_manifest": json.dumps(argo)}}))["run"]
    seen = get(client, made["id"])
    assert seen["display_name"] == "from-v1" and seen["state"] == "PENDING"


def test_create_from_a_version_reference(client: FlaskClient, argo: dict) -> None:
    pipeline = upload(client, yaml.safe_dump(argo), "argo-pipeline")
    versions = ok(client.get(f"{V2}/pipelines/{pipeline['pipeline_id']}/versions"))["pipeline_versions"]
    reference = {"pipeline_id": pipeline["pipeline_id"], "pipeline_version_id": versions[0]["pipeline_version_id"]}
    run = create(client, {"display_name": "by-version", "pipeline_version_reference": reference})
    assert run["pipeline_version_reference"] == reference and "pipeline_spec" not in run
    # The Default experiment when none is named.
    default = ok(client.get(f"{V2}/experiments", query_string={
        "filter": json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS",
                                              "string_value": "Default"}]})}))["experiments"][0]
    assert run["experiment_id"] == default["experiment_id"]
    # Only the pipeline: its default version. The query's experiment_id (deprecated) is read too.
    other = experiment(client, "by-query")
    only = create(client, {"display_name": "p", "pipeline_version_reference": {"pipeline_id": pipeline["pipeline_id"]}},
                  experiment_id=other)
    assert only["pipeline_version_reference"] == reference and only["experiment_id"] == other


def typed_ir() -> dict:
    """IR with root parameters of several types."""
    spec = json.loads(json.dumps(IR))
    spec["root"]["inputDefinitions"]["parameters"].update({
        "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 1, "isOptional": True},
        "flag": {"parameterType": "BOOLEAN", "defaultValue": False, "isOptional": True},
        "items": {"parameterType": "LIST", "defaultValue": [], "isOptional": True},
    })
    return spec


def test_ir_runs_take_typed_parameters(client: FlaskClient) -> None:
    given = {"word": "hello", "n": 3, "flag": True, "items": [1, "a"]}
    root = "minio://bucket/team-root"
    response = client.post(f"{V2}/runs", json={
        "display_name": "ir", "pipeline_spec": typed_ir(),
        "runtime_config": {"parameters": given, "pipeline_root": root}})
    run = ok(response)
    assert run["runtime_config"] == {"parameters": given, "pipeline_root": root}
    assert get(client, run["run_id"])["runtime_config"]["pipeline_root"] == root
    assert run["pipeline_spec"]["pipelineInfo"] == IR["pipelineInfo"]
    assert get(client, run["run_id"])["runtime_config"]["parameters"] == given
    # The v1 view and the list keep the text form.
    v1 = ok(client.get(f"{V1}/runs/{run['run_id']}"))["run"]["pipeline_spec"]["parameters"]
    assert {p["name"]: p["value"] for p in v1} == {"word": "hello", "n": "3", "flag": "true", "items": '[1,"a"]'}
    listed = ok(client.get(f"{V2}/runs"))["runs"][0]["runtime_config"]["parameters"]
    assert listed == {"word": "hello", "n": "3", "flag": "true", "items": '[1,"a"]'}
    bad = client.post(f"{V2}/runs", json={"display_name": "ir", "pipeline_spec": typed_ir(),
                                           "runtime_config": {"parameters": {"n": "three"}}})
    v2_error(bad, 400, 3)


@pytest.mark.parametrize("body, message", [
    ({"pipeline_spec": {"kind": "Workflow"}}, "run name is empty"),
    ({"display_name": "x"}, "Please specify a pipeline"),
    ({"display_name": "x", "pipeline_spec": {"a": 1}}, "pipeline_spec must be"),
    ({"display_name": "x", "pipeline_spec": "text"}, "Invalid request body"),
    ({"display_name": "x", "unknown": 1}, "Invalid request body"),
    ({"display_name": "x", "runtime_config": {"parameters": {"a": None}}, "pipeline_spec": {"kind": "Workflow"}},
     "is null"),
    ({"display_name": "x", "runtime_config": {"parameters": []}}, "Invalid request body"),
    ({"display_name": "x", "runtime_config": {"pipeline_root": "s3://x"}, "pipeline_spec": "ARGO"},
     "pipeline_root applies to KFP v2"),
    ({"display_name": "x", "pipeline_spec": "ARGO", "pipeline_version_reference": {"pipeline_version_id": "v"}},
     "Please don't specify a pipeline version"),
    ({"display_name": "x", "pipeline_version_reference": {"pipeline_version_id": "v"}, "pipeline_version_id": "w"},
     "name different versions"),
    ({"display_name": "x", "plugins_input": {"a": 1}, "pipeline_spec": "ARGO"}, "plugins_input"),
    ({"display_name": "x", "state": "NOPE"}, "Invalid request body"),
    ({"display_name": "x", "pipeline_spec": "ARGO", "runtime_config": {"parameters": {"nope": "1"}}},
     "nope"),
])
def test_bad_creates_are_400(client: FlaskClient, argo: dict, body: dict, message: str) -> None:
    if body.get("pipeline_spec") == "ARGO":
        body = {**body, "pipeline_spec": argo}
    response = client.post(f"{V2}/runs", json=body)
    assert message in v2_error(response, 400, 3)["message"]


def test_create_refers_to_what_exists(client: FlaskClient, argo: dict) -> None:
    response = client.post(f"{V2}/runs", json={"display_name": "x", "pipeline_spec": argo, "experiment_id": "nowhere"})
    assert "Experiment nowhere not found" in v2_error(response, 404, 5)["message"]
    response = client.post(f"{V2}/runs", json={"display_name": "x",
                                                 "pipeline_version_reference": {"pipeline_version_id": "nowhere"}})
    v2_error(response, 404, 5)


def test_not_found_is_404(client: FlaskClient) -> None:
    for method, path in (("GET", "/runs/nowhere"), ("DELETE", "/runs/nowhere"), ("POST", "/runs/nowhere:archive"),
                         ("POST", "/runs/nowhere:unarchive"), ("POST", "/runs/nowhere:terminate"),
                         ("POST", "/runs/nowhere:retry")):
        body = v2_error(client.open(f"{V2}{path}", method=method), 404, 5)
        assert "nowhere" in body["message"]
    v2_error(client.put(f"{V2}/runs/nowhere"), 501, 12, detail=False)


# -- states ----------------------------------------------------------------------------------------------------


def test_states_history_and_error_from_the_rows(
    client: FlaskClient, services: Services, argo: dict, execution: RecordingExecution
) -> None:
    run_id = create(client, {"display_name": "states", "pipeline_spec": argo})["run_id"]
    created = get(client, run_id)["created_at"]
    set_run(services, run_id, status="Running")
    set_status(services, run_id, {"phase": "Running", "startedAt": "2030-01-01T00:00:05Z"})
    running = get(client, run_id)
    assert running["state"] == "RUNNING"
    assert running["state_history"] == [
        {"update_time": created, "state": "PENDING"}, {"update_time": "2030-01-01T00:00:05Z", "state": "RUNNING"}]
    # Terminate: CANCELING while the executor stops it (the moment is not stored)...
    ok(client.post(f"{V2}/runs/{run_id}:terminate"))
    assert execution.calls[-1] == ("terminate_requested", run_id)
    canceling = get(client, run_id)
    assert canceling["state"] == "CANCELING" and canceling["state_history"][-1] == {"state": "CANCELING"}
    # ...then CANCELED once it ends Failed, which the v1 view keeps.
    set_run(services, run_id, status="Failed", finished_at=1893456010)
    set_status(services, run_id, {"phase": "Failed", "startedAt": "2030-01-01T00:00:05Z",
                                  "finishedAt": "2030-01-01T00:00:10Z", "message": "Stopped with strategy 'Terminate'"})
    canceled = get(client, run_id)
    error = {"code": 1, "message": "Stopped with strategy 'Terminate'"}
    assert canceled["state"] == "CANCELED" and canceled["error"] == error
    assert [e["state"] for e in canceled["state_history"]] == ["PENDING", "RUNNING", "CANCELING", "CANCELED"]
    assert canceled["state_history"][-1] == {"update_time": "2030-01-01T00:00:10Z", "state": "CANCELED",
                                             "error": error}
    assert canceled["finished_at"] == "2030-01-01T00:00:10Z"
    assert ok(client.get(f"{V1}/runs/{run_id}"))["run"]["status"] == "Failed"
    listed = ok(client.get(f"{V2}/runs"))["runs"]
    assert [(r["state"], r.get("error")) for r in listed] == [("CANCELED", error)]
    # Terminating a finished run is refused.
    v2_error(client.post(f"{V2}/runs/{run_id}:terminate"), 400, 3)
    # Retry: the run runs again (terminate forgotten).
    ok(client.post(f"{V2}/runs/{run_id}:retry"))
    assert execution.calls[-1] == ("retry_requested", run_id)
    assert get(client, run_id)["state"] == "RUNNING"
    v2_error(client.post(f"{V2}/runs/{run_id}:retry"), 400, 9)


@pytest.mark.parametrize("status, state", [
    ("", "PENDING"), ("Pending", "PENDING"), ("Running", "RUNNING"), ("Succeeded", "SUCCEEDED"),
    ("Skipped", "SKIPPED"), ("Failed", "FAILED"), ("Error", "FAILED"), ("Terminating", "CANCELING"),
])
def test_state_of_each_status(client: FlaskClient, services: Services, argo: dict, status: str, state: str) -> None:
    run_id = create(client, {"display_name": "s", "pipeline_spec": argo})["run_id"]
    set_run(services, run_id, status=status)
    set_status(services, run_id, {"phase": status, "message": "boom"} if status else {})
    run = get(client, run_id)
    assert run["state"] == state
    if state == "FAILED":
        assert run["error"] == {"code": 2, "message": "boom"}
    else:
        assert "error" not in run


# -- task details ----------------------------------------------------------------------------------------------

NODES = [
    {"id": "wf", "name": "wf", "displayName": "wf", "type": "DAG", "phase": "Failed", "children": ["wf-1", "wf-3"],
     "startedAt": "2030-01-01T00:00:00Z", "finishedAt": "2030-01-01T00:00:09Z", "message": "child failed"},
    {"id": "wf-1", "name": "wf.produce", "displayName": "produce", "type": "Pod", "phase": "Succeeded",
     "boundaryID": "wf", "children": ["wf-2"], "startedAt": "2030-01-01T00:00:01Z",
     "finishedAt": "2030-01-01T00:00:02Z",
     "inputs": {"parameters": [{"name": "n", "value": "1"}]},
     "outputs": {"artifacts": [{"name": "data", "s3": {"key": "k"}}], "parameters": [{"name": "p", "value": "v"}]}},
    {"id": "wf-2", "name": "wf.consume", "displayName": "consume", "type": "Retry", "phase": "Failed",
     "boundaryID": "wf", "children": ["wf-4"], "startedAt": "2030-01-01T00:00:03Z",
     "finishedAt": "2030-01-01T00:00:08Z", "message": "exit 1",
     "inputs": {"artifacts": [{"name": "data", "s3": {"key": "k"}}]}},
    {"id": "wf-3", "name": "wf.later", "displayName": "later", "type": "Skipped", "phase": "Omitted",
     "boundaryID": "wf", "startedAt": "2030-01-01T00:00:09Z", "finishedAt": "2030-01-01T00:00:09Z"},
    {"id": "wf-4", "name": "wf.consume(0)", "displayName": "consume(0)", "type": "Pod", "phase": "Failed",
     "boundaryID": "wf", "startedAt": "2030-01-01T00:00:03Z", "finishedAt": "2030-01-01T00:00:08Z",
     "message": "exit 1", "_log_path": "/private"},
]


def test_task_details_from_node_rows(client: FlaskClient, services: Services, argo: dict) -> None:
    run_id = create(client, {"display_name": "tasks", "pipeline_spec": argo})["run_id"]
    add_nodes(services, run_id, NODES)
    tasks = {task["task_id"]: task for task in get(client, run_id)["run_details"]["task_details"]}
    assert list(tasks) == ["wf", "wf-1", "wf-2", "wf-3", "wf-4"]
    assert tasks["wf"] == {
        "run_id": run_id, "task_id": "wf", "display_name": "wf", "create_time": "2030-01-01T00:00:00Z",
        "start_time": "2030-01-01T00:00:00Z", "end_time": "2030-01-01T00:00:09Z", "state": "FAILED",
        "error": {"code": 2, "message": "child failed"},
        "state_history": [
            {"update_time": "2030-01-01T00:00:00Z", "state": "RUNNING"},
            {"update_time": "2030-01-01T00:00:09Z", "state": "FAILED",
             "error": {"code": 2, "message": "child failed"}},
        ],
        "child_tasks": [{"pod_name": "wf-1"}, {"task_id": "wf-3"}],
    }
    produce = tasks["wf-1"]
    assert produce["state"] == "SUCCEEDED" and produce["parent_task_id"] == "wf" and produce["pod_name"] == "wf-1"
    assert produce["outputs"] == {"data": {}} and "inputs" not in produce
    assert produce["child_tasks"] == [{"task_id": "wf-2"}]
    assert tasks["wf-2"]["inputs"] == {"data": {}} and tasks["wf-2"]["child_tasks"] == [{"pod_name": "wf-4"}]
    assert tasks["wf-3"]["state"] == "SKIPPED"
    assert tasks["wf-3"]["state_history"] == [{"update_time": "2030-01-01T00:00:09Z", "state": "SKIPPED"}]
    assert tasks["wf-4"]["parent_task_id"] == "wf-2" and tasks["wf-4"]["error"]["message"] == "exit 1"
    # Listing reads no nodes.
    assert "run_details" not in ok(client.get(f"{V2}/runs"))["runs"][0]
    # Under a terminate, failed tasks are CANCELED.
    set_run(services, run_id, status="Failed", terminate_requested=True)
    tasks = {task["task_id"]: task for task in get(client, run_id)["run_details"]["task_details"]}
    assert tasks["wf-4"]["state"] == "CANCELED" and tasks["wf-4"]["error"]["code"] == 1


# -- list, archive, delete -------------------------------------------------------------------------------------


def test_list_pages_sorts_filters_and_scopes(client: FlaskClient, argo: dict) -> None:
    first, second = experiment(client, "first"), experiment(client, "second")
    for name, experiment_id in (("a", first), ("b", first), ("c", second)):
        create(client, {"display_name": name, "pipeline_spec": argo, "experiment_id": experiment_id})
    page = ok(client.get(f"{V2}/runs", query_string={"page_size": 2, "sort_by": "display_name desc"}))
    assert [r["display_name"] for r in page["runs"]] == ["c", "b"] and page["total_size"] == 3
    rest = ok(client.get(f"{V2}/runs", query_string={"page_token": page["next_page_token"]}))
    assert [r["display_name"] for r in rest["runs"]] == ["a"] and "next_page_token" not in rest
    scoped = ok(client.get(f"{V2}/runs", query_string={"experiment_id": first, "sort_by": "created_at"}))
    assert sorted(r["display_name"] for r in scoped["runs"]) == ["a", "b"]
    by_name = json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": "b"}]})
    assert [r["display_name"] for r in ok(client.get(f"{V2}/runs", query_string={"filter": by_name}))["runs"]] == ["b"]
    pending = json.dumps({"predicates": [{"key": "state", "operation": "EQUALS", "string_value": "PENDING"}]})
    assert ok(client.get(f"{V2}/runs", query_string={"filter": pending})) == {}  # stored "" is not Pending
    assert ok(client.get(f"{V2}/runs", query_string={"experiment_id": "nowhere"})) == {}
    v2_error(client.get(f"{V2}/runs", query_string={"filter": "{"}), 400, 3)
    v2_error(client.get(f"{V2}/runs", query_string={"page_size": "x"}), 400, 3)
    v2_error(client.get(f"{V2}/runs", query_string={"sort_by": "nope"}), 400, 3)
    op = json.dumps({"predicates": [{"key": "display_name", "op": "EQUALS", "string_value": "b"}]})
    v2_error(client.get(f"{V2}/runs", query_string={"filter": op}), 400, 3)


def test_archive_unarchive_and_delete(client: FlaskClient, argo: dict, execution: RecordingExecution) -> None:
    run_id = create(client, {"display_name": "kept", "pipeline_spec": argo})["run_id"]
    assert ok(client.post(f"{V2}/runs/{run_id}:archive")) == {}
    assert get(client, run_id)["storage_state"] == "ARCHIVED"
    archived = json.dumps({"predicates": [{"key": "storage_state", "operation": "EQUALS",
                                           "string_value": "ARCHIVED"}]})
    assert [r["run_id"] for r in ok(client.get(f"{V2}/runs", query_string={"filter": archived}))["runs"]] == [run_id]
    assert ok(client.get(f"{V1}/runs/{run_id}"))["run"]["storage_state"] == "STORAGESTATE_ARCHIVED"
    assert ok(client.post(f"{V2}/runs/{run_id}:unarchive")) == {}
    assert get(client, run_id)["storage_state"] == "AVAILABLE"
    assert ok(client.delete(f"{V2}/runs/{run_id}")) == {}
    assert ("run_deleted", run_id) in execution.calls
    v2_error(client.get(f"{V2}/runs/{run_id}"), 404, 5)
    assert client.get(f"{V1}/runs/{run_id}").status_code == 404


def test_a_job_run_names_its_recurring_run(client: FlaskClient, services: Services, argo: dict) -> None:
    run_id = create(client, {"display_name": "fired", "pipeline_spec": argo})["run_id"]
    set_run(services, run_id, job_id="job-1")
    assert get(client, run_id)["recurring_run_id"] == "job-1"


# -- multi-user mode -------------------------------------------------------------------------------------------


def test_multi_user_runs(multi_user: tuple[FlaskClient, dict[str, dict[str, str]]], argo: dict) -> None:
    client, headers = multi_user
    alice, bob = headers["alice"], headers["bob"]
    experiment_id = ok(client.post(f"{V2}/experiments", json={"display_name": "e", "namespace": "team-a"},
                                   headers=alice))["experiment_id"]
    run = ok(client.post(f"{V2}/runs", json={"display_name": "r", "pipeline_spec": argo,
                                             "experiment_id": experiment_id}, headers=alice))
    one = f"{V2}/runs/{run['run_id']}"
    assert ok(client.get(one, headers=alice))["run_id"] == run["run_id"]
    for query in ({"namespace": "team-a"}, {"experiment_id": experiment_id}):
        listed = ok(client.get(f"{V2}/runs", query_string=query, headers=alice))
        assert [r["run_id"] for r in listed["runs"]] == [run["run_id"]]
        v2_error(client.get(f"{V2}/runs", query_string=query, headers=bob), 403, 7)
    v2_error(client.get(f"{V2}/runs", headers=alice), 400, 3)  # a namespace is required
    v2_error(client.get(one), 401, 16)
    for method, path in (("GET", one), ("POST", f"{one}:archive"), ("POST", f"{one}:terminate"),
                         ("POST", f"{one}:retry"), ("DELETE", one)):
        v2_error(client.open(path, method=method, headers=bob), 403, 7)
    v2_error(client.post(f"{V2}/runs", json={"display_name": "r", "pipeline_spec": argo,
                                             "experiment_id": experiment_id}, headers=bob), 403, 7)
    # No experiment: 400 in upstream's v2 words.
    no_experiment = "Experiment id can not be empty in multi-user mode"
    body = v2_error(client.post(f"{V2}/runs", json={"display_name": "r", "pipeline_spec": argo}, headers=alice), 400, 3)
    assert body["message"] == ("Failed to create a new run: Failed to create a run due to invalid experimentId and "
                               f"namespace combination: Invalid input error: {no_experiment}")
    assert body["details"][0]["message"] == no_experiment
    assert ok(client.delete(one, headers=alice)) == {}
