"""Our run extensions on every database: batch status (`POST .../runs:batchGetStatus`) and runs created now and
started later (`POST .../runs?start=false`, `POST .../runs/{id}:start`), on v1beta1 and v2beta1. Nothing
executes here: the executor is off and a recording fake takes its hooks; whether an executor would claim a run
is asked of the claim query itself (ExecutionStateService.claimable_runs)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, update

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.executor.factory import artifact_store
from kfp_backend.services.all_services import Services
from kfp_backend.services.execution_state import ExecutionStateService
from kfp_backend.store.models import Run, RunNode
from tests.api.recorded_hooks import RecordingExecution, recording_app
from tests.api.test_namespaces import TEAM_A, TEAM_B, Api, _make_tokens, _seed
from tests.gateway_errors import error_message, gateway_error

V1 = "/apis/v1beta1"
V2 = "/apis/v2beta1"
ARCHIVED = "STORAGESTATE_ARCHIVED"
AVAILABLE = "STORAGESTATE_AVAILABLE"
EPOCH = "1970-01-01T00:00:00Z"
WORKFLOW = json.dumps(yaml.safe_load("""\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: batch-
spec:
  entrypoint: say
  templates:
    - name: say
      container:
        image: alpine:3.19
        command: [echo, hello]
"""))


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    yield from recording_app(settings)


@pytest.fixture
def execution(services: Services) -> RecordingExecution:
    assert isinstance(services.runs.execution, RecordingExecution)
    return services.runs.execution


def ok(response: Any) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def new_run(client: FlaskClient, name: str = "run", **query: str) -> dict:
    body = {"name": name, "pipeline_spec": {"workflow_manifest": WORKFLOW}}
    return ok(client.post(f"{V1}/runs", json=body, query_string=query))["run"]


def batch(client: FlaskClient, body: dict, prefix: str = V1) -> dict:
    return ok(client.post(f"{prefix}/runs:batchGetStatus", json=body))


def set_run(services: Services, run_id: str, **values: Any) -> None:
    with services.db.transaction() as session:
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def add_node(services: Services, run_id: str, node: dict) -> None:
    with services.db.transaction() as session:
        session.add(RunNode(run_id=run_id, node_id=node["id"], phase=node["phase"], data=json.dumps(node)))


def claimable(services: Services) -> set[str]:
    state = ExecutionStateService(services.db)
    try:
        return {run_id for run_id, _ in state.claimable_runs(60)}
    finally:
        state.close()


# -- batch status of runs -------------------------------------------------------------------------------------


def test_batch_status_of_runs_answers_each_entry(client: FlaskClient, services: Services) -> None:
    done, archived, pending, deleted = (new_run(client, f"run-{i}") for i in range(4))
    set_run(services, done["id"], status="Succeeded", finished_at=1_700_000_000)
    ok(client.post(f"{V1}/runs/{archived['id']}:archive"))
    ok(client.delete(f"{V1}/runs/{deleted['id']}"))
    unknown = str(uuid.uuid4())
    ids = [done["id"], archived["id"], pending["id"], deleted["id"], unknown, done["id"], "not-a-uuid"]
    answer = batch(client, {"run_ids": ids})
    assert list(answer) == ["runs"]
    runs = answer["runs"]
    assert [entry["run_id"] for entry in runs] == ids  # request order, a repeated id answered twice
    assert runs[0] == {"run_id": done["id"], "name": "run-0", "status": "Succeeded", "storage_state": AVAILABLE,
                       "created_at": done["created_at"], "finished_at": "2023-11-14T22:13:20Z"}
    assert runs[5] == runs[0]
    assert runs[1] == {"run_id": archived["id"], "name": "run-1", "storage_state": ARCHIVED,
                       "created_at": archived["created_at"], "finished_at": EPOCH}
    assert runs[2]["storage_state"] == AVAILABLE and "status" not in runs[2]  # created, not yet reported
    # A deleted run is gone with its rows: NOT_FOUND, as an id that never was.
    for entry, run_id in ((runs[3], deleted["id"]), (runs[4], unknown), (runs[6], "not-a-uuid")):
        assert entry == {"run_id": run_id, "error": {"code": 5, "message": f"Run {run_id} not found."}}


def test_batch_status_takes_1_to_200_entries(client: FlaskClient) -> None:
    run_id = new_run(client)["id"]
    assert len(batch(client, {"run_ids": [run_id] * 200})["runs"]) == 200
    assert len(batch(client, {"nodes": [{"run_id": run_id, "node_id": "n"}] * 200})["nodes"]) == 200
    for body, expected in (
        ({}, "got 0 run_ids"),
        ({"run_ids": []}, "got 0 run_ids"),
        ({"run_ids": [run_id] * 201}, "got 201 run_ids"),
        ({"nodes": [{"run_id": run_id, "node_id": "n"}] * 201, "run_ids": [run_id]}, "got 201 nodes"),
        ({"run_ids": [run_id, ""]}, "run_ids[1] is empty."),
        ({"nodes": [{"run_id": run_id}]}, "nodes[0] needs a run_id and a node_id."),
        ({"run_ids": run_id}, "Invalid request body"),
        ({"run_ids": [1]}, "Invalid request body"),
        ({"nodes": ["x"]}, "Invalid request body"),
    ):
        for prefix in (V1, V2):
            response = client.post(f"{prefix}/runs:batchGetStatus", json=body)
            assert response.status_code == 400, (body, response.get_data(as_text=True))
            text = error_message(gateway_error(response, 400, 3)) if prefix == V1 else (
                response.get_json()["details"][0]["message"])
            assert expected in text, (body, text)
    response = client.post(f"{V1}/runs:batchGetStatus", data="[", content_type="application/json")
    gateway_error(response, 400, 3)
    # JSON names are read too, and null is "not set", as the gateway reads a body.
    assert batch(client, {"runIds": [run_id], "nodes": None})["runs"][0]["run_id"] == run_id
    assert batch(client, {"nodes": [{"runId": run_id, "nodeId": "n"}]})["nodes"][0]["node_id"] == "n"


# -- batch status of nodes ------------------------------------------------------------------------------------


def _argo_node(run_id: str, key: str) -> dict:
    return {
        "id": "pod-1", "name": "wf.train", "displayName": "train", "type": "Pod", "phase": "Succeeded",
        "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z",
        "outputs": {
            "parameters": [{"name": "train-accuracy", "value": "0.9", "valueFrom": {"path": "/tmp/outputs/a"}}],
            "artifacts": [
                {"name": "mlpipeline-metrics", "path": "/tmp/outputs/m", "s3": {"key": key}},
                {"name": "train-model", "path": "/tmp/outputs/model"},  # not stored: nothing to read
            ],
        },
        "_log_path": "/private/not/shown",
    }


def _ir_node(key: str) -> dict:
    model = {"name": "model", "uri": "s3://bucket/run/model", "s3": {"key": key}}
    return {
        "id": "pod-2", "name": "root.trainer", "displayName": "trainer", "type": "Pod", "phase": "Failed",
        "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:02:00Z", "message": "Error (exit code 1)",
        "outputs": {"artifacts": [model, {"name": "scores", "uri": "s3://bucket/run/scores"}]},
        "_ir_outputs": {"parameters": {}, "artifacts": {
            "model": [{"name": "model", "type": {"schemaTitle": "system.Model"}, "uri": model["uri"],
                       "metadata": {}, "key": key}],
            "scores": [{"name": "scores", "type": {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"},
                        "uri": "s3://bucket/run/scores", "metadata": {"auc": 0.75}}],
        }},
    }


def test_batch_status_of_nodes_with_outputs_and_read_paths(
    client: FlaskClient, services: Services, settings: Settings
) -> None:
    run_id, other_id = new_run(client)["id"], new_run(client, "other")["id"]
    metrics_key = f"artifacts/{run_id}/pod-1/mlpipeline-metrics.tgz"
    model_key = f"artifacts/{run_id}/pod-2/model"
    root = artifact_store(settings).root
    for key, payload in ((metrics_key, b"metrics"), (model_key, b"model")):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(payload)
    add_node(services, run_id, _argo_node(run_id, metrics_key))
    add_node(services, run_id, _ir_node(model_key))
    add_node(services, other_id, {"id": "pod-1", "displayName": "elsewhere", "phase": "Running"})
    unknown = str(uuid.uuid4())
    asked = [(run_id, "pod-1"), (run_id, "pod-2"), (run_id, "pod-9"), (unknown, "pod-1"), (other_id, "pod-1"),
             (other_id, "pod-2")]
    # Nodes win over run ids when both are given.
    answer = batch(client, {"run_ids": [run_id], "nodes": [{"run_id": r, "node_id": n} for r, n in asked]})
    assert list(answer) == ["nodes"]
    nodes = answer["nodes"]
    assert [(entry["run_id"], entry["node_id"]) for entry in nodes] == asked
    read_metrics = f"{V1}/runs/{run_id}/nodes/pod-1/artifacts/mlpipeline-metrics:read"
    assert nodes[0] == {
        "run_id": run_id, "node_id": "pod-1", "display_name": "train", "phase": "Succeeded",
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z",
        "outputs": {
            "parameters": [{"name": "train-accuracy", "value": "0.9"}],
            "artifacts": [{"name": "mlpipeline-metrics", "type": "Metrics", "read_path": read_metrics},
                          {"name": "train-model"}],
        },
    }
    read_model = f"{V1}/runs/{run_id}/nodes/pod-2/artifacts/model:read"
    assert nodes[1] == {
        "run_id": run_id, "node_id": "pod-2", "display_name": "trainer", "phase": "Failed",
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:02:00Z",
        "message": "Error (exit code 1)",
        "outputs": {"artifacts": [
            {"name": "model", "type": "Model", "uri": "s3://bucket/run/model", "read_path": read_model},
            {"name": "scores", "type": "Metrics", "uri": "s3://bucket/run/scores", "metadata": {"auc": 0.75}},
        ]},
    }
    # The read paths are ReadArtifact's.
    for path, payload in ((read_metrics, b"metrics"), (read_model, b"model")):
        assert base64.b64decode(ok(client.get(path))["data"]) == payload
    assert nodes[2] == {"run_id": run_id, "node_id": "pod-9",
                        "error": {"code": 5, "message": f"Node pod-9 of run {run_id} not found."}}
    assert nodes[3] == {"run_id": unknown, "node_id": "pod-1",
                        "error": {"code": 5, "message": f"Run {unknown} not found."}}
    assert nodes[4] == {"run_id": other_id, "node_id": "pod-1", "display_name": "elsewhere", "phase": "Running"}
    assert nodes[5]["error"]["code"] == 5

    # v2beta1: the same entries with v2 names and states, v2 read paths.
    v2_nodes = batch(client, {"nodes": [{"run_id": r, "node_id": n} for r, n in asked]}, V2)["nodes"]
    assert v2_nodes[1]["state"] == "FAILED" and v2_nodes[1]["start_time"] == "2026-01-01T00:00:00Z"
    assert v2_nodes[1]["end_time"] == "2026-01-01T00:02:00Z"
    assert v2_nodes[1]["outputs"]["artifacts"][0]["read_path"] == f"{V2}/runs/{run_id}/nodes/pod-2/artifacts/model:read"
    assert base64.b64decode(ok(client.get(v2_nodes[1]["outputs"]["artifacts"][0]["read_path"]))["data"]) == b"model"
    assert v2_nodes[4]["state"] == "RUNNING" and v2_nodes[3] == nodes[3]


def test_v2_batch_status_of_runs(client: FlaskClient, services: Services) -> None:
    done, terminated, held = new_run(client, "done"), new_run(client, "stopped"), new_run(client, "held", start="false")
    set_run(services, done["id"], status="Succeeded", finished_at=1_700_000_000)
    set_run(services, terminated["id"], status="Failed", terminate_requested=True, finished_at=1_700_000_000)
    ok(client.post(f"{V2}/runs/{done['id']}:archive"))
    runs = batch(client, {"run_ids": [done["id"], terminated["id"], held["id"], "gone"]}, V2)["runs"]
    assert runs[0] == {"run_id": done["id"], "display_name": "done", "state": "SUCCEEDED", "storage_state": "ARCHIVED",
                       "created_at": done["created_at"], "finished_at": "2023-11-14T22:13:20Z"}
    assert runs[1]["state"] == "CANCELED" and runs[2]["state"] == "PENDING" and "finished_at" not in runs[2]
    assert runs[2]["storage_state"] == "AVAILABLE"
    assert runs[3] == {"run_id": "gone", "error": {"code": 5, "message": "Run gone not found."}}


# -- one round trip whatever the count ------------------------------------------------------------------------


def test_batch_status_sends_as_many_statements_for_200_entries_as_for_1(
    client: FlaskClient, services: Services
) -> None:
    run_ids = [new_run(client, f"r{i}")["id"] for i in range(5)]
    for run_id in run_ids:
        add_node(services, run_id, {"id": "pod-1", "displayName": "step", "phase": "Succeeded"})
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_: Any) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    def count(body: dict) -> int:
        """The statements the call sent: one SELECT, whatever else the connection does around it."""
        statements.clear()
        event.listen(services.db.engine, "before_cursor_execute", record)
        try:
            batch(client, body)
        finally:
            event.remove(services.db.engine, "before_cursor_execute", record)
        assert sum(s.lstrip().upper().startswith("SELECT") for s in statements) == 1, statements
        return len(statements)

    many_ids = run_ids + [str(uuid.uuid4()) for _ in range(195)]
    assert count({"run_ids": many_ids}) == count({"run_ids": run_ids[:1]})
    pairs = [{"run_id": run_id, "node_id": node} for run_id in many_ids[:40] for node in ("pod-1", "a", "b", "c", "d")]
    assert len(pairs) == 200
    assert count({"nodes": pairs}) == count({"nodes": pairs[:1]})
    nodes = batch(client, {"nodes": pairs})["nodes"]
    assert sum("error" not in entry for entry in nodes) == 5


# -- multi-user: a run of another namespace is that entry's error ---------------------------------------------


@pytest.fixture
def multi_user_client(settings: Settings) -> Iterator[tuple[FlaskClient, Any]]:
    application = create_app(settings.replace(auth="required", executor_enabled=False, scheduler_enabled=False))
    try:
        yield application.test_client(), _make_tokens(application)
    finally:
        shutdown(application)


def test_batch_status_reports_a_forbidden_run_in_its_entry(multi_user_client: tuple[FlaskClient, Any]) -> None:
    client, tokens = multi_user_client
    a, b = _seed(client, tokens.alice, TEAM_A), _seed(client, tokens.bob, TEAM_B)
    alice, admin = Api(client, tokens.alice), Api(client, tokens.admin)
    headers = {"Authorization": f"Bearer {tokens.alice}"}
    for prefix in (V1, V2):

        def call(body: dict, prefix: str = prefix) -> dict:
            return ok(client.post(f"{prefix}/runs:batchGetStatus", json=body, headers=headers))

        answer = call({"run_ids": [a.run, b.run]})["runs"]
        assert answer[0]["run_id"] == a.run and "error" not in answer[0]
        assert answer[1]["run_id"] == b.run and answer[1]["error"]["code"] == 7
        assert answer[1]["error"]["message"].startswith("User 'alice' is not authorized")
        assert "Namespace:team-b" in answer[1]["error"]["message"]
        nodes = call({"nodes": [{"run_id": b.run, "node_id": "x"}]})["nodes"]
        assert nodes[0]["error"]["code"] == 7
    both = admin.ok("POST", "/runs:batchGetStatus", json={"run_ids": [a.run, b.run]})["runs"]
    assert all("error" not in entry for entry in both)
    assert Api(client, None).call("POST", "/runs:batchGetStatus", json={"run_ids": [a.run]}).status_code == 401
    # Starting the other's run is refused as a whole (one run, one answer).
    assert alice.call("POST", f"/runs/{b.run}:start").status_code == 403


# -- create now, start later ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [V1, V2])
def test_a_run_created_with_start_false_waits_for_start(
    client: FlaskClient, services: Services, execution: RecordingExecution, prefix: str
) -> None:
    if prefix == V1:
        held = new_run(client, "held", start="false")
    else:
        body = {"display_name": "held", "pipeline_spec": yaml.safe_load(WORKFLOW)}
        created = ok(client.post(f"{V2}/runs", json=body, query_string={"start": "false"}))
        assert created["state"] == "PENDING"
        held = {"id": created["run_id"]}
    started_now = new_run(client, "now", start="true")
    run_id = held["id"]
    assert ok(client.get(f"{V1}/runs/{run_id}"))["run"]["status"] == "Pending"
    assert execution.calls == [("run_created", started_now["id"])]  # the executor was not told
    assert claimable(services) == {started_now["id"]}  # nor would it claim the run

    for _ in range(2):  # starting twice is harmless
        assert ok(client.post(f"{prefix}/runs/{run_id}:start")) == {}
    run = ok(client.get(f"{V1}/runs/{run_id}"))["run"]
    assert "status" not in run  # a new run, not yet reported
    assert execution.calls == [("run_created", started_now["id"]), ("run_created", run_id)]
    assert claimable(services) == {started_now["id"], run_id}
    # A run created started may be "started" too: nothing happens.
    assert ok(client.post(f"{prefix}/runs/{started_now['id']}:start")) == {}
    assert len(execution.calls) == 2


def test_start_of_an_unknown_run_is_404_and_bad_start_values_are_400(
    client: FlaskClient, services: Services
) -> None:
    gone = str(uuid.uuid4())
    body = gateway_error(client.post(f"{V1}/runs/{gone}:start"), 404, 5)
    assert body["error"] == f"Start run failed: Check run exist failed: ResourceNotFoundError: Run {gone} not found."
    assert client.post(f"{V2}/runs/{gone}:start").status_code == 404
    for value in ("no", "", "FaLsE", "2"):
        response = client.post(f"{V1}/runs", json={"name": "x", "pipeline_spec": {"workflow_manifest": WORKFLOW}},
                               query_string={"start": value})
        assert "query parameter start" in error_message(gateway_error(response, 400, 3))
        assert client.post(f"{V2}/runs", json={"display_name": "x"}, query_string={"start": value}).status_code == 400
    assert "runs" not in ok(client.get(f"{V1}/runs"))  # nothing was created
    for value in ("1", "t", "True", "0", "f", "FALSE"):
        new_run(client, value, start=value)


def test_a_pending_run_can_be_archived_deleted_and_terminated(
    client: FlaskClient, services: Services, execution: RecordingExecution
) -> None:
    archived, deleted, terminated = (new_run(client, name, start="false") for name in ("a", "d", "t"))
    ok(client.post(f"{V1}/runs/{archived['id']}:archive"))
    assert ok(client.get(f"{V1}/runs/{archived['id']}"))["run"]["storage_state"] == ARCHIVED
    ok(client.delete(f"{V1}/runs/{deleted['id']}"))
    assert client.get(f"{V1}/runs/{deleted['id']}").status_code == 404
    assert client.post(f"{V1}/runs/{deleted['id']}:start").status_code == 404

    ok(client.post(f"{V1}/runs/{terminated['id']}/terminate"))
    assert ok(client.get(f"{V1}/runs/{terminated['id']}"))["run"]["status"] == "Terminating"
    # Let go, so that an executor ends it before any step, as any run terminated before it began ...
    assert terminated["id"] in claimable(services)
    assert execution.calls[-1] == ("terminate_requested", terminated["id"])
    # ... and a start afterwards does not bring it back.
    calls = len(execution.calls)
    ok(client.post(f"{V1}/runs/{terminated['id']}:start"))
    assert ok(client.get(f"{V1}/runs/{terminated['id']}"))["run"]["status"] == "Terminating"
    assert len(execution.calls) == calls
    assert claimable(services) == {terminated["id"]}  # the archived run is still held


def test_runs_created_started_stay_claimable(client: FlaskClient, services: Services) -> None:
    run_ids = {new_run(client, f"r{i}")["id"] for i in range(3)}
    assert claimable(services) == run_ids
