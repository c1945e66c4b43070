"""Text a database cannot store as given is refused the same way on every database: a 400 naming the field.

PostgreSQL refuses NUL in text while SQLite and MariaDB keep it; a value longer than its column fails on
PostgreSQL and MariaDB but is kept whole by SQLite. Each request below is refused before anything is
written, with KFP's error body, whatever the database; the largest values allowed are stored and read
back intact (4-byte characters included: MariaDB's columns are utf8mb4).
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from kfp_backend.services.metrics import MAX_METRICS_PER_REPORT
from tests.gateway_errors import error_message, gateway_error
from tests.workflow_fixtures import compiled

API = "/apis/v1beta1"
NUL = "\x00"
# Four UTF-8 bytes each, one character: what a utf8mb4 column must hold.
ROCKET = "\U0001f680"


@pytest.fixture(scope="module")
def manifest() -> str:
    return json.dumps(compiled("params"))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("packages") / "params.yaml"
    path.write_text(yaml.safe_dump(compiled("params")))
    return path


def refused(response: Any, field: str, problem: str = "contains a NUL character") -> str:
    """A gateway-shaped 400 (InvalidArgument) whose message names `field`; returns the message."""
    body = gateway_error(response, 400, 3)
    assert f"{field} {problem}" in error_message(body), body
    return body["error"]


def upload_refused(response: Any, field: str, problem: str = "contains a NUL character") -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error_message", "error_details"}, body
    assert f"{field} {problem}" in body["error_message"], body


def ok(response: Any) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def upload(client: FlaskClient, package: Path, endpoint: str = "upload", **query: str) -> Any:
    data = {"uploadfile": (io.BytesIO(package.read_bytes()), package.name)}
    return client.post(f"{API}/pipelines/{endpoint}", query_string=query, data=data,
                       content_type="multipart/form-data")


def run_body(manifest: str, **fields: Any) -> dict:
    spec = {"workflow_manifest": manifest, "parameters": [{"name": "required", "value": "r"}]}
    spec.update(fields.pop("pipeline_spec", {}))
    return {"name": f"run-{uuid.uuid4().hex[:8]}", "pipeline_spec": spec, **fields}


def job_body(manifest: str, **fields: Any) -> dict:
    body = run_body(manifest, **fields)
    body.setdefault("max_concurrency", "1")
    body.setdefault("trigger", {"periodic_schedule": {"interval_second": "3600"}})
    return body


def names(client: FlaskClient, collection: str) -> list[str]:
    listed = ok(client.get(f"{API}/{collection}", query_string={"page_size": "100"}))
    return [item["name"] for item in listed.get(collection, [])]


def test_nul_in_experiments_runs_and_jobs(client: FlaskClient, manifest: str) -> None:
    experiment = ok(client.post(f"{API}/experiments", json={"name": "holder"}))
    cases: list[tuple[str, dict, str]] = [
        ("experiments", {"name": f"a{NUL}b"}, "experiment.name"),
        ("experiments", {"name": "e", "description": f"a{NUL}b"}, "experiment.description"),
        ("runs", run_body(manifest, name=f"r{NUL}"), "run.name"),
        ("runs", run_body(manifest, description=f"d{NUL}"), "run.description"),
        ("runs", run_body(manifest, service_account=f"sa{NUL}"), "run.service_account"),
        ("runs", run_body(manifest, pipeline_spec={"parameters": [{"name": "required", "value": f"v{NUL}"}]}),
         "run.pipeline_spec.parameters[0].value"),
        ("runs", run_body(manifest, pipeline_spec={"parameters": [
            {"name": "required", "value": "v"}, {"name": f"greet{NUL}ing", "value": "v"}]}),
         "run.pipeline_spec.parameters[1].name"),
        ("runs", run_body(manifest.replace('"params-and-outputs', f'"params-and-{NUL}outputs', 1)),
         "run.pipeline_spec.workflow_manifest"),
        ("runs", run_body("", pipeline_spec={"pipeline_id": f"p{NUL}"}), "run.pipeline_spec.pipeline_id"),
        ("runs", run_body(manifest, resource_references=[
            {"key": {"type": "EXPERIMENT", "id": f"{experiment['id']}{NUL}"}, "relationship": "OWNER"}]),
         "run.resource_references[0].key.id"),
        ("jobs", job_body(manifest, name=f"j{NUL}"), "job.name"),
        ("jobs", job_body(manifest, description=f"d{NUL}"), "job.description"),
        ("jobs", job_body(manifest, pipeline_spec={"parameters": [{"name": "required", "value": f"v{NUL}"}]}),
         "job.pipeline_spec.parameters[0].value"),
        ("jobs", job_body(manifest, trigger={"cron_schedule": {"cron": f"0 0 * * * *{NUL}"}}),
         "job.trigger.cron_schedule.cron"),
    ]
    for collection, body, field in cases:
        message = refused(client.post(f"{API}/{collection}", json=body), field)
        if collection != "experiments":
            assert message.startswith(f"Validate create {collection[:-1]} request failed.: Invalid input error: ")
    # Nothing was written: the refused requests left no row behind.
    assert sorted(names(client, "experiments")) == ["Default", "holder"]
    assert names(client, "runs") == [] and names(client, "jobs") == []


def test_nul_in_pipelines_and_versions(client: FlaskClient, package: Path) -> None:
    url = package.as_uri()
    refused(client.post(f"{API}/pipelines", json={"url": {"pipeline_url": url}, "name": f"p{NUL}"}), "pipeline.name")
    refused(client.post(f"{API}/pipelines", json={"url": {"pipeline_url": url}, "description": f"d{NUL}"}),
            "pipeline.description")
    refused(client.post(f"{API}/pipelines", json={"url": {"pipeline_url": url + NUL}}), "pipeline.url.pipeline_url")
    upload_refused(upload(client, package, name=f"p{NUL}"), "pipeline.name")
    upload_refused(upload(client, package, name="p", description=f"d{NUL}"), "pipeline.description")
    assert names(client, "pipelines") == []

    pipeline = ok(upload(client, package, name="p"))
    upload_refused(upload(client, package, "upload_version", pipelineid=pipeline["id"], name=f"v{NUL}"),
                   "pipeline_version.name")
    upload_refused(upload(client, package, "upload_version", pipelineid=pipeline["id"], description=f"d{NUL}"),
                   "pipeline_version.description")
    owner = [{"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "OWNER"}]
    version = {"package_url": {"pipeline_url": url}, "resource_references": owner}
    refused(client.post(f"{API}/pipeline_versions", json={**version, "name": f"v{NUL}"}), "pipeline_version.name")
    refused(client.post(f"{API}/pipeline_versions", json={**version, "name": "v", "description": f"d{NUL}"}),
            "pipeline_version.description")
    refused(client.post(f"{API}/pipeline_versions", json={**version, "name": "v", "code_source_url": f"u{NUL}"}),
            "pipeline_version.code_source_url")
    nul_owner = [{"key": {"type": "PIPELINE", "id": f"{pipeline['id']}{NUL}"}, "relationship": "OWNER"}]
    refused(client.post(f"{API}/pipeline_versions", json={**version, "resource_references": nul_owner}),
            "pipeline_version.resource_references[0].key.id")
    upload_refused(upload(client, package, "upload_version", pipelineid=f"{pipeline['id']}{NUL}"), "pipelineid")
    versions = ok(client.get(f"{API}/pipeline_versions", query_string={
        "resource_key.type": "PIPELINE", "resource_key.id": pipeline["id"]}))
    assert [v["name"] for v in versions["versions"]] == ["p"]


def test_longest_values_are_stored_intact_and_one_more_is_refused(client: FlaskClient, manifest: str) -> None:
    # 255 four-byte characters: a full VARCHAR(255) of utf8mb4; 65535 bytes: a full TEXT.
    name = ROCKET * 255
    description = ROCKET * 16383 + "abc"
    assert len(description.encode()) == 65535
    experiment = ok(client.post(f"{API}/experiments", json={"name": name, "description": description}))
    stored = ok(client.get(f"{API}/experiments/{experiment['id']}"))
    assert stored["name"] == name and stored["description"] == description

    too_long = description + "d"
    refused(client.post(f"{API}/experiments", json={"name": "e", "description": too_long}),
            "experiment.description", "is longer than 65535 bytes")
    refused(client.post(f"{API}/runs", json=run_body(manifest, description=too_long)),
            "run.description", "is longer than 65535 bytes")
    refused(client.post(f"{API}/jobs", json=job_body(manifest, description=too_long)),
            "job.description", "is longer than 65535 bytes")
    refused(client.post(f"{API}/runs", json=run_body(manifest, name=ROCKET * 256)), "Run name", "is too long")
    # A reference id is looked up, never stored as given: a long JOB id meets the JOB refusal, not a size rule.
    job_reference = [{"key": {"type": "JOB", "id": "j" * 37}, "relationship": "CREATOR"}]
    refused(client.post(f"{API}/runs", json=run_body(manifest, resource_references=job_reference)),
            "Unsupported resource type: JOB.", "Only the scheduler links")

    run = ok(client.post(f"{API}/runs", json=run_body(manifest, name=name, description=description, pipeline_spec={
        "parameters": [{"name": "required", "value": ROCKET * 100}]})))["run"]
    stored_run = ok(client.get(f"{API}/runs/{run['id']}"))["run"]
    assert stored_run["name"] == name and stored_run["description"] == description
    assert stored_run["pipeline_spec"]["parameters"] == [{"name": "required", "value": ROCKET * 100}]
    assert sorted(names(client, "experiments")) == sorted(["Default", name])


def test_metrics(client: FlaskClient, manifest: str) -> None:
    run = ok(client.post(f"{API}/runs", json=run_body(manifest)))["run"]
    report = f"{API}/runs/{run['id']}:reportMetrics"

    def metrics(count: int, node_id: str = "node") -> dict:
        return {"metrics": [{"name": f"m{i}", "node_id": node_id, "number_value": i} for i in range(count)]}

    results = ok(client.post(report, json=metrics(1, f"no{NUL}de")))["results"]
    assert results == [{"metric_name": "m0", "metric_node_id": f"no{NUL}de", "status": "INVALID_ARGUMENT",
                        "message": "metric.node_id contains a NUL character, which cannot be stored."}]
    message = refused(client.post(report, json=metrics(MAX_METRICS_PER_REPORT + 1)),
                      "metrics:", f"at most {MAX_METRICS_PER_REPORT} metrics per report")
    assert message.endswith(f"got {MAX_METRICS_PER_REPORT + 1}.")
    assert "metrics" not in ok(client.get(f"{API}/runs/{run['id']}"))["run"]

    results = ok(client.post(report, json=metrics(MAX_METRICS_PER_REPORT)))["results"]
    assert [r["status"] for r in results] == ["OK"] * MAX_METRICS_PER_REPORT
    assert len(ok(client.get(f"{API}/runs/{run['id']}"))["run"]["metrics"]) == MAX_METRICS_PER_REPORT
