"""Idempotent creation (the `Idempotency-Key` header) on every create endpoint of both APIs, on every database:
a replay answers the first response and creates nothing, another request under the key is a 422, a request
while the first is still running a 409, a failure releases the key, keys expire after 24 hours (a clock the
test moves), keys belong to their caller, malformed keys are 400s, and 16 identical requests at once over real
HTTP, through two API replicas, create exactly one run."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.scheduler.cron import cron_error
from kfp_backend.services.all_services import Services
from kfp_backend.services.auth import AuthService
from kfp_backend.services.clock import now_seconds
from kfp_backend.services.idempotency import IN_FLIGHT_SECONDS, KEY_TTL_SECONDS, PURGE_EVERY_SECONDS
from kfp_backend.store.db import Database
from kfp_backend.store.models import IdempotencyKey
from tests.api.test_upload import workflow_yaml
from tests.api.test_v2_experiments import v2_error
from tests.api.test_v2_pipelines import IR
from tests.gateway_errors import gateway_error
from tests.http_server import RouteHandler, route_server, served_app, without_proxies

V1 = "/apis/v1beta1"
V2 = "/apis/v2beta1"
KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
WORKFLOW = workflow_yaml("idempotent")
MULTIPART = "multipart/form-data"


class MovableClock:
    """The services' clock: the time now, until a test moves it."""

    def __init__(self) -> None:
        self.now = now_seconds()

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


def _build(settings: Settings, clock: MovableClock) -> Flask:
    database = Database(settings.effective_database_url, pool_size=settings.threads)
    return create_app(settings, Services.build(settings, database, cron_check=cron_error, clock=clock))


@pytest.fixture
def app(settings: Settings, clock: MovableClock) -> Iterator[Flask]:
    application = _build(settings, clock)
    yield application
    shutdown(application)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxies(monkeypatch)


def ok(response: Any) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def total(client: FlaskClient, path: str, **query: Any) -> int:
    return ok(client.get(path, query_string={"page_size": 1, **query})).get("total_size", 0)


def stored_keys(services: Services) -> int:
    with services.db.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(IdempotencyKey)) or 0


# --- every create endpoint --------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """One create endpoint: `send(client, variant, headers)` posts a request (variants differ in their
    request), `count(client)` counts what it creates through a list call, `error_shape` names its error body."""

    name: str
    send: Callable[[FlaskClient, str, dict[str, str]], Any]
    count: Callable[[FlaskClient], int]
    error_shape: str = "gateway"  # or "upload", "v2"


def _upload(client: FlaskClient, path: str, headers: dict[str, str], **query: str) -> Any:
    form = {"uploadfile": (io.BytesIO(WORKFLOW.encode()), "idempotent.yaml")}
    return client.post(path, data=form, content_type=MULTIPART, query_string=query, headers=headers)


def _ir_upload(client: FlaskClient, path: str, headers: dict[str, str], **query: str) -> Any:
    form = {"uploadfile": (io.BytesIO(yaml.safe_dump(IR).encode()), "ir.yaml")}
    return client.post(path, data=form, content_type=MULTIPART, query_string=query, headers=headers)


def _endpoints(pipeline_id: str, package_url: str) -> list[Endpoint]:
    argo = yaml.safe_load(WORKFLOW)
    spec = {"workflow_manifest": WORKFLOW}
    later = "2999-01-01T00:00:00Z"
    owner = [{"key": {"type": "PIPELINE", "id": pipeline_id}, "relationship": "OWNER"}]

    def pipelines(client: FlaskClient) -> int:
        return total(client, f"{V1}/pipelines")

    def versions(client: FlaskClient) -> int:
        return total(client, f"{V1}/pipeline_versions", **{"resource_key.type": "PIPELINE",
                                                               "resource_key.id": pipeline_id})

    def post(path: str, body: Callable[[str], dict]) -> Callable[[FlaskClient, str, dict[str, str]], Any]:
        return lambda client, variant, headers: client.post(path, json=body(variant), headers=headers)

    return [
        Endpoint("v1 experiment", post(f"{V1}/experiments", lambda v: {"name": f"e-{v}"}),
                 lambda c: total(c, f"{V1}/experiments")),
        Endpoint("v2 experiment", post(f"{V2}/experiments", lambda v: {"display_name": f"e2-{v}"}),
                 lambda c: total(c, f"{V1}/experiments"), "v2"),
        Endpoint("v1 run", post(f"{V1}/runs", lambda v: {"name": f"r-{v}", "pipeline_spec": spec}),
                 lambda c: total(c, f"{V1}/runs")),
        Endpoint("v2 run", post(f"{V2}/runs", lambda v: {"display_name": f"r2-{v}", "pipeline_spec": argo}),
                 lambda c: total(c, f"{V1}/runs"), "v2"),
        Endpoint("v1 job", post(f"{V1}/jobs", lambda v: {
            "name": f"j-{v}", "pipeline_spec": spec, "max_concurrency": 1,
            "trigger": {"periodic_schedule": {"interval_second": 3600, "start_time": later}}}),
            lambda c: total(c, f"{V1}/jobs")),
        Endpoint("v2 recurring run", post(f"{V2}/recurringruns", lambda v: {
            "display_name": f"j2-{v}", "pipeline_spec": argo, "max_concurrency": "1",
            "trigger": {"periodic_schedule": {"interval_second": 3600, "start_time": later}}}),
            lambda c: total(c, f"{V1}/jobs"), "v2"),
        Endpoint("v1 pipeline from a URL", post(f"{V1}/pipelines", lambda v: {
            "name": f"p-{v}", "url": {"pipeline_url": package_url}}), pipelines),
        Endpoint("v1 version from a URL", post(f"{V1}/pipeline_versions", lambda v: {
            "name": f"v-{v}", "package_url": {"pipeline_url": package_url}, "resource_references": owner}), versions),
        Endpoint("v1 upload", lambda c, v, h: _upload(c, f"{V1}/pipelines/upload", h, name=f"u-{v}"), pipelines,
                 "upload"),
        Endpoint("v1 upload_version", lambda c, v, h: _upload(c, f"{V1}/pipelines/upload_version", h,
                                                              pipelineid=pipeline_id, name=f"uv-{v}"),
                 versions, "upload"),
        Endpoint("v2 upload", lambda c, v, h: _ir_upload(c, f"{V2}/pipelines/upload", h, name=f"u2-{v}"), pipelines,
                 "upload"),
        Endpoint("v2 upload_version", lambda c, v, h: _ir_upload(c, f"{V2}/pipelines/upload_version", h,
                                                                 pipelineid=pipeline_id, name=f"uv2-{v}"),
                 versions, "upload"),
        Endpoint("v2 pipeline", post(f"{V2}/pipelines", lambda v: {"display_name": f"p2-{v}"}), pipelines, "v2"),
        Endpoint("v2 pipeline and version", post(f"{V2}/pipelines/create", lambda v: {
            "pipeline": {"display_name": f"pc-{v}"}, "pipeline_version": {"pipeline_spec": IR}}), pipelines, "v2"),
        Endpoint("v2 version", post(f"{V2}/pipelines/{pipeline_id}/versions", lambda v: {
            "display_name": f"v2-{v}", "pipeline_spec": IR}), versions, "v2"),
    ]


def check_error(response: Any, shape: str, status: int) -> str:
    """The response is an error of `status` in the endpoint's body shape; returns its message."""
    if shape == "upload":
        assert response.status_code == status, response.get_data(as_text=True)
        body = response.get_json()
        assert set(body) == {"error_message", "error_details"}, body
        return body["error_message"]
    if shape == "v2":
        return v2_error(response, status, response.get_json()["code"])["message"]
    return gateway_error(response, status)["error"]


def test_every_create_endpoint_replays_and_refuses_another_request(client: FlaskClient, tmp_path: Path) -> None:
    package = tmp_path / "package.yaml"
    package.write_text(WORKFLOW)
    pipeline_id = ok(_upload(client, f"{V1}/pipelines/upload", {}, name="base"))["id"]
    for endpoint in _endpoints(pipeline_id, package.as_uri()):
        key = {KEY: f"key of {endpoint.name}"}
        first = endpoint.send(client, "a", key)
        assert first.status_code == 200, (endpoint.name, first.get_data(as_text=True))
        assert REPLAYED not in first.headers
        created = endpoint.count(client)

        again = endpoint.send(client, "a", key)
        assert again.status_code == 200, (endpoint.name, again.get_data(as_text=True))
        assert again.get_data() == first.get_data(), endpoint.name  # the same answer: the same id
        assert again.headers[REPLAYED] == "true" and again.mimetype == "application/json"
        assert endpoint.count(client) == created, endpoint.name  # nothing created

        other = endpoint.send(client, "b", key)
        message = check_error(other, endpoint.error_shape, 422)
        assert "another request" in message, (endpoint.name, message)
        assert endpoint.count(client) == created, endpoint.name

        # Without the header, or with another key, the same request creates again (names are unique: "b").
        assert endpoint.send(client, "b", {KEY: f"second key of {endpoint.name}"}).status_code == 200
        assert endpoint.count(client) == created + 1, endpoint.name


def test_the_request_is_the_method_path_query_and_body(client: FlaskClient) -> None:
    key = {KEY: "k"}
    body = {"name": "r", "pipeline_spec": {"workflow_manifest": WORKFLOW}}
    first = ok(client.post(f"{V1}/runs", json=body, headers=key))
    # The same body under another path (the v2 API) or with a query is another request.
    check_error(client.post(f"{V1}/experiments", json=body, headers=key), "gateway", 422)
    check_error(client.post(f"{V1}/runs", json=body, headers=key, query_string={"x": "1"}), "gateway", 422)
    # The same bytes: the same request (a JSON body counts byte for byte).
    same = client.post(f"{V1}/runs", data=json.dumps(body), content_type="application/json", headers=key)
    assert ok(same)["run"]["id"] == first["run"]["id"]
    assert total(client, f"{V1}/runs") == 1


def test_an_upload_is_the_same_request_whatever_its_multipart_boundary(client: FlaskClient) -> None:
    key = {KEY: "upload"}
    form = {"uploadfile": (io.BytesIO(WORKFLOW.encode()), "p.yaml")}
    first = client.post(f"{V1}/pipelines/upload", data=form, content_type=f"{MULTIPART}; boundary=one",
                        headers=key)
    form = {"uploadfile": (io.BytesIO(WORKFLOW.encode()), "p.yaml")}
    again = client.post(f"{V1}/pipelines/upload", data=form, content_type=f"{MULTIPART}; boundary=two",
                        headers=key)
    assert ok(again)["id"] == ok(first)["id"] and again.headers[REPLAYED] == "true"
    # Another file, or the same file under another name, is another request.
    for other in ((io.BytesIO(workflow_yaml("other").encode()), "p.yaml"), (io.BytesIO(WORKFLOW.encode()), "q.yaml")):
        response = client.post(f"{V1}/pipelines/upload", data={"uploadfile": other}, content_type=MULTIPART,
                               headers=key)
        check_error(response, "upload", 422)
    assert total(client, f"{V1}/pipelines") == 1


# --- failures, expiry, callers ------------------------------------------------------------------------------


def test_a_failed_request_releases_its_key(client: FlaskClient) -> None:
    key = {KEY: "retry me"}
    ok(client.post(f"{V1}/experiments", json={"name": "taken"}))
    taken = client.post(f"{V1}/experiments", json={"name": "taken"}, headers=key)
    gateway_error(taken, 409, 6)  # the name is taken: not recorded under the key
    bad = client.post(f"{V1}/experiments", json={"name": ""}, headers=key)
    gateway_error(bad, 400, 3)  # a failure with another body: not a 422, the key was released
    experiments = ok(client.get(f"{V1}/experiments", query_string={"filter": json.dumps(
        {"predicates": [{"key": "name", "op": "EQUALS", "string_value": "taken"}]})}))["experiments"]
    ok(client.delete(f"{V1}/experiments/{experiments[0]['id']}"))
    created = ok(client.post(f"{V1}/experiments", json={"name": "taken"}, headers=key))
    again = client.post(f"{V1}/experiments", json={"name": "taken"}, headers=key)
    assert ok(again)["id"] == created["id"] and again.headers[REPLAYED] == "true"


def test_keys_expire_after_24_hours_and_are_purged(client: FlaskClient, services: Services,
                                                   clock: MovableClock) -> None:
    body = {"name": "daily", "pipeline_spec": {"workflow_manifest": WORKFLOW}}
    first = ok(client.post(f"{V1}/runs", json=body, headers={KEY: "daily"}))["run"]["id"]
    ok(client.post(f"{V1}/experiments", json={"name": "other"}, headers={KEY: "other"}))
    assert stored_keys(services) == 2

    clock.now += KEY_TTL_SECONDS - 1
    replayed = client.post(f"{V1}/runs", json=body, headers={KEY: "daily"})
    assert ok(replayed)["run"]["id"] == first and replayed.headers[REPLAYED] == "true"

    clock.now += 1  # 24 hours after the first request: the key is new again
    second = client.post(f"{V1}/runs", json=body, headers={KEY: "daily"})
    assert ok(second)["run"]["id"] != first and REPLAYED not in second.headers
    assert total(client, f"{V1}/runs") == 2
    # The expired key "other" is purged by the next keyed request once the last purge is PURGE_EVERY_SECONDS old.
    assert stored_keys(services) == 2
    clock.now += PURGE_EVERY_SECONDS
    assert ok(client.post(f"{V1}/runs", json=body, headers={KEY: "daily"}))["run"]["id"] == ok(second)["run"]["id"]
    assert stored_keys(services) == 1


def test_keys_belong_to_their_caller(db_url: str, tmp_path: Path, clock: MovableClock) -> None:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", threads=2, executor_enabled=False,
                        scheduler_enabled=False, auth="required")
    application = _build(settings, clock)
    try:
        tokens = AuthService(application.extensions["kfp_backend.services"].db)
        callers = {}
        for label, user in (("alice", "alice"), ("alice again", "alice"), ("carol", "carol")):
            _, secret = tokens.create_token(user, ["team-a"])
            callers[label] = {"Authorization": f"Bearer {secret}", KEY: "shared key"}
        client = application.test_client()
        experiment = ok(client.post(f"{V2}/experiments", json={"display_name": "e", "namespace": "team-a"},
                                    headers={"Authorization": callers["alice"]["Authorization"]}))
        body = {"display_name": "r", "pipeline_spec": yaml.safe_load(WORKFLOW),
                "experiment_id": experiment["experiment_id"]}
        alice = ok(client.post(f"{V2}/runs", json=body, headers=callers["alice"]))
        # Another token of the same user (and namespaces) is the same caller: the first answer again.
        replayed = client.post(f"{V2}/runs", json=body, headers=callers["alice again"])
        assert ok(replayed)["run_id"] == alice["run_id"] and replayed.headers[REPLAYED] == "true"
        # Another user's key of the same name is another key: a run of its own.
        answer = client.post(f"{V2}/runs", json=body, headers=callers["carol"])
        carol = ok(answer)
        assert carol["run_id"] != alice["run_id"] and REPLAYED not in answer.headers
        listed = ok(client.get(f"{V2}/runs", query_string={"namespace": "team-a"},
                               headers={"Authorization": callers["carol"]["Authorization"]}))
        assert sorted(run["run_id"] for run in listed["runs"]) == sorted([alice["run_id"], carol["run_id"]])
    finally:
        shutdown(application)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_malformed_keys_are_400(client: FlaskClient) -> None:
    body = {"name": "r", "pipeline_spec": {"workflow_manifest": WORKFLOW}}
    for key in ("", "x" * 256, "caf\u00e9", "tab\there", "del\x7f"):
        message = gateway_error(client.post(f"{V1}/runs", json=body, headers={KEY: key}), 400, 3)["error"]
        assert "Idempotency-Key" in message and "printable ASCII" in message, message
        v2_error(client.post(f"{V2}/experiments", json={"display_name": "e"}, headers={KEY: key}), 400, 3)
        form = {"uploadfile": (io.BytesIO(WORKFLOW.encode()), "p.yaml")}
        check_error(client.post(f"{V1}/pipelines/upload", data=form, content_type=MULTIPART, headers={KEY: key}),
                    "upload", 400)
    assert total(client, f"{V1}/runs") == 0 and total(client, f"{V1}/pipelines") == 0
    # 255 printable characters, spaces included, are a key.
    assert ok(client.post(f"{V1}/runs", json=body, headers={KEY: " ~" * 127 + "!"}))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_requests_without_the_header_never_touch_the_keys(app: Flask, client: FlaskClient) -> None:
    statements: list[str] = []
    engine = app.extensions["kfp_backend.services"].db.engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        ok(client.post(f"{V1}/runs", json={"name": "r", "pipeline_spec": {"workflow_manifest": WORKFLOW}}))
        ok(client.post(f"{V1}/experiments", json={"name": "e"}))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements and not [s for s in statements if "idempotency_keys" in s]


# --- concurrency --------------------------------------------------------------------------------------------


def test_a_second_request_while_the_first_runs_is_409(app: Flask, client: FlaskClient) -> None:
    """The first request downloads its pipeline from a server that holds the answer until the test lets it go:
    meanwhile the key is claimed and its request unanswered."""
    fetching, release = threading.Event(), threading.Event()

    class HeldHandler(RouteHandler):
        def do_GET(self) -> None:
            fetching.set()
            release.wait(timeout=60)
            super().do_GET()

    with route_server({"/held.yaml": (200, WORKFLOW.encode(), {})}, HeldHandler) as server:
        body = {"name": "held", "url": {"pipeline_url": f"{server.base_url}/held.yaml"}}
        key = {KEY: "held"}
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(lambda: app.test_client().post(f"{V1}/pipelines", json=body, headers=key))
            try:
                assert fetching.wait(timeout=60), "the first request never fetched its pipeline"
                in_flight = gateway_error(client.post(f"{V1}/pipelines", json=body, headers=key), 409, 10)
                assert "still in progress" in in_flight["error"]
                # Another request under the key is refused as such, even now.
                gateway_error(client.post(f"{V1}/pipelines", json={**body, "name": "x"}, headers=key), 422)
            finally:
                release.set()
            created = ok(first.result(timeout=60))
    replayed = client.post(f"{V1}/pipelines", json=body, headers=key)
    assert ok(replayed)["id"] == created["id"] and replayed.headers[REPLAYED] == "true"
    assert total(client, f"{V1}/pipelines") == 1


def test_a_claim_never_answered_is_taken_over_after_a_while(app: Flask, client: FlaskClient,
                                                            clock: MovableClock) -> None:
    """A request that holds its key far longer than any request takes (as if its process had died) loses it: the
    next request with the key runs, and is what the key answers from then on, whatever the first one does."""
    fetching, release = threading.Event(), threading.Event()

    class FirstHeldHandler(RouteHandler):
        def do_GET(self) -> None:
            if not fetching.is_set():
                fetching.set()
                release.wait(timeout=60)
            super().do_GET()

    with route_server({"/held.yaml": (200, WORKFLOW.encode(), {})}, FirstHeldHandler) as server:
        body = {"name": "held", "url": {"pipeline_url": f"{server.base_url}/held.yaml"}}
        key = {KEY: "abandoned"}
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(lambda: app.test_client().post(f"{V1}/pipelines", json=body, headers=key))
            try:
                assert fetching.wait(timeout=60), "the first request never fetched its pipeline"
                gateway_error(client.post(f"{V1}/pipelines", json=body, headers=key), 409, 10)
                clock.now += IN_FLIGHT_SECONDS
                second = client.post(f"{V1}/pipelines", json=body, headers=key)
                taken_over = ok(second)
                assert REPLAYED not in second.headers
            finally:
                release.set()
            gateway_error(first.result(timeout=60), 409, 6)  # its name was taken by the second meanwhile
    replayed = client.post(f"{V1}/pipelines", json=body, headers=key)
    assert ok(replayed)["id"] == taken_over["id"] and replayed.headers[REPLAYED] == "true"


def test_16_identical_requests_at_once_create_one_run(app: Flask, settings: Settings, clock: MovableClock) -> None:
    """16 clients send the same keyed create at once over HTTP, half to each of two API replicas sharing the
    database: one run is created; every answer is that run or a 409 (its request still running)."""
    replica = _build(settings, clock)
    body = {"name": "once", "pipeline_spec": {"workflow_manifest": WORKFLOW}}
    try:
        with served_app(app) as first_url, served_app(replica) as second_url:
            start = threading.Barrier(16)

            def send(index: int) -> requests.Response:
                with requests.Session() as session:
                    url = first_url if index % 2 else second_url
                    start.wait(timeout=60)
                    return session.post(f"{url}{V1}/runs", json=body, headers={KEY: "exactly once"}, timeout=120)

            with ThreadPoolExecutor(max_workers=16) as pool:
                responses = list(pool.map(send, range(16)))
            listed = requests.get(f"{first_url}{V1}/runs", timeout=60).json()
    finally:
        shutdown(replica)
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {200, 409}, [response.text for response in responses]
    created = {response.json()["run"]["id"] for response in responses if response.status_code == 200}
    assert len(created) == 1, statuses
    assert [run["id"] for run in listed["runs"]] == list(created)
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == 10
