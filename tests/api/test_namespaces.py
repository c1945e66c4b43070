"""Multi-user mode (authentication on): namespaces and 403 authorization, on every database.

The route walk covers every route of the app with a real request on real resources of namespace
`team-a`: without a token, with a bad one and with a revoked one it is a 401; with a token of `team-b`
it is upstream's 403; with alice's token (`team-a`) it is neither. A route the walk does not know fails
`test_the_walk_knows_every_route`, so a new route cannot skip the check. Then two namespaces side by
side: lists never show the other's resources, ids of the other's resources give 403, and upstream's
multi-user rules (list calls name a namespace, runs and jobs live in their experiment's namespace,
shared pipelines) hold.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.api.openapi import OPENAPI_PATH
from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.auth import AuthService
from tests.api.test_auth import API, ROUTES, UPLOAD_RULES, _settings
from tests.databases import BACKENDS, DatabaseFactory
from tests.gateway_errors import check_gateway_body, error_message
from tests.http_server import route_server

TEAM_A, TEAM_B = "team-a", "team-b"
# Routes not about any namespace's resources: any authenticated caller may call them.
NOT_NAMESPACED = {
    (API + "/openapi.json", "GET"): "the API description",
    (API + "/openapi.json", "HEAD"): "the API description",
    # Each entry is authorized on its own: another namespace's run is that entry's error, not a 403 of the call
    # (tests/api/test_run_batches.py).
    (API + "/runs:batchGetStatus", "POST"): "batch status, authorized per entry",
}
# The bodies of the calls above that need one.
NOT_NAMESPACED_BODIES = {(API + "/runs:batchGetStatus", "POST"): {"run_ids": ["any"]}}
WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: namespaced-
spec:
  entrypoint: say
  arguments:
    parameters:
      - name: message
        value: hello
  templates:
    - name: say
      container:
        image: alpine:3.19
        command: [echo, "{{workflow.parameters.message}}"]
"""


@dataclasses.dataclass
class Tokens:
    alice: str  # team-a
    bob: str  # team-b
    admin: str  # not limited by namespace
    revoked: str  # team-a, revoked


def _make_tokens(app: Flask) -> Tokens:
    service = AuthService(app.extensions["kfp_backend.services"].db)
    _, alice = service.create_token("alice", [TEAM_A])
    _, bob = service.create_token("bob", [TEAM_B])
    _, admin = service.create_token("admin")
    revoked_info, revoked = service.create_token("alice", [TEAM_A])
    service.revoke_token(revoked_info.id)
    return Tokens(alice=alice, bob=bob, admin=admin, revoked=revoked)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ns_key(namespace: str) -> dict[str, str]:
    return {"resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": namespace}


def _owner(namespace: str) -> list[dict[str, Any]]:
    return [{"key": {"type": "NAMESPACE", "id": namespace}, "relationship": "OWNER"}]


def _in_experiment(experiment_id: str) -> list[dict[str, Any]]:
    return [{"key": {"type": "EXPERIMENT", "id": experiment_id}, "relationship": "OWNER"}]


def _package(name: str = "p.yaml") -> dict[str, Any]:
    return {"uploadfile": (io.BytesIO(WORKFLOW.encode()), name)}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass
class Seed:
    """One of each resource, in one namespace."""

    namespace: str
    experiment: str
    pipeline: str
    pipeline_name: str
    version: str
    run: str
    job: str


class Api:
    """HTTP calls as one token; every answer checked to be JSON (or empty for HEAD)."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client = client
        self.headers = _bearer(token) if token else {}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.open(API + path, method=method, headers=self.headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, (method, path, response.get_data(as_text=True))
        return response.get_json()


def _seed(client: FlaskClient, token: str, namespace: str) -> Seed:
    api = Api(client, token)
    experiment = api.ok("POST", "/experiments", json={"name": _unique("exp"), "resource_references": _owner(namespace)})
    name = _unique("pipe")
    pipeline = api.ok("POST", "/pipelines/upload", data=_package(), query_string={"name": name, "namespace": namespace},
                      content_type="multipart/form-data")
    version = api.ok("POST", "/pipelines/upload_version", data=_package(),
                     query_string={"name": _unique("v"), "pipelineid": pipeline["id"]},
                     content_type="multipart/form-data")
    run = api.ok("POST", "/runs", json={"name": _unique("run"), "pipeline_spec": {"pipeline_id": pipeline["id"]},
                                        "resource_references": _in_experiment(experiment["id"])})
    job = api.ok("POST", "/jobs", json={"name": _unique("job"), "max_concurrency": 1,
                                        "pipeline_spec": {"workflow_manifest": _manifest()},
                                        "resource_references": _in_experiment(experiment["id"])})
    return Seed(namespace, experiment["id"], pipeline["id"], name, version["id"], run["run"]["id"], job["id"])


def _manifest() -> str:
    return json.dumps(yaml.safe_load(WORKFLOW))


Request = tuple[str, dict[str, Any]]  # path (after API) and the test client's keyword arguments


def _requests(seed: Seed, package_url: str) -> dict[tuple[str, str], Callable[[], Request]]:
    """For every namespaced route: a request acting on `seed`'s resources (fresh bodies on each call)."""
    ns = seed.namespace
    upload = {"content_type": "multipart/form-data"}
    table: dict[tuple[str, str], Callable[[], Request]] = {
        ("/experiments", "GET"): lambda: ("/experiments", {"query_string": _ns_key(ns)}),
        ("/experiments", "POST"): lambda: ("/experiments", {"json": {"name": _unique("e"),
                                                                     "resource_references": _owner(ns)}}),
        ("/experiments/<id>", "GET"): lambda: (f"/experiments/{seed.experiment}", {}),
        ("/experiments/<id>", "DELETE"): lambda: (f"/experiments/{seed.experiment}", {}),
        ("/experiments/<id>:archive", "POST"): lambda: (f"/experiments/{seed.experiment}:archive", {}),
        ("/experiments/<id>:unarchive", "POST"): lambda: (f"/experiments/{seed.experiment}:unarchive", {}),
        ("/jobs", "GET"): lambda: ("/jobs", {"query_string": _ns_key(ns)}),
        ("/jobs", "POST"): lambda: ("/jobs", {"json": {
            "name": _unique("j"), "max_concurrency": 1, "pipeline_spec": {"workflow_manifest": _manifest()},
            "resource_references": _in_experiment(seed.experiment)}}),
        ("/jobs/<job_id>", "GET"): lambda: (f"/jobs/{seed.job}", {}),
        ("/jobs/<job_id>", "DELETE"): lambda: (f"/jobs/{seed.job}", {}),
        ("/jobs/<job_id>/enable", "POST"): lambda: (f"/jobs/{seed.job}/enable", {}),
        ("/jobs/<job_id>/disable", "POST"): lambda: (f"/jobs/{seed.job}/disable", {}),
        ("/namespaces/<namespace>/pipelines/<path:name>", "GET"): lambda: (
            f"/namespaces/{ns}/pipelines/{seed.pipeline_name}", {}),
        ("/pipeline_versions", "GET"): lambda: ("/pipeline_versions", {"query_string": {
            "resource_key.type": "PIPELINE", "resource_key.id": seed.pipeline}}),
        ("/pipeline_versions", "POST"): lambda: ("/pipeline_versions", {"json": {
            "name": _unique("v"), "package_url": {"pipeline_url": package_url},
            "resource_references": [{"key": {"type": "PIPELINE", "id": seed.pipeline}, "relationship": "OWNER"}]}}),
        ("/pipeline_versions/<version_id>", "GET"): lambda: (f"/pipeline_versions/{seed.version}", {}),
        ("/pipeline_versions/<version_id>", "DELETE"): lambda: (f"/pipeline_versions/{seed.version}", {}),
        ("/pipeline_versions/<version_id>/templates", "GET"): lambda: (
            f"/pipeline_versions/{seed.version}/templates", {}),
        ("/pipelines", "GET"): lambda: ("/pipelines", {"query_string": _ns_key(ns)}),
        ("/pipelines", "POST"): lambda: ("/pipelines", {"json": {
            "name": _unique("p"), "url": {"pipeline_url": package_url}, "resource_references": _owner(ns)}}),
        ("/pipelines/<id>", "GET"): lambda: (f"/pipelines/{seed.pipeline}", {}),
        ("/pipelines/<id>", "DELETE"): lambda: (f"/pipelines/{seed.pipeline}", {}),
        ("/pipelines/<id>/templates", "GET"): lambda: (f"/pipelines/{seed.pipeline}/templates", {}),
        ("/pipelines/<pipeline_id>/default_version/<version_id>", "POST"): lambda: (
            f"/pipelines/{seed.pipeline}/default_version/{seed.version}", {}),
        ("/pipelines/upload", "POST"): lambda: ("/pipelines/upload", {
            "data": _package(), "query_string": {"name": _unique("u"), "namespace": ns}, **upload}),
        ("/pipelines/upload_version", "POST"): lambda: ("/pipelines/upload_version", {
            "data": _package(), "query_string": {"name": _unique("uv"), "pipelineid": seed.pipeline}, **upload}),
        ("/runs", "GET"): lambda: ("/runs", {"query_string": _ns_key(ns)}),
        ("/runs", "POST"): lambda: ("/runs", {"json": {
            "name": _unique("r"), "pipeline_spec": {"workflow_manifest": _manifest()},
            "resource_references": _in_experiment(seed.experiment)}}),
        ("/runs/<run_id>", "GET"): lambda: (f"/runs/{seed.run}", {}),
        ("/runs/<run_id>", "DELETE"): lambda: (f"/runs/{seed.run}", {}),
        ("/runs/<run_id>:archive", "POST"): lambda: (f"/runs/{seed.run}:archive", {}),
        ("/runs/<run_id>:unarchive", "POST"): lambda: (f"/runs/{seed.run}:unarchive", {}),
        ("/runs/<run_id>/terminate", "POST"): lambda: (f"/runs/{seed.run}/terminate", {}),
        ("/runs/<run_id>/retry", "POST"): lambda: (f"/runs/{seed.run}/retry", {}),
        ("/runs/<run_id>:start", "POST"): lambda: (f"/runs/{seed.run}:start", {}),
        ("/runs/<run_id>:reportMetrics", "POST"): lambda: (f"/runs/{seed.run}:reportMetrics", {"json": {
            "metrics": [{"name": "acc", "node_id": "n", "number_value": 0.5}]}}),
        ("/runs/<run_id>/nodes/<node_id>/artifacts/<artifact_name>:read", "GET"): lambda: (
            f"/runs/{seed.run}/nodes/n/artifacts/a:read", {}),
        ("/runs/<run_id>/nodes/<node_id>/log", "GET"): lambda: (f"/runs/{seed.run}/nodes/n/log", {}),
    }
    return {(API + rule, method): build for (rule, method), build in table.items()}


# Every route and method but OPTIONS (answered by routing, about no resource); HEAD as its GET.
WALKED = [(rule, method) for rule, method in ROUTES if method != "OPTIONS"]
NAMESPACED = [route for route in WALKED if route not in NOT_NAMESPACED]


_DOCUMENT = schemathesis.openapi.from_path(OPENAPI_PATH)


def _normalize(path: str) -> str:
    """One spelling for Flask rules (`<id>`, `<path:x>`) and OpenAPI templates (`{id}`)."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


_TEMPLATES = {_normalize(path): path for path in _DOCUMENT.raw_schema["paths"]}


def _check_documented(response: Any, rule: str, method: str) -> None:
    """The answer is one the OpenAPI document lists for the operation, with the documented body."""
    if method == "HEAD":
        return
    operation = _DOCUMENT[_TEMPLATES[_normalize(rule)]][method]
    assert str(response.status_code) in operation.definition.raw["responses"], (method, rule, response.status_code)
    operation.validate_response(response)


def _as_get(route: tuple[str, str]) -> tuple[str, str]:
    rule, method = route
    return (rule, "GET") if method == "HEAD" else route


@pytest.fixture(scope="module")
def package_url() -> Iterator[str]:
    """The workflow served over HTTP (multi-user mode refuses file URLs)."""
    with route_server({"/namespaced.yaml": (200, WORKFLOW.encode(), {})}) as server:
        yield f"{server.base_url}/namespaced.yaml"


@pytest.fixture(scope="module", params=BACKENDS)
def walk_app(
    request: pytest.FixtureRequest, database_factories: dict[str, DatabaseFactory],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[FlaskClient, Tokens]]:
    """One multi-user app per database for the whole walk."""
    with database_factories[request.param].fresh() as url:
        app = create_app(_settings(database_url=url, data_dir=tmp_path_factory.mktemp("ns") / "data",
                                   auth="required", pipeline_url_allowed_hosts="127.0.0.1"))
        try:
            yield app.test_client(), _make_tokens(app)
        finally:
            shutdown(app)


def test_the_walk_knows_every_route(package_url: str) -> None:
    seed = Seed(TEAM_A, "e", "p", "n", "v", "r", "j")
    known = set(_requests(seed, package_url))
    assert {_as_get(route) for route in NAMESPACED} == known, "a route without a namespace check in the walk"
    assert set(NOT_NAMESPACED) <= set(WALKED)
    assert len(NAMESPACED) >= 40


def _assert_403(response: Any, rule: str, method: str, user: str) -> None:
    assert response.status_code == 403, (method, rule, response.status_code, response.get_data(as_text=True))
    if method == "HEAD":
        return
    body = response.get_json()
    chain = (f"Failed to authorize the request: Failed to authorize with API resource references: "
             f"PermissionDenied: User '{user}' is not authorized with reason: ")
    if rule in UPLOAD_RULES:
        assert set(body) == {"error_message", "error_details"}, body
        assert body["error_message"].startswith("Authorization to namespace failed.: " + chain), body
        return
    check_gateway_body(body, 7)
    assert body["error"].startswith(chain) and body["error"].endswith(": Unauthorized access"), body
    external = error_message(body)
    assert external.startswith(f"User '{user}' is not authorized with reason: "), external
    assert "Namespace:team-a," in external and "Group:pipelines.kubeflow.org" in external


@pytest.mark.parametrize(("rule", "method"), NAMESPACED, ids=[f"{m} {r}" for r, m in NAMESPACED])
def test_every_route_checks_the_namespace(
    walk_app: tuple[FlaskClient, Tokens], package_url: str, rule: str, method: str
) -> None:
    client, tokens = walk_app
    seed = _seed(client, tokens.alice, TEAM_A)
    build = _requests(seed, package_url)[_as_get((rule, method))]

    def call(token: str | None) -> Any:
        path, kwargs = build()
        return Api(client, token).call(method, path, **kwargs)

    for token in (None, "kfpb_" + "A" * 43, tokens.revoked):
        response = call(token)
        assert response.status_code == 401, (method, rule, token, response.get_data(as_text=True))
        _check_documented(response, rule, method)
    refused = call(tokens.bob)
    _assert_403(refused, rule, method, "bob")
    _check_documented(refused, rule, method)
    # Nothing happened: the resources are still there, unchanged, for their owner.
    owner = Api(client, tokens.alice)
    assert owner.ok("GET", f"/experiments/{seed.experiment}")["storage_state"] == "STORAGESTATE_AVAILABLE"
    assert owner.ok("GET", f"/runs/{seed.run}")["run"].get("status", "") == ""
    assert owner.ok("GET", f"/jobs/{seed.job}").get("enabled", False) is False
    assert owner.ok("GET", f"/pipelines/{seed.pipeline}")["default_version"]["id"] == seed.version
    # The owner is let through (whatever the operation then says).
    for token in (tokens.alice, tokens.admin):
        response = call(token)
        assert response.status_code not in (401, 403), (method, rule, response.get_data(as_text=True))
        assert response.status_code < 500, (method, rule, response.get_data(as_text=True))
        if method == "DELETE":
            break  # gone: the second call would be a 404


@pytest.mark.parametrize(("rule", "method"), sorted(NOT_NAMESPACED),
                         ids=[f"{m} {r}" for r, m in sorted(NOT_NAMESPACED)])
def test_routes_about_no_namespace_need_only_a_token(
    walk_app: tuple[FlaskClient, Tokens], rule: str, method: str
) -> None:
    client, tokens = walk_app
    body = NOT_NAMESPACED_BODIES.get((rule, method))
    assert client.open(rule, method=method, json=body).status_code == 401
    assert client.open(rule, method=method, json=body, headers=_bearer(tokens.bob)).status_code == 200


def test_healthz_reports_multi_user(walk_app: tuple[FlaskClient, Tokens]) -> None:
    client, _ = walk_app
    body = client.get(API + "/healthz").get_data(as_text=True)
    assert body.endswith('"multi_user":true}') and json.loads(body)["multi_user"] is True


# ----------------------------------------------------------------------- two namespaces, on every database


@pytest.fixture
def side_by_side(settings: Settings) -> Iterator[tuple[FlaskClient, Tokens]]:
    app = create_app(settings.replace(auth="required"))
    try:
        yield app.test_client(), _make_tokens(app)
    finally:
        shutdown(app)


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    return body["details"][0]["error_message"] if "details" in body else body["error_message"]


def _ids(body: dict[str, Any], plural: str) -> set[str]:
    return {item["id"] for item in body.get(plural, [])}


def test_two_namespaces_side_by_side(side_by_side: tuple[FlaskClient, Tokens]) -> None:
    client, tokens = side_by_side
    alice, bob, admin = Api(client, tokens.alice), Api(client, tokens.bob), Api(client, tokens.admin)
    a = _seed(client, tokens.alice, TEAM_A)
    b = _seed(client, tokens.bob, TEAM_B)
    shared = alice.ok("POST", "/pipelines/upload", data=_package(), query_string={"name": "shared"},
                      content_type="multipart/form-data")

    # Lists show one namespace, never the other's.
    for api, own, other in ((alice, a, b), (bob, b, a)):
        assert _ids(api.ok("GET", "/experiments", query_string=_ns_key(own.namespace)), "experiments") == {
            own.experiment}
        assert _ids(api.ok("GET", "/runs", query_string=_ns_key(own.namespace)), "runs") == {own.run}
        assert _ids(api.ok("GET", "/jobs", query_string=_ns_key(own.namespace)), "jobs") == {own.job}
        assert _ids(api.ok("GET", "/pipelines", query_string=_ns_key(own.namespace)), "pipelines") == {own.pipeline}
        by_experiment = {"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": own.experiment}
        assert _ids(api.ok("GET", "/runs", query_string=by_experiment), "runs") == {own.run}
        assert _ids(api.ok("GET", "/jobs", query_string=by_experiment), "jobs") == {own.job}
        # Shared pipelines are everyone's, and only they are listed without a key.
        assert _ids(api.ok("GET", "/pipelines"), "pipelines") == {shared["id"]}
        api.ok("GET", f"/pipelines/{shared['id']}")
        api.ok("GET", "/namespaces/-/pipelines/shared")
        # The other's namespace, experiment and ids: 403.
        for path, query in (("/experiments", _ns_key(other.namespace)), ("/runs", _ns_key(other.namespace)),
                            ("/jobs", _ns_key(other.namespace)), ("/pipelines", _ns_key(other.namespace)),
                            ("/runs", {"resource_reference_key.type": "EXPERIMENT",
                                       "resource_reference_key.id": other.experiment})):
            assert api.call("GET", path, query_string=query).status_code == 403, path
        for path in (f"/experiments/{other.experiment}", f"/runs/{other.run}", f"/jobs/{other.job}",
                     f"/pipelines/{other.pipeline}", f"/pipeline_versions/{other.version}",
                     f"/namespaces/{other.namespace}/pipelines/{other.pipeline_name}"):
            assert api.call("GET", path).status_code == 403, path
    # A token not limited by namespace reaches both (still naming one per list).
    for seed in (a, b):
        assert _ids(admin.ok("GET", "/runs", query_string=_ns_key(seed.namespace)), "runs") == {seed.run}
        admin.ok("GET", f"/experiments/{seed.experiment}")

    # Experiments show their namespace; runs and jobs live in their experiment's.
    experiment = alice.ok("GET", f"/experiments/{a.experiment}")
    assert experiment["resource_references"] == [{"key": {"type": "NAMESPACE", "id": TEAM_A}, "relationship": "OWNER"}]
    assert list(experiment) == ["id", "name", "created_at", "resource_references", "storage_state"]
    # A run may not be put into the other's experiment, nor run the other's pipeline.
    into_other = {"name": "x", "pipeline_spec": {"workflow_manifest": _manifest()},
                  "resource_references": _in_experiment(b.experiment)}
    assert "User 'alice' is not authorized" in _error(alice.call("POST", "/runs", json=into_other), 403)
    assert _error(alice.call("POST", "/jobs", json={**into_other, "max_concurrency": 1}), 403)
    other_pipeline = {"name": "x", "pipeline_spec": {"pipeline_id": b.pipeline},
                      "resource_references": _in_experiment(a.experiment)}
    assert "Resource:pipelines" in _error(alice.call("POST", "/runs", json=other_pipeline), 403)
    from_shared = alice.ok("POST", "/runs", json={**other_pipeline, "pipeline_spec": {"pipeline_id": shared["id"]}})
    assert from_shared["run"]["id"] in _ids(alice.ok("GET", "/runs", query_string=_ns_key(TEAM_A)), "runs")
    # The same experiment name in two namespaces.
    name = "same-name"
    alice.ok("POST", "/experiments", json={"name": name, "resource_references": _owner(TEAM_A)})
    bob.ok("POST", "/experiments", json={"name": name, "resource_references": _owner(TEAM_B)})
    assert _error(alice.call("POST", "/experiments", json={"name": name, "resource_references": _owner(TEAM_A)}),
                  409).startswith("Failed to create a new experiment.")
    # Archiving one namespace's experiment touches nothing of the other's.
    alice.ok("POST", f"/experiments/{a.experiment}:archive")
    assert alice.ok("GET", f"/runs/{a.run}")["run"]["storage_state"] == "STORAGESTATE_ARCHIVED"
    assert "storage_state" not in bob.ok("GET", f"/runs/{b.run}")["run"]
    # Namespaced pipelines: upload into the other's namespace is refused (upload error shape).
    refused = alice.call("POST", "/pipelines/upload", data=_package(), query_string={"namespace": TEAM_B},
                         content_type="multipart/form-data")
    assert refused.status_code == 403 and refused.get_json()["error_message"].startswith(
        "Authorization to namespace failed.: ")
    refused = alice.call("POST", "/pipelines/upload_version", data=_package(), query_string={"pipelineid": b.pipeline},
                         content_type="multipart/form-data")
    assert refused.status_code == 403
    # Deleting the other's resources is refused and leaves them.
    for path in (f"/runs/{b.run}", f"/jobs/{b.job}", f"/experiments/{b.experiment}", f"/pipelines/{b.pipeline}",
                 f"/pipeline_versions/{b.version}"):
        assert alice.call("DELETE", path).status_code == 403, path
        bob.ok("GET", path)
    # An unknown id is still a 404, for anyone.
    assert alice.call("GET", "/runs/no-such-run").status_code == 404
    assert bob.call("DELETE", "/experiments/no-such-experiment").status_code == 404


def test_multi_user_request_rules(side_by_side: tuple[FlaskClient, Tokens]) -> None:
    """Upstream's multi-user messages: list calls name a namespace, experiments are created in one, runs and
    jobs need an experiment of a namespace."""
    client, tokens = side_by_side
    admin = Api(client, tokens.admin)
    for path, message in (
        ("/experiments", "Invalid resource references for experiment. ListExperiment requires filtering by namespace."),
        ("/runs", "ListRuns must filter by resource reference in multi-user mode."),
        ("/jobs", "ListJobs must filter by resource reference in multi-user mode."),
    ):
        assert _error(admin.call("GET", path), 400) == message
    assert _error(admin.call("GET", "/experiments", query_string=_ns_key("")), 400) == (
        "Invalid resource references for experiment. Namespace is empty.")
    assert _error(admin.call("GET", "/runs", query_string={"resource_reference_key.type": "JOB",
                                                           "resource_reference_key.id": "j"}), 400) == (
        'Invalid resource references for ListRuns. Got type:JOB id:"j"')
    assert _error(admin.call("GET", "/jobs", query_string=_ns_key("")), 400) == (
        "Invalid resource references for ListJobs. Namespace is empty.")
    assert _error(admin.call("GET", "/runs", query_string={"resource_reference_key.type": "EXPERIMENT",
                                                           "resource_reference_key.id": "gone"}), 404) == (
        "Experiment gone not found.")
    # Experiments: exactly one NAMESPACE/OWNER reference with a namespace.
    assert _error(admin.call("POST", "/experiments", json={"name": "x"}), 400) == (
        "Invalid resource references for experiment. Expect one namespace type with owner relationship. Got: []")
    creator = [{"key": {"type": "NAMESPACE", "id": TEAM_A}, "relationship": "CREATOR"}]
    assert _error(admin.call("POST", "/experiments", json={"name": "x", "resource_references": creator}), 400) == (
        "Invalid resource references for experiment. Expect one namespace type with owner relationship. "
        'Got: [key:{type:NAMESPACE id:"team-a"} relationship:CREATOR]')
    assert _error(admin.call("POST", "/experiments", json={"name": "x", "resource_references": _owner("")}), 400) == (
        "Invalid resource references for experiment. Namespace is empty.")
    assert _error(admin.call("POST", "/experiments", json={"name": "", "resource_references": _owner(TEAM_A)}),
                  400) == "Experiment name is empty. Please specify a valid experiment name."
    # Namespaces are Kubernetes namespace names, as tokens name them.
    for bad in ("Team-A", "team_a", "-a", "a" * 64):
        assert _error(admin.call("POST", "/experiments", json={"name": "x", "resource_references": _owner(bad)}),
                      400).startswith(f"Namespace {bad!r} is not a valid namespace name")
        refused = admin.call("POST", "/pipelines/upload", data=_package(), query_string={"namespace": bad},
                             content_type="multipart/form-data")
        assert refused.status_code == 400 and refused.get_json()["error_message"].startswith("Invalid namespace.: ")
    experiment = admin.ok("POST", "/experiments", json={"name": "x", "resource_references": _owner(TEAM_A)})
    # Runs and jobs: an experiment is required (no Default fallback), and it must have a namespace.
    spec = {"pipeline_spec": {"workflow_manifest": _manifest()}}
    for path, extra in (("/runs", {"name": "r"}), ("/jobs", {"max_concurrency": 1})):
        assert _error(admin.call("POST", path, json={**spec, **extra}), 400) == "Job has no experiment."
        default = admin.ok("GET", "/experiments", query_string=_ns_key(TEAM_A))
        assert "Default" not in {e["name"] for e in default.get("experiments", [])}
        response = admin.call("GET", "/runs", query_string=_ns_key(""))
        assert response.status_code == 400
        in_team_a = {**spec, **extra, "resource_references": _in_experiment(experiment["id"])}
        assert admin.ok("POST", path, json=in_team_a)
    # The Default experiment (namespace "") cannot hold runs in multi-user mode.
    default_id = client.application.extensions["kfp_backend.services"].experiments.ensure_default().id
    assert _error(admin.call("POST", "/runs", json={**spec, "name": "r",
                                                    "resource_references": _in_experiment(default_id)}), 400) == (
        "Job's experiment has no namespace.")
    assert _error(admin.call("POST", "/runs", json={**spec, "name": "r",
                                                    "resource_references": _in_experiment("gone")}), 404) == (
        "Experiment gone not found.")
    assert len(admin.ok("GET", "/runs", query_string=_ns_key(TEAM_A))["runs"]) == 1
    assert len(admin.ok("GET", "/jobs", query_string=_ns_key(TEAM_A))["jobs"]) == 1


def _names(api: Api, seed: Seed) -> dict[str, str]:
    """The names of `seed`'s resources, as their owner reads them."""
    return {
        "experiment": api.ok("GET", f"/experiments/{seed.experiment}")["name"],
        "pipeline": seed.pipeline_name,
        "version": api.ok("GET", f"/pipeline_versions/{seed.version}")["name"],
        "run": api.ok("GET", f"/runs/{seed.run}")["run"]["name"],
        "job": api.ok("GET", f"/jobs/{seed.job}")["name"],
    }


def _assert_names_hidden(response: Any, names: dict[str, str]) -> None:
    text = response.get_data(as_text=True)
    for kind, name in names.items():
        assert name not in text, (kind, name, text)


def test_references_across_namespaces(side_by_side: tuple[FlaskClient, Tokens]) -> None:
    """Runs and jobs reference only what their caller may read; the scheduler alone links a run to a job; no
    answer names a resource of a namespace the caller may not read."""
    client, tokens = side_by_side
    alice, bob, admin = Api(client, tokens.alice), Api(client, tokens.bob), Api(client, tokens.admin)
    a = _seed(client, tokens.alice, TEAM_A)
    b = _seed(client, tokens.bob, TEAM_B)
    bobs = _names(bob, b)
    spec = {"pipeline_spec": {"workflow_manifest": _manifest()}}

    def reference(kind: str, id: str, relationship: str = "OWNER") -> dict[str, Any]:
        return {"key": {"type": kind, "id": id}, "relationship": relationship}

    for path, extra in (("/runs", {"name": "r"}), ("/jobs", {"name": "j", "max_concurrency": 1})):
        body = {**spec, **extra}
        # A JOB reference: refused whoever's job it is (only the scheduler links a run to its job); bob's job
        # gains no run that would count against its max_concurrency.
        for job in (b.job, a.job):
            refs = [*_in_experiment(a.experiment), reference("JOB", job, "CREATOR")]
            refused = alice.call("POST", path, json={**body, "resource_references": refs})
            assert _error(refused, 400) == (
                "Unsupported resource type: JOB. Only the scheduler links a run to the job that created it.")
            _assert_names_hidden(refused, bobs)
        by_job = {"resource_reference_key.type": "JOB", "resource_reference_key.id": b.job}
        assert admin.call("GET", "/runs", query_string=by_job).status_code == 400  # multi-user: not a list key
        # More than one EXPERIMENT reference, whoever's: 400, naming none.
        for second in (b.experiment, a.experiment):
            refs = [*_in_experiment(a.experiment), reference("EXPERIMENT", second, "CREATOR")]
            refused = alice.call("POST", path, json={**body, "resource_references": refs})
            assert _error(refused, 400) == "Invalid resource references: more than one EXPERIMENT reference (2)."
            _assert_names_hidden(refused, bobs)
        # Bob's pipeline version, in whatever relationship: 403 (it used to be echoed with its name).
        refs = [*_in_experiment(a.experiment), reference("PIPELINE_VERSION", b.version)]
        refused = alice.call("POST", path, json={**body, "resource_references": refs})
        assert "Resource:pipelines" in _error(refused, 403)
        _assert_names_hidden(refused, bobs)
        # Bob's pipeline by id, and its version as the creator: 403 before anything about them is said.
        for source in ({"pipeline_spec": {"pipeline_id": b.pipeline}},
                       {"pipeline_spec": {}, "resource_references": [
                           *_in_experiment(a.experiment), reference("PIPELINE_VERSION", b.version, "CREATOR")]}):
            refused = alice.call("POST", path, json={
                **extra, "resource_references": _in_experiment(a.experiment), **source})
            assert "Resource:pipelines" in _error(refused, 403)
            _assert_names_hidden(refused, bobs)
        # Bob's experiment as the owner: 403 naming the new object, not bob's experiment.
        refused = alice.call("POST", path, json={**body, "resource_references": _in_experiment(b.experiment)})
        assert "User 'alice' is not authorized" in _error(refused, 403)
        _assert_names_hidden(refused, bobs)
        # A NAMESPACE reference: one the caller may use, and the experiment's.
        refs = [*_in_experiment(a.experiment), reference("NAMESPACE", TEAM_B)]
        refused = alice.call("POST", path, json={**body, "resource_references": refs})
        assert "Namespace:team-b," in _error(refused, 403)
        refs = [*_in_experiment(a.experiment), reference("NAMESPACE", TEAM_B)]
        assert _error(admin.call("POST", path, json={**body, "resource_references": refs}), 400) == (
            "Invalid resource references: namespace team-b is not the namespace of the experiment.")
        refs = [*_in_experiment(a.experiment), reference("NAMESPACE", TEAM_A)]
        assert alice.ok("POST", path, json={**body, "resource_references": refs})
        # Her own version, as a second reference, is fine and named.
        refs = [*_in_experiment(a.experiment), reference("PIPELINE_VERSION", a.version)]
        created = alice.ok("POST", path, json={**body, "resource_references": refs})
        created = created.get("run", created)
        assert {r["key"]["id"]: r.get("name") for r in created["resource_references"]}[a.version]
    # Nothing was added to bob's namespace.
    assert _ids(bob.ok("GET", "/runs", query_string=_ns_key(TEAM_B)), "runs") == {b.run}
    assert _ids(bob.ok("GET", "/jobs", query_string=_ns_key(TEAM_B)), "jobs") == {b.job}

    # Every refusal about bob's resources, named by id, keeps their names to itself.
    for method, path in (
        ("GET", f"/experiments/{b.experiment}"), ("POST", f"/experiments/{b.experiment}:archive"),
        ("DELETE", f"/experiments/{b.experiment}"),
        ("GET", f"/runs/{b.run}"), ("POST", f"/runs/{b.run}/retry"), ("POST", f"/runs/{b.run}/terminate"),
        ("POST", f"/runs/{b.run}:archive"), ("DELETE", f"/runs/{b.run}"),
        ("GET", f"/runs/{b.run}/nodes/n/log"), ("GET", f"/runs/{b.run}/nodes/n/artifacts/a:read"),
        ("GET", f"/jobs/{b.job}"), ("POST", f"/jobs/{b.job}/enable"), ("DELETE", f"/jobs/{b.job}"),
        ("GET", f"/pipelines/{b.pipeline}"), ("GET", f"/pipelines/{b.pipeline}/templates"),
        ("DELETE", f"/pipelines/{b.pipeline}"), ("POST", f"/pipelines/{b.pipeline}/default_version/{b.version}"),
        ("GET", f"/pipeline_versions/{b.version}"), ("GET", f"/pipeline_versions/{b.version}/templates"),
        ("DELETE", f"/pipeline_versions/{b.version}"),
    ):
        refused = alice.call(method, path)
        assert refused.status_code == 403, (method, path)
        _assert_names_hidden(refused, bobs)
    refused = alice.call("GET", "/pipeline_versions", query_string={"resource_key.type": "PIPELINE",
                                                                    "resource_key.id": b.pipeline})
    assert refused.status_code == 403
    _assert_names_hidden(refused, bobs)
    refused = alice.call("POST", "/pipelines/upload_version", data=_package(), query_string={"pipelineid": b.pipeline},
                         content_type="multipart/form-data")
    assert refused.status_code == 403
    _assert_names_hidden(refused, bobs)


def test_single_user_runs_and_jobs_cannot_name_a_job(client: FlaskClient) -> None:
    """Without namespaces too: a job's runs are the scheduler's alone."""
    job = client.post(API + "/jobs", json={"name": "j", "max_concurrency": 1,
                                           "pipeline_spec": {"workflow_manifest": _manifest()}})
    assert job.status_code == 200
    job_ref = [{"key": {"type": "JOB", "id": job.get_json()["id"]}, "relationship": "CREATOR"}]
    for path, extra in (("/runs", {"name": "r"}), ("/jobs", {"max_concurrency": 1})):
        body = {**extra, "pipeline_spec": {"workflow_manifest": _manifest()}, "resource_references": job_ref}
        assert _error(client.post(API + path, json=body), 400) == (
            "Unsupported resource type: JOB. Only the scheduler links a run to the job that created it.")
    by_job = {"resource_reference_key.type": "JOB", "resource_reference_key.id": job.get_json()["id"]}
    assert client.get(API + "/runs", query_string=by_job).get_json() == {}


def test_multi_user_mode_refuses_file_urls(side_by_side: tuple[FlaskClient, Tokens], tmp_path: Path) -> None:
    """A file URL would make the server read its own files for the caller: http(s) only, as upstream."""
    client, tokens = side_by_side
    admin = Api(client, tokens.admin)
    package = tmp_path / "p.yaml"
    package.write_text(WORKFLOW)
    url = package.as_uri()
    refused = (f"Invalid Pipeline URL {url}. Please specify a valid URL: in multi-user mode the server downloads "
               "http and https URLs only.")
    body = {"name": "from-file", "url": {"pipeline_url": url}, "resource_references": _owner(TEAM_A)}
    assert _error(admin.call("POST", "/pipelines", json=body), 400) == refused
    version = {"name": "v", "package_url": {"pipeline_url": url},
               "resource_references": [{"key": {"type": "PIPELINE", "id": "any"}, "relationship": "OWNER"}]}
    assert _error(admin.call("POST", "/pipeline_versions", json=version), 400) == refused


def test_a_trusted_user_header_is_not_limited_by_namespace(settings: Settings) -> None:
    app = create_app(settings.replace(auth="required", trust_user_header=True))
    try:
        client = app.test_client()
        headers = {"kubeflow-userid": "carol@example.com"}
        created = client.post(API + "/experiments", headers=headers,
                              json={"name": "x", "resource_references": _owner("anywhere")})
        assert created.status_code == 200, created.get_json()
        listed = client.get(API + "/experiments", headers=headers, query_string=_ns_key("anywhere")).get_json()
        assert [e["name"] for e in listed["experiments"]] == ["x"]
    finally:
        shutdown(app)


def test_single_user_mode_is_unchanged(client: FlaskClient) -> None:
    """Authentication off (the `make serve` default): no namespaces, namespace-less lists, the Default experiment."""
    assert client.get(API + "/healthz").get_json()["multi_user"] is False
    for path in ("/experiments", "/runs", "/jobs", "/pipelines"):
        assert client.get(API + path).status_code == 200, path
    assert _error(client.post(API + "/experiments", json={"name": "x", "resource_references": _owner(TEAM_A)}),
                  400) == "In single-user mode, CreateExperimentRequest shouldn't contain resource references."
    assert _error(client.get(API + "/experiments", query_string=_ns_key(TEAM_A)), 400) == (
        "In single-user mode, ListExperiment cannot filter by namespace.")
    run = client.post(API + "/runs", json={"name": "r", "pipeline_spec": {"workflow_manifest": _manifest()}})
    assert run.status_code == 200
    assert [r["key"]["type"] for r in run.get_json()["run"]["resource_references"]] == ["EXPERIMENT"]
    experiment = client.get(API + "/experiments/" + run.get_json()["run"]["resource_references"][0]["key"]["id"])
    assert "resource_references" not in experiment.get_json()
