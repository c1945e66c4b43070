"""RunService over HTTP on every database: create, get, list, archive, delete, terminate, retry, metrics,
artifacts and step logs. Nothing executes here: the executor is off and a recording fake takes its hooks."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from kfp import compiler, dsl
from kfp.components import OutputPath, create_component_from_func
from sqlalchemy import event, select, update

from kfp_backend.app import create_app
from kfp_backend.config import Settings
from kfp_backend.executor.factory import artifact_store
from kfp_backend.services.all_services import Services
from kfp_backend.services.authorization import SYSTEM
from kfp_backend.store.models import Run, RunManifest, RunMetric, RunNode
from tests.api.recorded_hooks import RecordingExecution, recording_app
from tests.api.run_references import experiment, experiment_ref, upload, version_ref
from tests.gateway_errors import error_message, gateway_error

API = "/apis/v1beta1"
RUNS = f"{API}/runs"
EPOCH = "1970-01-01T00:00:00Z"
ARCHIVED = "STORAGESTATE_ARCHIVED"
VALIDATE = "Validate create run request failed.: Invalid input error: "
CREATE_FAILED = "Failed to create a new run.: "
BASE_IMAGE = "python:3.10-slim"


# -- pipelines, compiled at test time -----------------------------------------------------------------------


def _echo(text: str) -> str:
    print(text)
    return text


def _write_metrics(mlpipeline_metrics_path):  # type: ignore[no-untyped-def]
    import json

    with open(mlpipeline_metrics_path, "w") as f:
        json.dump({"metrics": [{"name": "accuracy", "numberValue": 0.9, "format": "PERCENTAGE"}]}, f)


# Real annotation objects (this module's annotations are strings): kfp reads them to build the component.
_write_metrics.__annotations__ = {"mlpipeline_metrics_path": OutputPath("Metrics")}
echo_op = create_component_from_func(_echo, base_image=BASE_IMAGE)
metrics_op = create_component_from_func(_write_metrics, base_image=BASE_IMAGE)


@dsl.pipeline(name="runs-api", description="Echoes, reports metrics and names its run.")
def runs_pipeline(message: str = "hello", stamp: str = "at-[[CurrentTime.2006]]", count: int = 1):
    metrics_op()
    echo_op(message)
    echo_op(dsl.RUN_ID_PLACEHOLDER)


@dsl.pipeline(name="runs-api-other")
def other_pipeline(word: str = "other"):
    echo_op(word)


def _compile(function: Any, path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(function, str(path))
    return path.read_text()


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("run-pipelines")
    main_yaml = _compile(runs_pipeline, directory / "runs.yaml")
    other_yaml = _compile(other_pipeline, directory / "other.yaml")
    return {
        "yaml": main_yaml,
        "json": json.dumps(yaml.safe_load(main_yaml)),
        "other_yaml": other_yaml,
        "other_json": json.dumps(yaml.safe_load(other_yaml)),
    }


# -- app with a recording execution, and its artifact store ---------------------------------------------------


@pytest.fixture
def artifacts_dir(settings: Settings) -> Path:
    """The root of the app's artifact store: the tests write its files themselves."""
    return artifact_store(settings).root


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    yield from recording_app(settings)


@pytest.fixture
def execution(services: Services) -> RecordingExecution:
    assert isinstance(services.runs.execution, RecordingExecution)
    return services.runs.execution


# -- helpers ---------------------------------------------------------------------------------------------------


def seconds(timestamp: str) -> int:
    assert timestamp.endswith("Z") and "." not in timestamp, timestamp
    return int(datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def create_run(client: FlaskClient, body: dict) -> dict:
    response = client.post(RUNS, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def manifest_run(client: FlaskClient, manifest: str, name: str = "run", **extra: Any) -> dict:
    spec = {"workflow_manifest": manifest, **extra.pop("spec", {})}
    return create_run(client, {"name": name, "pipeline_spec": spec, **extra})["run"]


def upload_version(client: FlaskClient, text: str, pipeline_id: str, name: str) -> dict:
    response = client.post(f"{API}/pipelines/upload_version", content_type="multipart/form-data",
                           query_string={"name": name, "pipelineid": pipeline_id},
                           data={"uploadfile": (io.BytesIO(text.encode()), "v.yaml")})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def list_runs(client: FlaskClient, **params: Any) -> dict:
    response = client.get(RUNS, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def names(body: dict) -> list[str]:
    return [run["name"] for run in body.get("runs", [])]


def get_run(client: FlaskClient, run_id: str) -> dict:
    response = client.get(f"{RUNS}/{run_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def runtime(detail: dict) -> dict:
    return json.loads(detail["pipeline_runtime"]["workflow_manifest"])


def set_run(services: Services, run_id: str, **values: Any) -> None:
    with services.db.transaction() as session:
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def add_nodes(services: Services, run_id: str, nodes: list[dict]) -> None:
    with services.db.transaction() as session:
        for node in nodes:
            session.add(RunNode(run_id=run_id, node_id=node["id"], phase=node["phase"], data=json.dumps(node)))


def set_workflow_status(services: Services, run_id: str, status: dict) -> None:
    with services.db.transaction() as session:
        session.execute(
            update(RunManifest).where(RunManifest.run_id == run_id).values(workflow_status=json.dumps(status))
        )


def stored_run(services: Services, run_id: str) -> Run | None:
    with services.db.transaction(write=False) as session:
        return session.get(Run, run_id)


def not_found(run_id: str) -> str:
    return f"ResourceNotFoundError: Run {run_id} not found."


# -- create ----------------------------------------------------------------------------------------------------


def test_create_from_a_manifest_rewrites_the_workflow_and_get_returns_the_same(
    client: FlaskClient, manifests: dict[str, str], execution: RecordingExecution
) -> None:
    before = int(time.time())
    detail = create_run(client, {
        "name": "hello world", "description": "this is hello world",
        "pipeline_spec": {"workflow_manifest": manifests["json"], "parameters": [
            {"name": "message", "value": "goodbye [[RunUUID]]"}, {"name": "count", "value": "3"},
        ]},
    })
    after = int(time.time())
    run = detail["run"]
    run_id = run["id"]
    assert uuid.UUID(run_id).version == 4
    assert set(run) == {"id", "name", "description", "pipeline_spec", "resource_references", "service_account",
                        "created_at", "scheduled_at", "finished_at"}
    assert run["name"] == "hello world" and run["description"] == "this is hello world"
    assert run["pipeline_spec"] == {
        "workflow_manifest": manifests["json"],  # verbatim
        "parameters": [{"name": "message", "value": "goodbye [[RunUUID]]"}, {"name": "count", "value": "3"}],
    }
    by_name = json.dumps({"predicates": [{"key": "name", "op": "EQUALS", "string_value": "Default"}]})
    default_id = client.get(f"{API}/experiments", query_string={"filter": by_name}).get_json()["experiments"][0]["id"]
    assert run["resource_references"] == [
        {"key": {"type": "EXPERIMENT", "id": default_id}, "name": "Default", "relationship": "OWNER"}
    ]
    assert run["service_account"] == "pipeline-runner"
    assert before <= seconds(run["created_at"]) <= after
    assert run["scheduled_at"] == run["created_at"]
    assert run["finished_at"] == EPOCH

    workflow = runtime(detail)
    metadata = workflow["metadata"]
    assert metadata["generateName"] == "runs-api-"
    assert re.fullmatch(r"runs-api-[a-z0-9]{5}", metadata["name"])
    assert metadata["labels"]["pipeline/runid"] == run_id
    assert metadata["annotations"]["pipelines.kubeflow.org/run_name"] == "hello world"
    assert workflow["spec"]["serviceAccountName"] == "pipeline-runner"
    parameters = {p["name"]: p.get("value") for p in workflow["spec"]["arguments"]["parameters"]}
    assert parameters == {"message": f"goodbye {run_id}", "count": "3",
                          "stamp": f"at-{datetime.fromtimestamp(seconds(run['created_at']), timezone.utc).year}"}
    text = detail["pipeline_runtime"]["workflow_manifest"]
    assert "{{workflow.uid}}" not in text and text.count(run_id) >= 3
    for template in workflow["spec"]["templates"]:
        assert template["metadata"]["labels"]["pipeline/runid"] == run_id
        for artifact in template.get("outputs", {}).get("artifacts", []):
            if artifact["name"] == "mlpipeline-metrics":
                assert artifact["optional"] is True
    assert any(a["name"] == "mlpipeline-metrics" for t in workflow["spec"]["templates"]
               for a in t.get("outputs", {}).get("artifacts", []))
    assert workflow["status"] == {}

    assert get_run(client, run_id) == detail
    assert execution.calls == [("run_created", run_id)]
    listed = list_runs(client)
    assert listed["total_size"] == 1
    (summary,) = listed["runs"]
    # Listing never reads manifests: everything but the manifest.
    assert summary == {**run, "pipeline_spec": {"parameters": run["pipeline_spec"]["parameters"]}}

    # YAML text is accepted too; the workflow name differs between runs of one manifest.
    second = create_run(client, {"name": "yaml", "pipeline_spec": {"workflow_manifest": manifests["yaml"]},
                                 "service_account": "custom-sa"})
    assert second["run"]["pipeline_spec"] == {"workflow_manifest": manifests["yaml"]}
    assert second["run"]["service_account"] == "custom-sa"
    assert runtime(second)["spec"]["serviceAccountName"] == "custom-sa"
    assert runtime(second)["metadata"]["name"] != metadata["name"]
    assert {p["name"]: p.get("value") for p in runtime(second)["spec"]["arguments"]["parameters"]}["message"] == "hello"


def test_create_from_a_pipeline_or_a_version(client: FlaskClient, manifests: dict[str, str]) -> None:
    pipeline = upload(client, manifests["yaml"], "runs-api")
    other = upload(client, manifests["other_yaml"], "other")
    version = upload_version(client, manifests["other_yaml"], pipeline["id"], "second")
    template = client.get(f"{API}/pipeline_versions/{version['id']}/templates").get_json()["template"]
    # The pipeline's default is now "second" (the newest version).
    exp = experiment(client, "training")

    by_pipeline = create_run(client, {"name": "p", "pipeline_spec": {"pipeline_id": pipeline["id"]},
                                      "resource_references": [experiment_ref(exp["id"])]})
    run = by_pipeline["run"]
    assert run["pipeline_spec"] == {"pipeline_id": pipeline["id"], "pipeline_name": "runs-api",
                                    "workflow_manifest": template}
    assert run["resource_references"] == [
        {"key": {"type": "EXPERIMENT", "id": exp["id"]}, "name": "training", "relationship": "OWNER"},
        {"key": {"type": "PIPELINE_VERSION", "id": version["id"]}, "name": "second", "relationship": "CREATOR"},
    ]
    assert runtime(by_pipeline)["metadata"]["generateName"] == "runs-api-other-"

    first_version = pipeline["id"]
    by_version = create_run(client, {"name": "v", "pipeline_spec": {"parameters": [{"name": "message", "value": "x"}]},
                                     "resource_references": [version_ref(first_version)]})
    run = by_version["run"]
    assert set(run["pipeline_spec"]) == {"workflow_manifest", "parameters"}
    assert json.loads(run["pipeline_spec"]["workflow_manifest"])["metadata"]["generateName"] == "runs-api-"
    assert [r["key"]["type"] for r in run["resource_references"]] == ["PIPELINE_VERSION", "EXPERIMENT"]
    assert run["resource_references"][0]["name"] == "runs-api"
    assert run["resource_references"][1]["name"] == "Default"

    both = create_run(client, {"name": "both", "pipeline_spec": {"pipeline_id": pipeline["id"]},
                               "resource_references": [version_ref(first_version)]})
    assert both["run"]["pipeline_spec"]["pipeline_id"] == pipeline["id"]
    assert both["run"]["resource_references"][0]["key"]["id"] == first_version

    body = gateway_error(client.post(RUNS, json={"name": "x", "pipeline_spec": {"pipeline_id": other["id"]},
                                                 "resource_references": [version_ref(version["id"])]}), 400, 3)
    assert body["error"] == VALIDATE + "pipeline ID should be parent of pipeline version."

    # Listing by pipeline version: the runs created from it.
    listed = list_runs(client, **{"resource_reference_key.type": "PIPELINE_VERSION",
                                  "resource_reference_key.id": version["id"]})
    assert names(listed) == ["p"]
    listed = list_runs(client, **{"resource_reference_key.type": "PIPELINE_VERSION",
                                  "resource_reference_key.id": first_version, "sort_by": "name"})
    assert names(listed) == ["both", "v"]


def test_create_validation_in_upstream_order(client: FlaskClient, manifests: dict[str, str]) -> None:
    manifest = manifests["json"]
    pipeline = upload(client, manifests["yaml"], "p")
    gone = str(uuid.uuid4())
    cases: list[tuple[dict, int, int, str]] = [
        ({}, 400, 3, VALIDATE + "The run name is empty. Please specify a valid name."),
        ({"name": "", "pipeline_spec": {"workflow_manifest": "nonsense"}}, 400, 3,
         VALIDATE + "The run name is empty. Please specify a valid name."),
        ({"name": "x" * 256}, 400, 3, VALIDATE + "Run name is too long. Support maximum length of 255 characters."),
        ({"name": "n", "pipeline_spec": {"workflow_manifest": manifest, "pipeline_manifest": "{}"}}, 400, 3,
         VALIDATE + "Please don't specify both workflow manifest and pipeline manifest."),
        ({"name": "n", "pipeline_spec": {"workflow_manifest": manifest, "pipeline_id": pipeline["id"]}}, 400, 3,
         VALIDATE + "Please don't specify a pipeline version or pipeline ID when you specify a workflow manifest "
         "or pipeline manifest."),
        ({"name": "n", "pipeline_spec": {"workflow_manifest": manifest},
          "resource_references": [version_ref(pipeline["id"])]}, 400, 3,
         VALIDATE + "Please don't specify a pipeline version or pipeline ID when you specify a workflow manifest "
         "or pipeline manifest."),
        ({"name": "n"}, 400, 3,
         VALIDATE + "Please specify a pipeline by providing a (workflow manifest or pipeline manifest) or "
         "(pipeline id or/and pipeline version)."),
        ({"name": "n", "pipeline_spec": {"pipeline_id": gone}}, 404, 5,
         "Validate create run request failed.: Get pipelineId failed.: "
         f"ResourceNotFoundError: Pipeline {gone} not found."),
        ({"name": "n", "pipeline_spec": {}, "resource_references": [version_ref(gone)]}, 404, 5,
         "Validate create run request failed.: Get pipelineVersionId failed.: "
         f"ResourceNotFoundError: Version {gone} not found."),
        ({"name": "n", "pipeline_spec": {"workflow_manifest": manifest, "parameters": [{"name": "message"}],
                                         "runtime_config": {}}}, 400, 3,
         VALIDATE + "Please don't specify both parameters and runtime config."),
        ({"name": "n", "pipeline_spec": {"workflow_manifest": manifest,
                                         "parameters": [{"name": "message", "value": "v" * 10000}]}}, 400, 3,
         VALIDATE + "The input parameter length exceed maximum size of 10000."),
        ({"name": "n", "pipeline_spec": {"workflow_manifest": manifest, "parameters": [{"name": "nope"}]},
          "resource_references": [experiment_ref(gone)]}, 404, 5,
         CREATE_FAILED + f"ResourceNotFoundError: Experiment {gone} not found."),
        ({"name": "n", "pipeline_spec": {"workflow_manifest": manifest, "parameters": [{"name": "nope"}]},
          "resource_references": [{"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "OWNER"}]},
         400, 3, CREATE_FAILED + "Invalid input error: Unsupported resource type: PIPELINE"),
        ({"name": "n", "pipeline_spec": {"workflow_manifest": manifest,
                                         "parameters": [{"name": "message", "value": "a"}, {"name": "nope"}]}},
         400, 3,
         CREATE_FAILED + "Failed to verify parameters.: Invalid input error: Unrecognized input parameter: nope"),
    ]
    for payload, status, code, message in cases:
        gateway_error(client.post(RUNS, json=payload), status, code, message)
    # Manifests that are not kfp 1.x Argo Workflows: 400 with the parser's reason.
    for bad in ("nonsense: [", '{"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "spec": {}}', "[]"):
        body = gateway_error(client.post(RUNS, json={"name": "n", "pipeline_spec": {"workflow_manifest": bad}}), 400, 3)
        assert error_message(body).startswith("Invalid argo workflow format. "), body
    body = gateway_error(client.post(RUNS, json={"name": "n", "pipeline_spec": {"pipeline_manifest": "{}"}}), 400, 3)
    assert error_message(body).startswith("Invalid IR spec format.")
    gateway_error(client.post(RUNS, json={"name": 5}), 400, 3)
    gateway_error(client.post(RUNS, data="{", content_type="application/json"), 400, 3)
    assert list_runs(client) == {}
    # Exactly at the limits is fine.
    run = manifest_run(client, manifest, name="é" * 255,
                               spec={"parameters": [{"name": "message", "value": "v" * (10000 - 33)}]})
    assert run["name"] == "é" * 255


# -- list --------------------------------------------------------------------------------------------------------


def test_list_pages_sorts_filters_and_scopes(
    client: FlaskClient, services: Services, manifests: dict[str, str]
) -> None:
    training = experiment(client, "training")
    other = experiment(client, "other")
    for index, name in enumerate(["delta", "alpha", "echo", "charlie", "bravo"]):
        owner = training if index % 2 == 0 else other
        manifest_run(client, manifests["json"], name=name, description=f"d{index}",
                             resource_references=[experiment_ref(owner["id"])])
    everything = list_runs(client, sort_by="name")
    assert names(everything) == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert everything["total_size"] == 5 and "next_page_token" not in everything

    page = list_runs(client, sort_by="name desc", page_size=2)
    seen = names(page)
    while "next_page_token" in page:
        assert page["total_size"] == 5
        page = list_runs(client, sort_by="name desc", page_size=2, page_token=page["next_page_token"])
        seen += names(page)
    assert seen == ["echo", "delta", "charlie", "bravo", "alpha"]

    scoped = {"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": training["id"]}
    assert names(list_runs(client, sort_by="name", **scoped)) == ["bravo", "delta", "echo"]
    first = list_runs(client, sort_by="name", page_size=2, **scoped)
    assert names(first) == ["bravo", "delta"] and first["total_size"] == 3
    rest = list_runs(client, page_size=2, page_token=first["next_page_token"], **scoped)
    assert names(rest) == ["echo"]

    by_name = json.dumps({"predicates": [{"key": "name", "op": "IN", "string_values": {"values": ["alpha", "echo"]}}]})
    assert names(list_runs(client, filter=by_name, sort_by="name")) == ["alpha", "echo"]
    substring = json.dumps({"predicates": [{"op": 9, "key": "description", "stringValue": "D3"}]})
    assert names(list_runs(client, filter=substring)) == ["charlie"]
    run_id = list_runs(client, filter=by_name, sort_by="name")["runs"][0]["id"]
    set_run(services, run_id, status="Succeeded")
    status = json.dumps({"predicates": [{"key": "status", "op": "EQUALS", "string_value": "Succeeded"}]})
    assert names(list_runs(client, filter=status)) == ["alpha"]
    assert names(list_runs(client, sort_by="status desc", page_size=1)) == ["alpha"]
    for field in ("created_at", "scheduled_at", "storage_state", "id", "description desc"):
        assert list_runs(client, sort_by=field)["total_size"] == 5

    assert list_runs(client, **{"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": "none"}) == {}
    assert list_runs(client, **{"resource_reference_key.type": "JOB", "resource_reference_key.id": "job"}) == {}
    assert list_runs(client, **{"resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": "ns"}) == {}
    assert list_runs(client, **{"resource_reference_key.type": "NAMESPACE"})["total_size"] == 5

    gateway_error(client.get(RUNS, query_string={"resource_reference_key.type": "PIPELINE",
                                                 "resource_reference_key.id": "x"}),
                  400, 3, "Validating filter failed.: Unrecognized resource reference type.: Invalid input error: "
                  "Unsupported resource type: PIPELINE")
    gateway_error(client.get(RUNS, query_string={"sort_by": "unknownfield"}), 400, 3,
                  "Failed to create list options: Invalid input error: "
                  'Invalid sorting field: "unknownfield" on listable type Run')
    gateway_error(client.get(RUNS, query_string={"filter": json.dumps({"predicates": [
        {"key": "finished_at", "op": "EQUALS", "long_value": 0}]})}), 400, 3)
    gateway_error(client.get(RUNS, query_string={"page_token": "garbage"}), 400, 3)


def test_list_reads_only_runs_and_one_query_of_metrics(
    client: FlaskClient, services: Services, manifests: dict[str, str]
) -> None:
    ids = [manifest_run(client, manifests["json"], name=f"r{i}")["id"] for i in range(6)]
    for run_id in ids:
        reported = client.post(f"{RUNS}/{run_id}:reportMetrics", json={"metrics": [
            {"name": "b", "node_id": "n", "number_value": 2}, {"name": "a", "node_id": "n", "number_value": 1}]})
        assert reported.status_code == 200
    add_nodes(services, ids[0], [{"id": "n", "name": "n", "phase": "Succeeded", "type": "Pod"}])
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = services.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        body = list_runs(client, page_size=5)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(body["runs"]) == 5
    for run in body["runs"]:
        assert run["metrics"] == [{"name": "b", "node_id": "n", "number_value": 2},
                                  {"name": "a", "node_id": "n", "number_value": 1}]
        assert "workflow_manifest" not in run["pipeline_spec"]
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 3, queries  # count, page, metrics
    assert not any("run_manifests" in s or "run_nodes" in s for s in statements)


def _page_through(client: FlaskClient, sort_by: str, page_size: int = 2, **params: Any) -> list[str]:
    page = list_runs(client, sort_by=sort_by, page_size=page_size, **params)
    seen = names(page)
    while "next_page_token" in page:
        page = list_runs(client, sort_by=sort_by, page_size=page_size, page_token=page["next_page_token"], **params)
        seen += names(page)
    return seen


def test_list_sorted_by_a_metric(client: FlaskClient, manifests: dict[str, str]) -> None:
    values = {"low": -3.5, "high": 0.97, "mid": 0.5, "tie-b": 0.5, "none": None, "big": 1e300, "other": None}
    ids = {name: manifest_run(client, manifests["json"], name=name)["id"] for name in values}
    for name, value in values.items():
        metrics = [] if value is None else [{"name": "Accuracy-Score", "node_id": "train", "number_value": value}]
        if name == "other":  # another metric only: sorts as lacking this one
            metrics = [{"name": "loss", "node_id": "train", "number_value": 9}]
        if name == "low":  # reported by two steps: the larger value counts
            metrics.append({"name": "accuracy-score", "node_id": "eval", "number_value": -7})
        if metrics:
            assert client.post(f"{RUNS}/{ids[name]}:reportMetrics", json={"metrics": metrics}).status_code == 200
    lacking = sorted(["none", "other"], key=lambda n: ids[n])
    ties = sorted(["mid", "tie-b"], key=lambda n: ids[n])
    ascending = [*lacking, "low", *ties, "high", "big"]
    # sort_by is lower-cased, as upstream does; names match whatever their case.
    for sort_by in ("metric:accuracy-score", "metric:Accuracy-Score asc", "METRIC:accuracy-score"):
        assert names(list_runs(client, sort_by=sort_by)) == ascending
        assert _page_through(client, sort_by) == ascending
    assert _page_through(client, "metric:accuracy-score desc") == ascending[::-1]
    assert _page_through(client, "metric:accuracy-score desc", page_size=1) == ascending[::-1]
    body = list_runs(client, sort_by="metric:accuracy-score desc", page_size=3)
    assert body["total_size"] == 7 and names(body) == ["big", "high", ties[1]]
    # A metric no run has: every run ties, so by id.
    assert names(list_runs(client, sort_by="metric:nothing")) == sorted(values, key=lambda n: ids[n])
    # With a filter: only the matching runs, still in metric order.
    by_name = json.dumps({"predicates": [{"key": "name", "op": "IN", "string_values": {"values": ["big", "none",
                                                                                                  "low"]}}]})
    assert _page_through(client, "metric:accuracy-score", page_size=1, filter=by_name) == ["none", "low", "big"]
    # Not a metric name; metrics are not filter keys (as upstream); the token keeps the metric sort.
    for bad in ("metric:", "metric:-x", "metric:a b"):
        gateway_error(client.get(RUNS, query_string={"sort_by": bad}), 400, 3)
    gateway_error(client.get(RUNS, query_string={"filter": json.dumps({"predicates": [
        {"key": "metric:accuracy-score", "op": "EQUALS", "long_value": 1}]})}), 400, 3)
    token = list_runs(client, sort_by="metric:accuracy-score", page_size=2)["next_page_token"]
    gateway_error(client.get(RUNS, query_string={"sort_by": "name", "page_token": token}), 400, 3)
    assert names(list_runs(client, page_size=2, page_token=token)) == ascending[2:4]


# -- archive, delete -------------------------------------------------------------------------------------------


def test_archive_unarchive_and_delete(
    client: FlaskClient, services: Services, manifests: dict[str, str], execution: RecordingExecution
) -> None:
    run = manifest_run(client, manifests["json"])
    run_id = run["id"]
    assert client.post(f"{RUNS}/{run_id}:archive").get_json() == {}
    assert get_run(client, run_id)["run"]["storage_state"] == ARCHIVED
    assert list_runs(client)["runs"][0]["storage_state"] == ARCHIVED
    archived = json.dumps({"predicates": [{"key": "storage_state", "op": "EQUALS", "string_value": ARCHIVED}]})
    assert list_runs(client, filter=archived)["total_size"] == 1
    assert client.post(f"{RUNS}/{run_id}:unarchive").get_json() == {}
    assert "storage_state" not in get_run(client, run_id)["run"]
    assert list_runs(client, filter=archived) == {}
    gone = str(uuid.uuid4())
    gateway_error(client.post(f"{RUNS}/{gone}:archive"), 404, 5, f"Archive run failed: {not_found(gone)}")
    gateway_error(client.post(f"{RUNS}/{gone}:unarchive"), 404, 5, f"Unarchive run failed: {not_found(gone)}")

    # Delete an unfinished run: the executor is told to stop it, then that it is gone; rows cascade.
    add_nodes(services, run_id, [{"id": "n", "name": "n", "phase": "Running", "type": "Pod"}])
    assert client.post(f"{RUNS}/{run_id}:reportMetrics", json={"metrics": [
        {"name": "m", "node_id": "n"}]}).get_json()["results"][0]["status"] == "OK"
    execution.calls.clear()
    assert client.delete(f"{RUNS}/{run_id}").get_json() == {}
    assert execution.calls == [("terminate_requested", run_id), ("run_deleted", run_id)]
    with services.db.transaction(write=False) as session:
        for model in (RunManifest, RunNode, RunMetric):
            assert session.scalars(select(model).where(model.run_id == run_id)).first() is None
    gateway_error(client.get(f"{RUNS}/{run_id}"), 404, 5, not_found(run_id))
    gateway_error(client.delete(f"{RUNS}/{run_id}"), 404, 5,
                  f"Delete run failed: Check run exist failed: {not_found(run_id)}")

    finished = manifest_run(client, manifests["json"])["id"]
    set_run(services, finished, status="Succeeded")
    execution.calls.clear()
    assert client.delete(f"{RUNS}/{finished}").get_json() == {}
    assert execution.calls == [("run_deleted", finished)]
    assert list_runs(client) == {}


def test_archiving_an_experiment_archives_its_runs(client: FlaskClient, manifests: dict[str, str]) -> None:
    training = experiment(client, "training")
    mine = [manifest_run(client, manifests["json"], name=f"mine{i}", resource_references=[
        experiment_ref(training["id"])])["id"] for i in range(2)]
    elsewhere = manifest_run(client, manifests["json"], name="elsewhere")["id"]
    assert client.post(f"{API}/experiments/{training['id']}:archive").status_code == 200
    for run_id in mine:
        assert get_run(client, run_id)["run"]["storage_state"] == ARCHIVED
    assert "storage_state" not in get_run(client, elsewhere)["run"]
    assert client.post(f"{API}/experiments/{training['id']}:unarchive").status_code == 200
    for run_id in mine:
        assert get_run(client, run_id)["run"]["storage_state"] == ARCHIVED
    scoped = {"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": training["id"]}
    assert [r["storage_state"] for r in list_runs(client, **scoped)["runs"]] == [ARCHIVED, ARCHIVED]


# -- metrics ---------------------------------------------------------------------------------------------------


def test_report_metrics(client: FlaskClient, manifests: dict[str, str]) -> None:
    run_id = manifest_run(client, manifests["json"])["id"]
    url = f"{RUNS}/{run_id}:reportMetrics"
    pattern = "^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$"
    long_node = "n" * 129
    response = client.post(url, json={"run_id": "ignored", "metrics": [
        {"name": "accuracy", "node_id": "node-1", "number_value": 0.9, "format": "PERCENTAGE"},
        {"name": "accuracy", "node_id": "node-1", "number_value": 0.1, "format": "RAW"},
        {"name": "loss", "nodeId": "node-1", "numberValue": "0.25", "format": 1},
        {"name": "accuracy", "node_id": "node-2"},
        {"name": "bad name", "node_id": "n"},
        {"name": "trailing_", "node_id": "n"},
        {"name": "x" * 65, "node_id": "n"},
        {"name": "ok", "node_id": ""},
        {"name": "ok", "node_id": long_node},
        {"name": "ok", "node_id": "n" * 128, "number_value": -3},
    ]})
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert results[0] == {"metric_name": "accuracy", "metric_node_id": "node-1", "status": "OK"}
    assert results[1] == {"metric_name": "accuracy", "metric_node_id": "node-1", "status": "DUPLICATE_REPORTING",
                          "message": "same metric has been reported before: node-1/accuracy"}
    assert [r["status"] for r in results[2:4]] == ["OK", "OK"]
    assert results[4] == {"metric_name": "bad name", "metric_node_id": "n", "status": "INVALID_ARGUMENT",
                          "message": f"metric.name 'bad name' doesn't match with the pattern '{pattern}'"}
    assert [r["status"] for r in results[5:7]] == ["INVALID_ARGUMENT", "INVALID_ARGUMENT"]
    assert results[7] == {"metric_name": "ok", "status": "INVALID_ARGUMENT",
                          "message": "metric.node_id must not be empty"}
    assert results[8]["message"] == f"metric.node_id '{long_node}' cannot be longer than 128 characters"
    assert results[9]["status"] == "OK"

    # First report wins, also across calls; order of report is kept.
    again = client.post(url, json={"metrics": [{"name": "loss", "node_id": "node-1", "number_value": 9}]})
    assert again.get_json()["results"][0]["status"] == "DUPLICATE_REPORTING"
    expected = [
        {"name": "accuracy", "node_id": "node-1", "number_value": 0.9, "format": "PERCENTAGE"},
        {"name": "loss", "node_id": "node-1", "number_value": 0.25, "format": "RAW"},
        {"name": "accuracy", "node_id": "node-2"},
        {"name": "ok", "node_id": "n" * 128, "number_value": -3},
    ]
    assert get_run(client, run_id)["run"]["metrics"] == expected
    assert list_runs(client)["runs"][0]["metrics"] == expected

    assert client.post(url, json={}).get_json() == {}
    gateway_error(client.post(url, json={"metrics": [{"name": "a", "node_id": "n", "number_value": "many"}]}), 400, 3)
    gone = str(uuid.uuid4())
    gateway_error(client.post(f"{RUNS}/{gone}:reportMetrics", json={"metrics": [{"name": "a", "node_id": "n"}]}),
                  404, 5, not_found(gone))


def test_report_node_metrics_caps_a_run_at_fifty(services: Services, client: FlaskClient,
                                                 manifests: dict[str, str]) -> None:
    run_id = manifest_run(client, manifests["json"])["id"]
    metrics = services.metrics
    first = metrics.report_node_metrics(run_id, "pod-1", [
        {"name": f"m{i}", "node_id": "ignored", "number_value": i, "format": "RAW"} for i in range(30)], caller=SYSTEM)
    assert len(first) == 30 and {r.metric_node_id for r in first} == {"pod-1"}
    second = metrics.report_node_metrics(run_id, "pod-2", [{"name": f"m{i}", "number_value": 1} for i in range(30)],
                                         caller=SYSTEM)
    assert len(second) == 20
    assert metrics.report_node_metrics(run_id, "pod-3", [{"name": "late"}], caller=SYSTEM) == []
    stored = get_run(client, run_id)["run"]["metrics"]
    assert len(stored) == 50
    assert stored[0] == {"name": "m0", "node_id": "pod-1", "format": "RAW"}
    assert stored[-1] == {"name": "m19", "node_id": "pod-2", "number_value": 1}


# -- terminate, retry ------------------------------------------------------------------------------------------


def test_terminate(client: FlaskClient, services: Services, manifests: dict[str, str],
                   execution: RecordingExecution) -> None:
    for status in ("", "Pending", "Running"):
        run_id = manifest_run(client, manifests["json"])["id"]
        set_run(services, run_id, status=status)
        execution.calls.clear()
        assert client.post(f"{RUNS}/{run_id}/terminate").get_json() == {}
        assert get_run(client, run_id)["run"]["status"] == "Terminating"
        assert stored_run(services, run_id).terminate_requested is True  # type: ignore[union-attr]
        assert execution.calls == [("terminate_requested", run_id)]
        execution.calls.clear()
        gateway_error(client.post(f"{RUNS}/{run_id}/terminate"), 400, 3,
                      f"Terminate run failed: Invalid input error: Failed to terminate run {run_id}. Row not found.")
        assert execution.calls == []
    for status in ("Succeeded", "Failed", "Error"):
        run_id = manifest_run(client, manifests["json"])["id"]
        set_run(services, run_id, status=status)
        body = gateway_error(client.post(f"{RUNS}/{run_id}/terminate"), 400, 3)
        assert error_message(body) == f"Failed to terminate run {run_id}. Row not found."
        assert get_run(client, run_id)["run"]["status"] == status
    gone = str(uuid.uuid4())
    gateway_error(client.post(f"{RUNS}/{gone}/terminate"), 404, 5,
                  f"Terminate run failed: Check run exist failed: {not_found(gone)}")


def _node(node_id: str, name: str, phase: str, kind: str, **extra: Any) -> dict:
    return {"id": node_id, "name": name, "displayName": name.rsplit(".", 1)[-1], "type": kind, "phase": phase,
            "startedAt": "2024-05-01T10:00:00Z", "finishedAt": "2024-05-01T10:01:00Z", **extra}


def test_retry(client: FlaskClient, services: Services, manifests: dict[str, str],
               execution: RecordingExecution) -> None:
    detail = create_run(client, {"name": "r", "pipeline_spec": {"workflow_manifest": manifests["json"]}})
    run_id = detail["run"]["id"]
    wf = runtime(detail)["metadata"]["name"]
    retry = f"{RUNS}/{run_id}/retry"
    refused = "Retry run failed.: BadRequestError: Workflow must be Failed/Error to retry: workflow cannot be retried"
    for status in ("", "Running", "Succeeded", "Terminating"):
        set_run(services, run_id, status=status)
        body = gateway_error(client.post(retry), 400, 9, refused)
        assert error_message(body) == "Workflow must be Failed/Error to retry"
    gone = str(uuid.uuid4())
    gateway_error(client.post(f"{RUNS}/{gone}/retry"), 404, 5,
                  f"Retry run failed: Check run exist failed: {not_found(gone)}")

    nodes = [
        _node(wf, wf, "Failed", "DAG", message="child failed", children=[f"{wf}-1", f"{wf}-2"]),
        _node(f"{wf}-1", f"{wf}.ok", "Succeeded", "Pod", outputs={"parameters": [{"name": "o", "value": "1"}]},
              _log_path="/nowhere", _attempt=1),
        _node(f"{wf}-2", f"{wf}.broken", "Failed", "Pod", message="Error (exit code 1)"),
        _node(f"{wf}-3", f"{wf}.after", "Omitted", "Skipped"),
        _node(f"{wf}-4", f"{wf}.cond", "Skipped", "Skipped", message="when 'a == b' evaluated false"),
        _node(f"{wf}-5", f"{wf}.loop", "Failed", "TaskGroup"),
        _node(f"{wf}-6", f"{wf}.loop(0:a)", "Error", "DAG", message="boom"),
        _node(f"{wf}-7", f"{wf}.retried", "Failed", "Retry", message="No more retries left"),
        _node(f"{wf}-8", f"{wf}.onExit", "Succeeded", "Pod"),
        _node(f"{wf}-9", f"{wf}.onExit.inner", "Failed", "DAG"),
    ]
    add_nodes(services, run_id, nodes)
    status = {"phase": "Failed", "startedAt": "2024-05-01T10:00:00Z", "finishedAt": "2024-05-01T10:02:00Z",
              "message": "child failed", "progress": "2/5"}
    set_workflow_status(services, run_id, status)
    set_run(services, run_id, status="Failed", finished_at=1714557720, driver_id="exec-1", driver_heartbeat=99,
            terminate_requested=True)

    # A node still pending or running blocks the retry (nothing changes).
    add_nodes(services, run_id, [_node(f"{wf}-10", f"{wf}.stuck", "Pending", "Pod")])
    body = gateway_error(client.post(retry), 409, 10)
    assert error_message(body) == f"Workflow cannot be retried with node {wf}-10 in Pending phase"
    with services.db.transaction() as session:
        session.execute(RunNode.__table__.delete().where(RunNode.node_id == f"{wf}-10"))

    execution.calls.clear()
    assert client.post(retry).get_json() == {}
    assert execution.calls == [("retry_requested", run_id)]
    run = stored_run(services, run_id)
    assert run is not None
    assert (run.status, run.finished_at, run.terminate_requested, run.driver_id, run.driver_heartbeat) == (
        "Running", 0, False, None, 0)
    with services.db.transaction(write=False) as session:
        kept = {row.node_id: (row.phase, json.loads(row.data)) for row in session.scalars(
            select(RunNode).where(RunNode.run_id == run_id))}
    assert set(kept) == {wf, f"{wf}-1", f"{wf}-4", f"{wf}-6"}
    assert kept[f"{wf}-1"] == ("Succeeded", nodes[1])  # untouched, private keys too
    assert kept[f"{wf}-4"] == ("Skipped", nodes[4])
    for node_id in (wf, f"{wf}-6"):
        phase, data = kept[node_id]
        assert phase == "Running" and data["phase"] == "Running"
        assert "message" not in data and "finishedAt" not in data
        assert data["startedAt"] == "2024-05-01T10:00:00Z"

    got = get_run(client, run_id)
    assert got["run"]["status"] == "Running" and got["run"]["finished_at"] == EPOCH
    workflow_status = runtime(got)["status"]
    assert workflow_status["phase"] == "Running"
    assert "finishedAt" not in workflow_status and "message" not in workflow_status
    assert workflow_status["startedAt"] == "2024-05-01T10:00:00Z"
    assert set(workflow_status["nodes"]) == set(kept)
    assert runtime(got)["metadata"]["labels"]["workflows.argoproj.io/phase"] == "Running"
    assert "workflows.argoproj.io/completed" not in runtime(got)["metadata"]["labels"]
    # Running now: a second retry is refused.
    gateway_error(client.post(retry), 400, 9, refused)


# -- reading: status, artifacts, logs --------------------------------------------------------------------------


def test_get_renders_the_workflow_status(client: FlaskClient, services: Services, manifests: dict[str, str]) -> None:
    detail = create_run(client, {"name": "r", "pipeline_spec": {"workflow_manifest": manifests["json"]}})
    run_id = detail["run"]["id"]
    wf = runtime(detail)["metadata"]["name"]
    status = {"phase": "Succeeded", "startedAt": "2024-05-01T10:00:00Z", "finishedAt": "2024-05-01T10:01:07Z",
              "progress": "1/1", "_driver": "private"}
    pod = _node(f"{wf}-1", f"{wf}.echo", "Succeeded", "Pod", boundaryID=wf, templateName="echo",
                outputs={"parameters": [{"name": "echo-Output", "value": "hello"}], "exitCode": "0"},
                _log_path="/tmp/x", _attempt=2)
    dag = _node(wf, wf, "Succeeded", "DAG", templateName="runs-api", children=[f"{wf}-1"],
                outboundNodes=[f"{wf}-1"])
    add_nodes(services, run_id, [dag, pod])
    set_workflow_status(services, run_id, status)
    set_run(services, run_id, status="Succeeded", finished_at=1714557667)

    got = get_run(client, run_id)
    assert got["run"]["status"] == "Succeeded"
    assert got["run"]["finished_at"] == "2024-05-01T10:01:07Z"
    workflow = runtime(got)
    assert workflow["metadata"]["labels"]["workflows.argoproj.io/phase"] == "Succeeded"
    assert workflow["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"
    assert workflow["status"] == {
        "phase": "Succeeded", "startedAt": "2024-05-01T10:00:00Z", "finishedAt": "2024-05-01T10:01:07Z",
        "progress": "1/1",
        "nodes": {wf: dag, f"{wf}-1": {k: v for k, v in pod.items() if not k.startswith("_")}},
    }
    assert workflow["spec"] == runtime(detail)["spec"]
    assert list_runs(client)["runs"][0]["status"] == "Succeeded"


def test_read_artifact(client: FlaskClient, services: Services, manifests: dict[str, str], artifacts_dir: Path) -> None:
    run_id = manifest_run(client, manifests["json"])["id"]
    key = f"artifacts/wf/{run_id}-1/mlpipeline-ui-metadata.tgz"
    payload = bytes(range(256)) * 3
    (artifacts_dir / key).parent.mkdir(parents=True)
    (artifacts_dir / key).write_bytes(payload)
    add_nodes(services, run_id, [_node("pod-1", "wf.step", "Succeeded", "Pod", outputs={"artifacts": [
        {"name": "step-Output", "path": "/tmp/outputs/Output/data"},
        {"name": "mlpipeline-ui-metadata", "path": "/tmp/outputs/ui/data", "s3": {"key": key}},
        {"name": "missing", "s3": {"key": "artifacts/not-there.tgz"}},
    ]})])
    read = f"{RUNS}/{run_id}/nodes/pod-1/artifacts/mlpipeline-ui-metadata:read"
    response = client.get(read)
    assert response.status_code == 200 and response.mimetype == "application/json"
    data = response.get_json()["data"]
    assert re.fullmatch(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", data)
    assert base64.b64decode(data) == payload

    def request_text(node: str, name: str) -> str:
        return f'run_id:"{run_id}" node_id:"{node}" artifact_name:"{name}"'

    for node, name in (("pod-1", "step-Output"), ("pod-1", "missing"), ("pod-1", "nope"), ("pod-9", "x")):
        body = gateway_error(client.get(f"{RUNS}/{run_id}/nodes/{node}/artifacts/{name}:read"), 404, 5)
        path = f"runs/{run_id}/nodes/{node}/artifacts/{name}"
        assert error_message(body) == f"artifact {path} not found."
        assert body["error"] == (f"failed to read artifact '{request_text(node, name)}'.: "
                                 f"ResourceNotFoundError: artifact {path} not found.")
    gone = str(uuid.uuid4())
    body = gateway_error(client.get(f"{RUNS}/{gone}/nodes/pod-1/artifacts/x:read"), 404, 5)
    assert body["error"].endswith(f"'.: {not_found(gone)}")


def test_read_artifact_refuses_an_artifact_over_the_limit(
    settings: Settings, manifests: dict[str, str], artifacts_dir: Path
) -> None:
    application = create_app(settings.replace(executor_enabled=False, max_artifact_read_bytes=1000))
    services: Services = application.extensions["kfp_backend.services"]
    try:
        client = application.test_client()
        run_id = manifest_run(client, manifests["json"])["id"]
        for name, size in (("small", 1000), ("large", 1001)):
            key = f"artifacts/{run_id}/pod-1/{name}.tgz"
            (artifacts_dir / key).parent.mkdir(parents=True, exist_ok=True)
            (artifacts_dir / key).write_bytes(b"x" * size)
        add_nodes(services, run_id, [_node("pod-1", "wf.step", "Succeeded", "Pod", outputs={"artifacts": [
            {"name": name, "s3": {"key": f"artifacts/{run_id}/pod-1/{name}.tgz"}} for name in ("small", "large")
        ]})])
        response = client.get(f"{RUNS}/{run_id}/nodes/pod-1/artifacts/small:read")
        assert response.status_code == 200 and base64.b64decode(response.get_json()["data"]) == b"x" * 1000
        body = gateway_error(client.get(f"{RUNS}/{run_id}/nodes/pod-1/artifacts/large:read"), 400, 9)
        assert error_message(body) == ("artifact large is 1001 bytes, more than ReadArtifact returns on this server "
                                       "(1000 bytes, KFP_BACKEND_MAX_ARTIFACT_READ_BYTES)")
        assert body["error"].startswith(f"failed to read artifact 'run_id:\"{run_id}\" node_id:\"pod-1\" "
                                        f"artifact_name:\"large\"'.: FailedPreconditionError: artifact large is")
    finally:
        services.db.dispose()


def test_node_log(client: FlaskClient, services: Services, manifests: dict[str, str], tmp_path: Path) -> None:
    run_id = manifest_run(client, manifests["json"])["id"]
    log_file = tmp_path / "step.log"
    log_file.write_text("hello from the step\nsecond line ✓\n")
    add_nodes(services, run_id, [
        _node("pod-1", "wf.step", "Succeeded", "Pod", _log_path=str(log_file)),
        _node("dag", "wf", "Succeeded", "DAG"),
        _node("pod-2", "wf.gone", "Failed", "Pod", _log_path=str(tmp_path / "deleted.log")),
    ])
    response = client.get(f"{RUNS}/{run_id}/nodes/pod-1/log")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "hello from the step\nsecond line ✓\n"
    for node in ("dag", "pod-2"):
        body = gateway_error(client.get(f"{RUNS}/{run_id}/nodes/{node}/log"), 404, 5)
        assert error_message(body) == f"Node {node} of run {run_id} has no log."
    gateway_error(client.get(f"{RUNS}/{run_id}/nodes/nope/log"), 404, 5,
                  "Read node log failed.: ResourceNotFoundError: Node nope not found.")
    gone = str(uuid.uuid4())
    gateway_error(client.get(f"{RUNS}/{gone}/nodes/pod-1/log"), 404, 5, f"Read node log failed.: {not_found(gone)}")


def test_node_log_by_byte_range(client: FlaskClient, services: Services, manifests: dict[str, str],
                                tmp_path: Path) -> None:
    run_id = manifest_run(client, manifests["json"])["id"]
    log_file = tmp_path / "step.log"
    text = b"".join(b"%d\n" % number for number in range(10_000))
    log_file.write_bytes(text)
    add_nodes(services, run_id, [_node("pod-1", "wf.step", "Succeeded", "Pod", _log_path=str(log_file))])
    url = f"{RUNS}/{run_id}/nodes/pod-1/log"

    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Length"] == str(len(text)) and whole.data == text
    for header, start, end in (("bytes=-6", len(text) - 6, len(text)), ("bytes=0-9", 0, 10),
                               ("bytes=100-", 100, len(text)), ("bytes=5-5", 5, 6),
                               (f"bytes=-{len(text) + 50}", 0, len(text)), ("bytes=20-999999", 20, len(text))):
        part = client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.data == text[start:end], header
        assert part.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(text)}", header
        assert part.headers["Content-Length"] == str(end - start) and part.mimetype == "text/plain"
    assert client.get(url, headers={"Range": "bytes=-6"}).data == b"\n9998\n9999\n"[-6:]
    head = client.head(url, headers={"Range": "bytes=-6"})
    assert head.status_code == 206 and head.data == b"" and head.headers["Content-Length"] == "6"

    # What a server may ignore gets the whole log: another unit, a malformed or multi-range header, If-Range.
    for headers in ({"Range": "lines=1-2"}, {"Range": "bytes=abc"}, {"Range": "bytes=5-2"},
                    {"Range": "bytes=0-1,5-6"}, {"Range": "bytes=-"}, {"Range": "bytes=-6", "If-Range": "x"}):
        response = client.get(url, headers=headers)
        assert response.status_code == 200 and response.data == text, headers
    # A range starting past the end: 416 with the JSON error and the log's length.
    for header in (f"bytes={len(text)}-", f"bytes={len(text) + 7}-{len(text) + 9}", "bytes=-0"):
        response = client.get(url, headers={"Range": header})
        body = gateway_error(response, 416, 11)
        assert body["error"] == "Requested Range Not Satisfiable", header
        assert response.headers["Content-Range"] == f"bytes */{len(text)}", header
    # An empty log (a step that has not written yet) is answered whole, whatever the range.
    log_file.write_bytes(b"")
    for header in ("bytes=-100", "bytes=0-"):
        response = client.get(url, headers={"Range": header})
        assert (response.status_code, response.data, response.headers["Content-Length"]) == (200, b"", "0")


def test_node_log_of_a_running_step_is_read_as_long_as_it_was_when_opened(
    client: FlaskClient, services: Services, manifests: dict[str, str], tmp_path: Path
) -> None:
    from kfp_backend.services.runs import StepLog, open_local_file

    run_id = manifest_run(client, manifests["json"])["id"]
    log_file = tmp_path / "step.log"
    log_file.write_bytes(b"first line\n")
    add_nodes(services, run_id, [_node("pod-1", "wf.step", "Running", "Pod", _log_path=str(log_file))])

    def open_then_step_writes(path: str) -> StepLog | None:
        opened = open_local_file(path)
        with open(path, "ab") as step:
            step.write(b"written while the response is sent\n")
        return opened

    services.runs.log_reader = open_then_step_writes
    for headers, status in (({}, 200), ({"Range": "bytes=6-"}, 206)):
        log_file.write_bytes(b"first line\n")
        response = client.get(f"{RUNS}/{run_id}/nodes/pod-1/log", headers=headers)
        assert response.status_code == status
        assert response.data == b"first line\n"[6 if status == 206 else 0:]
        assert response.headers["Content-Length"] == str(len(response.data))
    # The next request reads on.
    log_file.write_bytes(b"first line\n")
    services.runs.log_reader = open_local_file
    response = client.get(f"{RUNS}/{run_id}/nodes/pod-1/log", headers={"Range": "bytes=-6"})
    assert (response.status_code, response.data) == (206, b" line\n")


def test_concurrent_reports_of_one_metric_store_exactly_one(
    client: FlaskClient, services: Services, manifests: dict[str, str]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from kfp_backend.services.metrics import ReportedMetric, ReportStatus

    run_id = manifest_run(client, manifests["json"])["id"]

    def report(value: int) -> ReportStatus:
        (result,) = services.metrics.report(run_id, [ReportedMetric("acc", "pod", float(value))], caller=SYSTEM)
        return result.status

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(report, range(8)))
    assert statuses.count(ReportStatus.OK) == 1
    assert statuses.count(ReportStatus.DUPLICATE_REPORTING) == 7
    (metric,) = get_run(client, run_id)["run"]["metrics"]
    # The one stored is the one that was answered OK (value i came from call i; 0 is left out of the JSON).
    assert metric.get("number_value", 0) == statuses.index(ReportStatus.OK)
