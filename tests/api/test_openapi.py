"""openapi/v1beta1.yaml: a valid OpenAPI 3 document that matches the routes and the responses of the server.

Everything runs on apps built over fresh SQLite files (fast, and independent of the databases the rest of the
suite is parametrized over). The property tests drive schemathesis over every documented operation, with
deterministic examples; for a longer, random exploration run e.g.

    OPENAPI_FUZZ_EXAMPLES=500 OPENAPI_FUZZ_RANDOM=1 .venv/bin/pytest tests/api/test_openapi.py -k generated
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kfp_backend.api import API_PREFIX
from kfp_backend.api.openapi import OPENAPI_PATH, load_document
from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.store.migrations import upgrade
from kfp_backend.store.models import Base
from tests.http_server import route_server

SCHEMA_URL = f"{API_PREFIX}/openapi.json"
# Answered on every method, like upstream's, but documented as GET only.
ANY_METHOD_PATHS = {f"{API_PREFIX}/healthz"}
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
MAX_EXAMPLES = int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "30"))
DERANDOMIZE = os.environ.get("OPENAPI_FUZZ_RANDOM", "") != "1"

WORKFLOW = b"""\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: openapi-check-
spec:
  entrypoint: say
  arguments:
    parameters:
      - name: message
        value: hello
      - name: times
  templates:
    - name: say
      container:
        image: alpine:3.19
        command: [echo, "{{workflow.parameters.message}}"]
"""


def _build_app(directory: Path, **overrides: Any) -> Flask:
    url = f"sqlite:///{directory}/db.sqlite"
    upgrade(url)
    # A short fetch timeout: a generated pipeline URL must never hold the test up.
    # No executor: the checks look at runs as created (a finished run could not be terminated).
    settings_ = Settings(database_url=url, data_dir=directory / "data", threads=4, url_fetch_timeout_seconds=2.0,
                         executor_enabled=False)
    return create_app(settings_.replace(**overrides))


def _dispose(application: Flask) -> None:
    shutdown(application)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    application = _build_app(tmp_path_factory.mktemp("openapi"))
    yield application
    _dispose(application)


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi(SCHEMA_URL, fuzz_app)


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    application = _build_app(tmp_path)
    yield application
    _dispose(application)


def _normalize(path: str) -> str:
    """One spelling for Flask rules (`<id>`, `<path:x>`) and OpenAPI templates (`{id}`)."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def _operations() -> Iterator[tuple[str, str, dict, dict]]:
    """(path, method, path item, operation) for every documented operation."""
    for path, item in load_document()["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, item, operation


# --- the document itself -------------------------------------------------------------------------------------


def test_document_is_valid_openapi_3() -> None:
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    schema.validate()  # against the OpenAPI 3.0 meta-schema
    assert schema.raw_schema["openapi"].startswith("3.0.")
    failures = [result for result in schema.get_all_operations() if type(result).__name__ != "Ok"]
    assert not failures, failures


def test_every_reference_resolves() -> None:
    document = load_document()

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        assert ref.startswith("#/"), ref
        target: Any = document
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"unresolved {ref}"
            target = target[part]


def test_served_document_is_the_yaml(sqlite_app: Flask) -> None:
    response = sqlite_app.test_client().get(SCHEMA_URL)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == load_document()


def test_routes_and_documented_operations_match(sqlite_app: Flask) -> None:
    routed: set[tuple[str, str]] = set()
    for rule in sqlite_app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX + "/"):
            continue
        methods = {"GET"} if rule.rule in ANY_METHOD_PATHS else set(rule.methods or ()) - IMPLICIT_METHODS
        routed |= {(_normalize(rule.rule), method) for method in methods}
    documented = {(_normalize(path), method.upper()) for path, method, _, _ in _operations()}
    assert sorted(routed - documented) == [], "routes missing from openapi/v1beta1.yaml"
    assert sorted(documented - routed) == [], "documented operations the server does not route"


def test_no_catch_all_or_server_error_responses_are_documented() -> None:
    for path, method, _, operation in _operations():
        codes = set(operation["responses"])
        assert "default" not in codes, (method, path)
        assert not {code for code in codes if code.startswith("5")}, (method, path)


# --- hand-written calls, every response checked against the document ------------------------------------------


class CheckedClient:
    """Calls `API_PREFIX + template` and checks status and body against the documented operation."""

    def __init__(self, application: Flask) -> None:
        self.client = application.test_client()
        self.schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, application)

    def __call__(self, method: str, template: str, status: int = 200, path: dict | None = None, **kwargs: Any) -> Any:
        response = self.client.open(API_PREFIX + template.format(**(path or {})), method=method, **kwargs)
        assert response.status_code == status, response.get_data(as_text=True)
        operation = self.schema[API_PREFIX + template][method]
        assert str(status) in operation.definition.raw["responses"], f"{status} is not documented"
        operation.validate_response(response)
        return response.get_json()

    def upload(self, template: str, filename: str, status: int = 200, **query: str) -> Any:
        data = {"uploadfile": (io.BytesIO(WORKFLOW), filename)}
        return self("POST", template, status, data=data, query_string=query, content_type="multipart/form-data")


@pytest.fixture
def package_url() -> Iterator[str]:
    """An http URL serving WORKFLOW, for the create-from-URL endpoints."""
    with route_server({"/openapi-check.yaml": (200, WORKFLOW, {})}) as server:
        yield f"{server.base_url}/openapi-check.yaml"


def test_healthz_and_experiment_calls_match_the_document(sqlite_app: Flask) -> None:
    api = CheckedClient(sqlite_app)
    api("GET", "/healthz")
    experiment = api("POST", "/experiments", json={"name": "training", "description": "d"})
    one = {"id": experiment["id"]}
    api("GET", "/experiments/{id}", path=one)
    page = api("GET", "/experiments", query_string={"page_size": 1})
    assert page["total_size"] == 2 and page["next_page_token"]  # with the Default experiment
    api("GET", "/experiments", query_string={"page_token": page["next_page_token"]})
    api("GET", "/experiments", 400, query_string={"sort_by": "nope"})
    api("GET", "/experiments", 400, query_string={"filter": "{"})
    api("POST", "/experiments", 409, json={"name": "training"})
    api("POST", "/experiments", 400, json={})
    api("POST", "/experiments/{id}:archive", path=one)
    assert api("GET", "/experiments/{id}", path=one)["storage_state"] == "STORAGESTATE_ARCHIVED"
    api("POST", "/experiments/{id}:unarchive", path=one)
    api("DELETE", "/experiments/{id}", path=one)
    api("GET", "/experiments/{id}", 404, path=one)
    api("DELETE", "/experiments/{id}", 404, path=one)


def test_pipeline_calls_match_the_document(sqlite_app: Flask, package_url: str) -> None:
    api = CheckedClient(sqlite_app)
    pipeline = api.upload("/pipelines/upload", "hello.yaml", name="hello", description="d")
    assert pipeline["default_version"]["id"] == pipeline["id"]
    assert pipeline["parameters"] == [{"name": "message", "value": "hello"}, {"name": "times"}]
    first = {"id": pipeline["id"]}
    api("GET", "/pipelines/{id}", path=first)
    api("GET", "/namespaces/{namespace}/pipelines/{name}", path={"namespace": "-", "name": "hello"})
    template = api("GET", "/pipelines/{id}/templates", path=first)
    assert json.loads(template["template"])["kind"] == "Workflow"

    version = api.upload("/pipelines/upload_version", "v2.yaml", pipelineid=pipeline["id"], name="v2")
    from_url = api("POST", "/pipeline_versions", json={
        "name": "v3",
        "package_url": {"pipeline_url": package_url},
        "resource_references": [{"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "OWNER"}],
    })
    query = {"resource_key.type": "PIPELINE", "resource_key.id": pipeline["id"], "page_size": 2}
    page = api("GET", "/pipeline_versions", query_string=query)
    assert page["total_size"] == 3 and page["next_page_token"]
    api("GET", "/pipeline_versions/{version_id}", path={"version_id": version["id"]})
    api("GET", "/pipeline_versions/{version_id}/templates", path={"version_id": version["id"]})
    api("POST", "/pipelines/{pipeline_id}/default_version/{version_id}",
        path={"pipeline_id": pipeline["id"], "version_id": version["id"]})
    api("DELETE", "/pipeline_versions/{version_id}", path={"version_id": from_url["id"]})
    api("GET", "/pipeline_versions/{version_id}", 404, path={"version_id": from_url["id"]})

    created = api("POST", "/pipelines", json={"name": "from-url", "url": {"pipeline_url": package_url}})
    api("GET", "/pipelines", query_string={"sort_by": "name desc"})
    api("POST", "/pipelines", 409, json={"name": "from-url", "url": {"pipeline_url": package_url}})
    api("POST", "/pipelines", 400, json={"name": "no-url"})
    api("POST", "/pipelines/upload", 400, data={}, content_type="multipart/form-data")
    api.upload("/pipelines/upload_version", "v.yaml", 400)
    api("DELETE", "/pipelines/{id}", path={"id": created["id"]})
    api("DELETE", "/pipelines/{id}", path=first)
    api("GET", "/pipelines/{id}", 404, path=first)
    api("GET", "/pipelines/{id}/templates", 404, path=first)
    api("GET", "/pipeline_versions", 404, query_string={"resource_key.type": "PIPELINE", "resource_key.id": "gone"})
    api("GET", "/pipelines")


def test_run_calls_match_the_document(sqlite_app: Flask) -> None:
    api = CheckedClient(sqlite_app)
    manifest = WORKFLOW.decode()
    created = api("POST", "/runs", json={
        "name": "checked", "description": "d",
        "pipeline_spec": {"workflow_manifest": manifest, "parameters": [{"name": "times", "value": "2"}]},
    })
    one = {"run_id": created["run"]["id"]}
    api("GET", "/runs/{run_id}", path=one)
    pipeline = api.upload("/pipelines/upload", "run-me.yaml")
    api("POST", "/runs", json={"name": "from-pipeline", "pipeline_spec": {"pipeline_id": pipeline["id"]}})
    api("POST", "/runs", 400, json={"name": ""})
    api("POST", "/runs", 400, json={"name": "x", "pipeline_spec": {"workflow_manifest": "kind: Nope"}})
    api("POST", "/runs", 404, json={"name": "x", "pipeline_spec": {"pipeline_id": "gone"}})
    page = api("GET", "/runs", query_string={"page_size": 1, "sort_by": "name desc"})
    assert page["total_size"] == 2 and page["next_page_token"]
    api("GET", "/runs", query_string={"resource_reference_key.type": "EXPERIMENT",
                                      "resource_reference_key.id": "none"})
    api("GET", "/runs", 400, query_string={"resource_reference_key.type": "PIPELINE",
                                           "resource_reference_key.id": "x"})
    results = api("POST", "/runs/{run_id}:reportMetrics", path=one, json={"metrics": [
        {"name": "acc", "node_id": "n", "number_value": 0.5, "format": "PERCENTAGE"}, {"name": "-", "node_id": "n"}
    ]})
    assert [r["status"] for r in results["results"]] == ["OK", "INVALID_ARGUMENT"]
    assert api("GET", "/runs/{run_id}", path=one)["run"]["metrics"][0]["name"] == "acc"
    api("POST", "/runs/{run_id}:archive", path=one)
    api("POST", "/runs/{run_id}:unarchive", path=one)
    api("POST", "/runs/{run_id}/retry", 400, path=one)
    api("POST", "/runs/{run_id}/terminate", path=one)
    api("POST", "/runs/{run_id}/terminate", 400, path=one)
    node = {**one, "node_id": "n", "artifact_name": "a"}
    api("GET", "/runs/{run_id}/nodes/{node_id}/artifacts/{artifact_name}:read", 404, path=node)
    api("GET", "/runs/{run_id}/nodes/{node_id}/log", 404, path=node)
    api("DELETE", "/runs/{run_id}", path=one)
    for method, template in (("GET", "/runs/{run_id}"), ("DELETE", "/runs/{run_id}"),
                             ("POST", "/runs/{run_id}:archive"), ("POST", "/runs/{run_id}/retry"),
                             ("POST", "/runs/{run_id}/terminate")):
        api(method, template, 404, path=one)
    api("POST", "/runs/{run_id}:reportMetrics", 404, path=one, json={"metrics": []})


def test_job_calls_match_the_document(sqlite_app: Flask) -> None:
    api = CheckedClient(sqlite_app)
    manifest = WORKFLOW.decode()
    later = "2999-01-01T00:00:00Z"
    created = api("POST", "/jobs", json={
        "name": "checked", "description": "d", "max_concurrency": "2", "no_catchup": True,
        "pipeline_spec": {"workflow_manifest": manifest, "parameters": [{"name": "times", "value": "2"}]},
        "trigger": {"cron_schedule": {"cron": "0 0 * * * *", "start_time": later}},
    })
    one = {"id": created["id"]}
    api("GET", "/jobs/{id}", path=one)
    pipeline = api.upload("/pipelines/upload", "job-me.yaml")
    api("POST", "/jobs", json={"pipeline_spec": {"pipeline_id": pipeline["id"]}, "max_concurrency": 1,
                               "enabled": True, "trigger": {"periodic_schedule": {"interval_second": 60,
                                                                                  "start_time": later}}})
    api("POST", "/jobs", json={"name": "once", "pipeline_spec": {"workflow_manifest": manifest},
                               "max_concurrency": 1})
    api("POST", "/jobs", 400, json={"name": "x", "pipeline_spec": {"workflow_manifest": manifest}})
    api("POST", "/jobs", 400, json={"pipeline_spec": {"workflow_manifest": manifest}, "max_concurrency": 1,
                                    "trigger": {"cron_schedule": {"cron": "nope"}}})
    api("POST", "/jobs", 404, json={"pipeline_spec": {"pipeline_id": "gone"}, "max_concurrency": 1})
    page = api("GET", "/jobs", query_string={"page_size": 1, "sort_by": "name desc"})
    assert page["total_size"] == 3 and page["next_page_token"]
    api("GET", "/jobs", query_string={"page_token": page["next_page_token"]})
    api("GET", "/jobs", query_string={"resource_reference_key.type": "EXPERIMENT",
                                      "resource_reference_key.id": "none"})
    api("GET", "/jobs", 400, query_string={"resource_reference_key.type": "PIPELINE",
                                           "resource_reference_key.id": "x"})
    api("GET", "/jobs", 400, query_string={"sort_by": "description"})
    api("POST", "/jobs/{id}/enable", path=one)
    api("POST", "/jobs/{id}/enable", path=one)
    api("POST", "/jobs/{id}/disable", path=one)
    api("DELETE", "/jobs/{id}", path=one)
    for method, template in (("GET", "/jobs/{id}"), ("DELETE", "/jobs/{id}"), ("POST", "/jobs/{id}/enable"),
                             ("POST", "/jobs/{id}/disable")):
        api(method, template, 404, path=one)


def test_oversize_bodies_match_the_document(tmp_path: Path) -> None:
    application = _build_app(tmp_path, max_upload_bytes=10)
    try:
        api = CheckedClient(application)
        body = json.dumps({"name": "x" * (2 << 20)})
        for template in ("/experiments", "/pipelines", "/pipeline_versions"):
            api("POST", template, 413, data=body, content_type="application/json")
        package = {"uploadfile": (io.BytesIO(b"x" * (2 << 20)), "big.yaml")}
        api("POST", "/pipelines/upload", 400, data=package, content_type="multipart/form-data")
    finally:
        _dispose(application)


# --- property-based: generated requests for every documented operation ---------------------------------------
# schemathesis' own pytest integration (`schemathesis.pytest.from_fixture`) fails on pytest 9, so each
# operation becomes one parametrized test that runs the operation's Hypothesis strategy itself.


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = load_document()
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def _can_be_made_invalid(item: dict, operation: dict) -> bool:
    """Whether a negative case exists: a body, or a parameter that is not optional free text."""
    if "requestBody" in operation:
        return True
    parameters = [_resolve(p) for p in [*item.get("parameters", []), *operation.get("parameters", [])]]
    return any(
        _resolve(p["schema"]) != {"type": "string"} or (p.get("required") and p["in"] != "path") for p in parameters
    )


FUZZ_CASES = sorted(
    (f"{method.upper()} {path}", mode)
    for path, method, item, operation in _operations()
    if path != SCHEMA_URL  # from_wsgi leaves the document's own path out
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or _can_be_made_invalid(item, operation)
)


@pytest.mark.parametrize(("label", "mode"), FUZZ_CASES, ids=[f"{label}-{mode.value}" for label, mode in FUZZ_CASES])
def test_generated_requests_conform(api_schema: Any, label: str, mode: GenerationMode) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


# --- property-based: sequences of calls that follow the links schemathesis infers (create -> get/delete ...) ---


def _reset(application: Flask) -> None:
    """Empty every table and start again as a new server would (the Default experiment only)."""
    services = application.extensions["kfp_backend.services"]
    with services.db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
    services.bootstrap()


def _seed(client: Any) -> None:
    """A pipeline with two versions, an experiment, a run and a job, for the inferred links to reach."""
    form = "multipart/form-data"
    pipeline = client.post(f"{API_PREFIX}/pipelines/upload", content_type=form,
                           data={"uploadfile": (io.BytesIO(WORKFLOW), "seed.yaml")})
    assert pipeline.status_code == 200, pipeline.get_data(as_text=True)
    version = client.post(f"{API_PREFIX}/pipelines/upload_version", content_type=form,
                          data={"uploadfile": (io.BytesIO(WORKFLOW), "v2.yaml")},
                          query_string={"pipelineid": pipeline.get_json()["id"]})
    assert version.status_code == 200, version.get_data(as_text=True)
    experiment = client.post(f"{API_PREFIX}/experiments", json={"name": "seed"})
    assert experiment.status_code == 200, experiment.get_data(as_text=True)
    run = client.post(f"{API_PREFIX}/runs",
                      json={"name": "seed", "pipeline_spec": {"workflow_manifest": WORKFLOW.decode()}})
    assert run.status_code == 200, run.get_data(as_text=True)
    job = client.post(f"{API_PREFIX}/jobs", json={
        "name": "seed", "pipeline_spec": {"workflow_manifest": WORKFLOW.decode()}, "max_concurrency": 1,
        "trigger": {"periodic_schedule": {"interval_second": 3600, "start_time": "2999-01-01T00:00:00Z"}},
    })
    assert job.status_code == 200, job.get_data(as_text=True)


def test_generated_call_sequences_conform(sqlite_app: Flask) -> None:
    client = sqlite_app.test_client()
    schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, sqlite_app)

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every sequence starts from the same state, or Hypothesis cannot replay what it found.
            _reset(sqlite_app)
            _seed(client)

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    Sequences.run(
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=10,
            deadline=None,
            derandomize=DERANDOMIZE,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
