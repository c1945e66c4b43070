"""openapi/v2beta1.yaml: a valid OpenAPI 3 document that matches the v2beta1 routes and the server's answers.

Hand-written calls check every documented status and body; generated requests (schemathesis, deterministic
examples) check that nothing answers a 5xx or leaves the document. See tests/api/test_openapi.py for v1beta1.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kfp_backend.api.v2 import V2_PREFIX
from kfp_backend.api.v2.openapi import V2_OPENAPI_PATH, load_v2_document
from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.store.migrations import upgrade
from tests import exit_retry_pipelines
from tests.api.test_v2_pipelines import IR, IR_YAML
from tests.api.test_v2_recurring_runs import WORKFLOW as RECURRING_WORKFLOW

SCHEMA_URL = f"{V2_PREFIX}/openapi.json"
ANY_METHOD_PATHS = {f"{V2_PREFIX}/healthz"}  # answered on every method, documented as GET
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
MAX_EXAMPLES = int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def v2_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    directory = tmp_path_factory.mktemp("openapi-v2")
    url = f"sqlite:///{directory}/db.sqlite"
    upgrade(url)
    application = create_app(Settings(database_url=url, data_dir=Path(directory) / "data", threads=4,
                                      executor_enabled=False, scheduler_enabled=False))
    yield application
    shutdown(application)


def _operations() -> Iterator[tuple[str, str, dict]]:
    for path, item in load_v2_document()["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def _normalize(path: str) -> str:
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_document_is_valid_openapi_3() -> None:
    schema = schemathesis.openapi.from_path(V2_OPENAPI_PATH)
    schema.validate()
    assert schema.raw_schema["openapi"].startswith("3.0.")
    assert [result for result in schema.get_all_operations() if type(result).__name__ != "Ok"] == []


def test_served_document_is_the_yaml(v2_app: Flask) -> None:
    response = v2_app.test_client().get(SCHEMA_URL)
    assert response.status_code == 200 and response.get_json() == load_v2_document()


def test_routes_and_documented_operations_match(v2_app: Flask) -> None:
    routed = set()
    for rule in v2_app.url_map.iter_rules():
        if rule.rule.startswith(V2_PREFIX + "/"):
            methods = {"GET"} if rule.rule in ANY_METHOD_PATHS else set(rule.methods or ()) - IMPLICIT_METHODS
            routed |= {(_normalize(rule.rule), method) for method in methods}
    documented = {(_normalize(path), method.upper()) for path, method, _ in _operations()}
    assert sorted(routed - documented) == [], "routes missing from openapi/v2beta1.yaml"
    assert sorted(documented - routed) == [], "documented operations the server does not route"


def documented_caller(app: Flask) -> Callable[..., Any]:
    """`call(method, template, status, path, **kwargs)`: a request through the test client whose status must
    be the one expected and documented for the operation, and whose response must match the document."""
    client = app.test_client()
    schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, app)

    def call(method: str, template: str, status: int = 200, path: dict | None = None, **kwargs: Any) -> Any:
        response = client.open(V2_PREFIX + template.format(**(path or {})), method=method, **kwargs)
        assert response.status_code == status, response.get_data(as_text=True)
        operation = schema[V2_PREFIX + template][method]
        assert str(status) in operation.definition.raw["responses"], f"{status} is not documented"
        operation.validate_response(response)
        return response.get_json()

    return call


def test_hand_written_calls_match_the_document(v2_app: Flask) -> None:
    call = documented_caller(v2_app)

    call("GET", "/healthz")
    experiment = call("POST", "/experiments", json={"display_name": "checked", "description": "d"})
    one = {"experiment_id": experiment["experiment_id"]}
    call("GET", "/experiments/{experiment_id}", path=one)
    page = call("GET", "/experiments", query_string={"page_size": 1, "sort_by": "display_name desc"})
    assert page["next_page_token"]
    call("GET", "/experiments", query_string={"page_token": page["next_page_token"]})
    call("GET", "/experiments", 400, query_string={"filter": "{"})
    call("POST", "/experiments", 409, json={"display_name": "checked"})
    call("POST", "/experiments", 400, json={"unknown": 1})
    call("POST", "/experiments", 415, data="x", content_type="text/plain")
    call("POST", "/experiments/{experiment_id}:archive", path=one)
    call("POST", "/experiments/{experiment_id}:unarchive", path=one)
    call("DELETE", "/experiments/{experiment_id}", path=one)
    for method, template in (("GET", "/experiments/{experiment_id}"), ("DELETE", "/experiments/{experiment_id}"),
                             ("POST", "/experiments/{experiment_id}:archive"),
                             ("POST", "/experiments/{experiment_id}:unarchive")):
        call(method, template, 404, path=one)


def test_hand_written_pipeline_calls_match_the_document(v2_app: Flask) -> None:
    call = documented_caller(v2_app)

    def upload(template: str, status: int = 200, **query: str) -> Any:
        form = {"uploadfile": (io.BytesIO(IR_YAML.encode()), "p.yaml")}
        return call("POST", template, status, query_string=query, data=form, content_type="multipart/form-data")

    pipeline = upload("/pipelines/upload", name="documented")
    one = {"pipeline_id": pipeline["pipeline_id"]}
    upload("/pipelines/upload", 409, name="documented")
    upload("/pipelines/upload", 400, name="a", display_name="b")
    version = upload("/pipelines/upload_version", pipelineid=pipeline["pipeline_id"], name="second")
    upload("/pipelines/upload_version", 404, pipelineid="nowhere")
    call("POST", "/pipelines/upload", 415, data="x", content_type="text/plain")
    both = {**one, "pipeline_version_id": version["pipeline_version_id"]}
    call("GET", "/pipelines/{pipeline_id}", path=one)
    call("GET", "/pipelines/names/{name}", path={"name": "documented"})
    call("GET", "/pipelines/names/{name}", 404, path={"name": "nowhere"})
    call("GET", "/pipelines", query_string={"page_size": 1, "sort_by": "display_name desc"})
    call("GET", "/pipelines", 400, query_string={"filter": "{"})
    call("GET", "/pipelines/{pipeline_id}/versions", path=one, query_string={"page_size": 1})
    call("GET", "/pipelines/{pipeline_id}/versions/{pipeline_version_id}", path=both)
    call("POST", "/pipelines/{pipeline_id}/versions", path=one, json={"name": "inline", "pipeline_spec": IR})
    call("POST", "/pipelines/{pipeline_id}/versions", 409, path=one, json={"name": "inline", "pipeline_spec": IR})
    call("POST", "/pipelines/{pipeline_id}/versions", 400, path=one, json={"name": "x"})
    empty = call("POST", "/pipelines", json={"name": "empty"})
    call("POST", "/pipelines", 409, json={"name": "empty"})
    call("POST", "/pipelines/create", json={"pipeline": {"name": "created"}, "pipeline_version": {"pipeline_spec": IR}})
    call("POST", "/pipelines/create", 400, json={"pipeline": {"name": "x"}})
    call("DELETE", "/pipelines/{pipeline_id}", 400, path=one)
    call("DELETE", "/pipelines/{pipeline_id}/versions/{pipeline_version_id}", path=both)
    call("DELETE", "/pipelines/{pipeline_id}/versions/{pipeline_version_id}", 404, path=both)
    call("DELETE", "/pipelines/{pipeline_id}", path=one, query_string={"cascade": "true"})
    call("DELETE", "/pipelines/{pipeline_id}", path={"pipeline_id": empty["pipeline_id"]})
    call("GET", "/pipelines/{pipeline_id}", 404, path=one)


def _can_be_made_invalid(operation: dict) -> bool:
    """Whether a negative case exists: a body, or a parameter that is not free text (page_size)."""
    components = load_v2_document()["components"]["parameters"]
    parameters = [components[p["$ref"].rsplit("/", 1)[1]] for p in operation.get("parameters", [])]
    return "requestBody" in operation or any(p["schema"] != {"type": "string"} for p in parameters)


FUZZ_CASES = sorted(
    (f"{method.upper()} {path}", mode)
    for path, method, operation in _operations()
    if path != SCHEMA_URL
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or _can_be_made_invalid(operation)
)


@pytest.mark.parametrize(("label", "mode"), FUZZ_CASES, ids=[f"{label}-{mode.value}" for label, mode in FUZZ_CASES])
def test_generated_requests_conform(v2_app: Flask, label: str, mode: GenerationMode) -> None:
    operation = schemathesis.openapi.from_wsgi(SCHEMA_URL, v2_app).find_operation_by_label(label)
    assert operation is not None, label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


def test_hand_written_recurring_run_calls_match_the_document(v2_app: Flask) -> None:
    call = documented_caller(v2_app)

    workflow = yaml.safe_load(RECURRING_WORKFLOW)
    body = {"display_name": "documented", "pipeline_spec": workflow, "max_concurrency": "2", "mode": "ENABLE",
            "trigger": {"cron_schedule": {"cron": "0 0 * * * *", "start_time": "2999-01-01T00:00:00Z"}},
            "runtime_config": {"parameters": {"word": "hi", "count": 2, "flags": {"a": [1]}}}}
    created = call("POST", "/recurringruns", json=body)
    one = {"recurring_run_id": created["recurring_run_id"]}
    call("POST", "/recurringruns", json={**body, "trigger": {"periodic_schedule": {"interval_second": 60}},
                                         "mode": "DISABLE"})
    call("POST", "/recurringruns", 400, json={**body, "max_concurrency": 0})
    call("POST", "/recurringruns", 400, json={**body, "pipeline_spec": IR})
    call("POST", "/recurringruns", 404, json={**body, "experiment_id": "nowhere"})
    call("POST", "/recurringruns", 415, data="x", content_type="text/plain")
    call("GET", "/recurringruns/{recurring_run_id}", path=one)
    page = call("GET", "/recurringruns", query_string={"page_size": 1, "sort_by": "display_name desc"})
    assert page["next_page_token"]
    call("GET", "/recurringruns", query_string={"experiment_id": created["experiment_id"]})
    call("GET", "/recurringruns", 400, query_string={"filter": "{"})
    call("POST", "/recurringruns/{recurring_run_id}:disable", path=one)
    call("POST", "/recurringruns/{recurring_run_id}:enable", path=one)
    call("DELETE", "/recurringruns/{recurring_run_id}", path=one)
    for method, template in (("GET", "/recurringruns/{recurring_run_id}"),
                             ("DELETE", "/recurringruns/{recurring_run_id}"),
                             ("POST", "/recurringruns/{recurring_run_id}:enable"),
                             ("POST", "/recurringruns/{recurring_run_id}:disable")):
        call(method, template, 404, path=one)


def test_hand_written_run_calls_match_the_document(v2_app: Flask) -> None:
    call = documented_caller(v2_app)

    argo = json.loads(exit_retry_pipelines.workflow_manifest(exit_retry_pipelines.exit_with_parameter("openapi")))
    run = call("POST", "/runs", json={"display_name": "documented", "pipeline_spec": argo,
                                      "runtime_config": {"parameters": {"message": "m"}}})
    one = {"run_id": run["run_id"]}
    call("POST", "/runs", 400, json={"display_name": "x"})
    call("POST", "/runs", 404, json={"display_name": "x", "pipeline_spec": argo, "experiment_id": "nowhere"})
    call("POST", "/runs", 415, data="x", content_type="text/plain")
    call("GET", "/runs/{run_id}", path=one)
    call("GET", "/runs", query_string={"page_size": 1, "sort_by": "display_name desc"})
    call("GET", "/runs", 400, query_string={"filter": "{"})
    call("GET", "/runs/{run_id}/nodes/{node_id}/artifacts/{artifact_name}:read", 404,
         path={**one, "node_id": "n", "artifact_name": "a"})
    call("POST", "/runs/{run_id}:archive", path=one)
    call("POST", "/runs/{run_id}:unarchive", path=one)
    call("POST", "/runs/{run_id}:retry", 400, path=one)
    call("POST", "/runs/{run_id}:terminate", path=one)
    call("GET", "/runs/{run_id}", path=one)
    call("DELETE", "/runs/{run_id}", path=one)
    for method, template in (("GET", "/runs/{run_id}"), ("DELETE", "/runs/{run_id}"),
                             ("POST", "/runs/{run_id}:archive"), ("POST", "/runs/{run_id}:unarchive"),
                             ("POST", "/runs/{run_id}:terminate"), ("POST", "/runs/{run_id}:retry")):
        call(method, template, 404, path=one)
