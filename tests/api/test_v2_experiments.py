"""The v2beta1 healthz and ExperimentService over HTTP on every database: the v2 wire (field and enum names,
the filter's `operation`, the google.rpc.Status error body), bad input as 4xx JSON, and one set of rows
shared with v1beta1."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.auth import AuthService

V2 = "/apis/v2beta1"
EXPERIMENTS = f"{V2}/experiments"
V1_EXPERIMENTS = "/apis/v1beta1/experiments"
EPOCH = "1970-01-01T00:00:00Z"
STATUS_TYPE = "type.googleapis.com/google.rpc.Status"
WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: v2-check-
spec:
  entrypoint: say
  templates:
    - name: say
      container:
        image: alpine:3.19
        command: [echo, hello]
"""
only_sqlite = pytest.mark.parametrize("backend", ["sqlite"])


def v2_error(response: Any, status: int, code: int, *, detail: bool = True) -> dict:
    """Check grpc-gateway v2's error body (no `error` key) and return it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    if not detail:
        assert set(body) == {"code", "message"}
        return body
    assert set(body) == {"code", "message", "details"}
    (item,) = body["details"]
    assert item == {"@type": STATUS_TYPE, "code": code, "message": item["message"]}
    assert item["message"] and item["message"] in body["message"]
    return body


def create(client: FlaskClient, body: object) -> dict:
    response = client.post(EXPERIMENTS, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def listed(client: FlaskClient, **params: Any) -> dict:
    response = client.get(EXPERIMENTS, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def names(page: dict) -> list[str]:
    return [item["display_name"] for item in page.get("experiments", [])]


def v2_filter(*predicates: dict) -> str:
    return json.dumps({"predicates": list(predicates)})


def seconds(timestamp: str) -> int:
    return int(datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


# ---------------------------------------------------------------------------------------------- healthz


@only_sqlite
def test_healthz_answers_the_v2_body_on_any_method(client: FlaskClient) -> None:
    for method in ("GET", "POST", "DELETE"):
        response = client.open(f"{V2}/healthz", method=method)
        assert response.status_code == 200
        body = response.get_json()
        assert list(body) == ["commit_sha", "tag_name", "multi_user", "pipeline_store"]
        assert body["multi_user"] is False and body["pipeline_store"] == "database"


# ---------------------------------------------------------------------------------------------- create/get


def test_create_and_get(client: FlaskClient) -> None:
    created = create(client, {"display_name": "training", "description": "first"})
    assert list(created) == [
        "experiment_id", "display_name", "description", "created_at", "storage_state", "last_run_created_at",
    ]
    assert created["display_name"] == "training" and created["description"] == "first"
    assert created["storage_state"] == "AVAILABLE"
    assert created["last_run_created_at"] == EPOCH
    assert abs(seconds(created["created_at"]) - datetime.now(timezone.utc).timestamp()) < 60
    assert "namespace" not in created  # single-user mode: no namespace
    got = client.get(f"{EXPERIMENTS}/{created['experiment_id']}")
    assert got.status_code == 200 and got.get_json() == created


def test_camel_case_keys_and_ignored_output_fields(client: FlaskClient) -> None:
    created = create(client, {
        "displayName": "camel", "experimentId": "mine", "storage_state": "ARCHIVED",
        "created_at": "2001-01-01T00:00:00Z", "last_run_created_at": "2001-01-01T00:00:00Z", "namespace": "ns",
    })
    assert created["display_name"] == "camel"
    assert created["experiment_id"] != "mine" and created["storage_state"] == "AVAILABLE"
    assert created["created_at"] != "2001-01-01T00:00:00Z" and "namespace" not in created


def test_same_name_twice_is_409(client: FlaskClient) -> None:
    create(client, {"display_name": "twice"})
    body = v2_error(client.post(EXPERIMENTS, json={"display_name": "twice"}), 409, 6)
    assert "The name twice already exists" in body["details"][0]["message"]


@pytest.mark.parametrize(("body", "text"), [
    ({}, "Experiment name is empty"),
    ({"display_name": ""}, "Experiment name is empty"),
    ({"description": "no name"}, "Experiment name is empty"),
    ({"display_name": "x" * 256}, "too long"),
    ({"display_name": "x", "op": 1}, "Unknown field"),
    ({"display_name": 5}, "display_name"),
    ({"display_name": ["x"]}, "display_name"),
    ({"display_name": "x", "storage_state": "BOGUS"}, "storage_state"),
    ({"display_name": "x", "created_at": "yesterday"}, "created_at"),
    ({"display_name": "nul\u0000"}, "experiment.name"),
])
def test_bad_create_bodies_are_400(client: FlaskClient, body: dict, text: str) -> None:
    assert text in v2_error(client.post(EXPERIMENTS, json=body), 400, 3)["message"]


@only_sqlite
@pytest.mark.parametrize("raw", [b"{", b"[]", b"5", b'"x"', b"null"])
def test_bodies_that_are_not_an_object_are_400(client: FlaskClient, raw: bytes) -> None:
    v2_error(client.post(EXPERIMENTS, data=raw, content_type="application/json"), 400, 3)


@only_sqlite
def test_other_content_type_is_415(client: FlaskClient) -> None:
    response = client.post(EXPERIMENTS, data="display_name=x", content_type="application/x-www-form-urlencoded")
    v2_error(response, 415, 3, detail=False)


def test_missing_experiment_is_404_everywhere(client: FlaskClient) -> None:
    missing = f"{EXPERIMENTS}/{uuid.uuid4()}"
    for method, path in (("GET", missing), ("DELETE", missing), ("POST", f"{missing}:archive"),
                         ("POST", f"{missing}:unarchive")):
        body = v2_error(client.open(path, method=method), 404, 5)
        assert "not found" in body["details"][0]["message"]


@only_sqlite
def test_unknown_route_and_wrong_method(client: FlaskClient) -> None:
    for path in (f"{V2}/nope", f"{EXPERIMENTS}/a/b", f"{V2}/runs/a/b"):
        assert v2_error(client.get(path), 404, 5, detail=False)["message"] == "Not Found"
    for method, path in (("PUT", EXPERIMENTS), ("DELETE", EXPERIMENTS), ("POST", f"{EXPERIMENTS}/x"),
                         ("PATCH", f"{EXPERIMENTS}/x"), ("PUT", f"{EXPERIMENTS}/x:archive")):
        # grpc-gateway v2 answers a known path with another method as UNIMPLEMENTED.
        assert v2_error(client.open(path, method=method), 501, 12, detail=False)["message"] == "Method Not Allowed"


# ---------------------------------------------------------------------------------------------- list


def test_list_pages_sorts_and_filters(client: FlaskClient) -> None:
    for name in ("x-alpha", "x-beta", "x-gamma", "x-delta"):
        create(client, {"display_name": name})
    everything = listed(client, page_size=200)
    assert set(names(everything)) == {"Default", "x-alpha", "x-beta", "x-gamma", "x-delta"}
    assert everything["total_size"] == 5 and "next_page_token" not in everything

    ours = v2_filter({"operation": "IS_SUBSTRING", "key": "display_name", "string_value": "x-"})
    first = listed(client, page_size=3, sort_by="display_name desc", filter=ours)
    assert names(first) == ["x-gamma", "x-delta", "x-beta"] and first["total_size"] == 4
    second = listed(client, page_size=3, page_token=first["next_page_token"])
    assert names(second) == ["x-alpha"] and "next_page_token" not in second
    again = listed(client, pageSize=3, pageToken=first["next_page_token"], sortBy="display_name desc", filter=ours)
    assert again == second

    by_name = v2_filter({"operation": "EQUALS", "key": "display_name", "string_value": "x-beta"})
    assert names(listed(client, filter=by_name)) == ["x-beta"]
    numeric_op = v2_filter({"operation": 9, "key": "display_name", "stringValue": "ta"})
    assert names(listed(client, filter=numeric_op, sort_by="display_name")) == ["x-beta", "x-delta"]
    # The v1 names, which upstream accepts on v2 as well.
    v1_key = v2_filter({"operation": "EQUALS", "key": "name", "string_value": "x-beta"})
    assert names(listed(client, filter=v1_key)) == ["x-beta"]
    wanted = {"x-alpha", "x-gamma"}
    ids = [item["experiment_id"] for item in everything["experiments"] if item["display_name"] in wanted]
    by_ids = v2_filter({"operation": "IN", "key": "experiment_id", "string_values": {"values": ids}})
    assert sorted(names(listed(client, filter=by_ids))) == ["x-alpha", "x-gamma"]
    assert listed(client, filter=v2_filter({"operation": "EQUALS", "key": "display_name", "string_value": "no"})) == {}
    # In single-user mode a namespace is ignored, as upstream ignores it.
    assert listed(client, namespace="kubeflow", page_size=200)["total_size"] == 5


def test_filter_on_storage_state_uses_v2_names(client: FlaskClient) -> None:
    kept = create(client, {"display_name": "kept"})
    archived = create(client, {"display_name": "archived"})
    assert client.post(f"{EXPERIMENTS}/{archived['experiment_id']}:archive").get_json() == {}
    is_archived = v2_filter({"operation": "EQUALS", "key": "storage_state", "string_value": "ARCHIVED"})
    assert names(listed(client, filter=is_archived)) == ["archived"]
    available = v2_filter({"operation": "IN", "key": "storage_state", "string_values": {"values": ["AVAILABLE"]}})
    assert sorted(names(listed(client, filter=available))) == ["Default", "kept"]
    assert kept["storage_state"] == "AVAILABLE"


@pytest.mark.parametrize("params", [
    {"filter": v2_filter({"op": "EQUALS", "key": "display_name", "string_value": "x"})},
    {"filter": v2_filter({"operation": "OPERATION_UNSPECIFIED", "key": "display_name", "string_value": "x"})},
    {"filter": v2_filter({"operation": "NOPE", "key": "display_name", "string_value": "x"})},
    {"filter": v2_filter({"operation": "EQUALS", "key": "last_run_created_at", "string_value": "x"})},
    {"filter": v2_filter({"operation": "EQUALS", "key": "unknown", "string_value": "x"})},
    {"filter": v2_filter({"operation": "IS_SUBSTRING", "key": "created_at", "string_value": "x"})},
    {"filter": v2_filter({"operation": "EQUALS", "key": "display_name"})},
    {"filter": v2_filter("not a predicate")},
    {"filter": "{"},
    {"filter": "[1]"},
    {"sort_by": "nope"},
    {"sort_by": "display_name sideways"},
    {"page_size": "ten"},
    {"page_size": "-1"},
    {"page_token": "%%%"},
])
def test_bad_list_parameters_are_400(client: FlaskClient, params: dict) -> None:
    v2_error(client.get(EXPERIMENTS, query_string=params), 400, 3)


def test_page_token_must_match_the_filter(client: FlaskClient) -> None:
    for name in ("a1", "a2", "a3"):
        create(client, {"display_name": name})
    contains = v2_filter({"operation": "IS_SUBSTRING", "key": "display_name", "string_value": "a"})
    first = listed(client, page_size=1, filter=contains)
    other = v2_filter({"operation": "IS_SUBSTRING", "key": "display_name", "string_value": "b"})
    v2_error(client.get(EXPERIMENTS, query_string={"page_token": first["next_page_token"], "filter": other}), 400, 3)
    same = listed(client, page_size=1, filter=contains, page_token=first["next_page_token"])
    assert same["total_size"] == first["total_size"]


# ---------------------------------------------------------------------------------------------- archive/delete


def test_archive_unarchive_and_delete(client: FlaskClient) -> None:
    created = create(client, {"display_name": "cycle"})
    one = f"{EXPERIMENTS}/{created['experiment_id']}"
    assert client.post(f"{one}:archive").get_json() == {}
    assert client.get(one).get_json()["storage_state"] == "ARCHIVED"
    assert client.post(f"{one}:unarchive").get_json() == {}
    assert client.get(one).get_json()["storage_state"] == "AVAILABLE"
    response = client.delete(one)
    assert response.status_code == 200 and response.get_json() == {}
    v2_error(client.get(one), 404, 5)


# ---------------------------------------------------------------------------------------------- one set of rows


def test_both_apis_see_one_experiment(client: FlaskClient) -> None:
    through_v2 = create(client, {"display_name": "from-v2", "description": "d2"})
    v1_view = client.get(f"{V1_EXPERIMENTS}/{through_v2['experiment_id']}").get_json()
    assert (v1_view["name"], v1_view["description"], v1_view["created_at"]) == (
        "from-v2", "d2", through_v2["created_at"])
    assert v1_view["storage_state"] == "STORAGESTATE_AVAILABLE"

    response = client.post(V1_EXPERIMENTS, json={"name": "from-v1", "description": "d1"})
    through_v1 = response.get_json()
    v2_view = client.get(f"{EXPERIMENTS}/{through_v1['id']}").get_json()
    assert (v2_view["display_name"], v2_view["description"], v2_view["created_at"]) == (
        "from-v1", "d1", through_v1["created_at"])
    # A name taken through one API is taken for the other.
    v2_error(client.post(EXPERIMENTS, json={"display_name": "from-v1"}), 409, 6)

    # Archived through v1, seen archived through v2, and back.
    client.post(f"{V1_EXPERIMENTS}/{through_v2['experiment_id']}:archive")
    assert client.get(f"{EXPERIMENTS}/{through_v2['experiment_id']}").get_json()["storage_state"] == "ARCHIVED"
    client.post(f"{EXPERIMENTS}/{through_v2['experiment_id']}:unarchive")
    v1_state = client.get(f"{V1_EXPERIMENTS}/{through_v2['experiment_id']}").get_json()["storage_state"]
    assert v1_state == "STORAGESTATE_AVAILABLE"
    client.delete(f"{EXPERIMENTS}/{through_v1['id']}")
    assert client.get(f"{V1_EXPERIMENTS}/{through_v1['id']}").status_code == 404


def test_last_run_created_at_is_the_newest_run(client: FlaskClient) -> None:
    busy = create(client, {"display_name": "busy"})
    idle = create(client, {"display_name": "idle"})
    reference = [{"key": {"type": "EXPERIMENT", "id": busy["experiment_id"]}, "relationship": "OWNER"}]
    runs = []
    for name in ("one", "two"):
        response = client.post("/apis/v1beta1/runs", json={
            "name": name, "pipeline_spec": {"workflow_manifest": WORKFLOW}, "resource_references": reference,
        })
        assert response.status_code == 200, response.get_data(as_text=True)
        runs.append(response.get_json()["run"])
    newest = max(seconds(run["created_at"]) for run in runs)
    got = client.get(f"{EXPERIMENTS}/{busy['experiment_id']}").get_json()
    assert seconds(got["last_run_created_at"]) == newest
    page = {item["display_name"]: item for item in listed(client, page_size=200)["experiments"]}
    assert seconds(page["busy"]["last_run_created_at"]) == newest
    assert page["idle"]["last_run_created_at"] == EPOCH == idle["last_run_created_at"]

    # Sorted and filtered on it, pages included.
    by_last_run = listed(client, page_size=2, sort_by="last_run_created_at desc")
    assert names(by_last_run)[0] == "busy"
    rest = listed(client, page_size=200, sort_by="last_run_created_at desc", page_token=by_last_run["next_page_token"])
    assert "busy" not in names(rest) and len(names(by_last_run) + names(rest)) == by_last_run["total_size"]
    assert names(listed(client, page_size=200, sort_by="last_run_created_at"))[-1] == "busy"
    after = v2_filter({"operation": "GREATER_THAN", "key": "last_run_created_at", "timestamp_value": EPOCH})
    assert names(listed(client, filter=after)) == ["busy"]
    never = v2_filter({"operation": "EQUALS", "key": "last_run_created_at", "timestamp_value": EPOCH})
    assert "busy" not in names(listed(client, filter=never, page_size=200))
    assert "idle" in names(listed(client, filter=never, page_size=200))


# ---------------------------------------------------------------------------------------------- multi-user


@pytest.fixture
def multi_user(db_url: str, tmp_path: Path) -> Iterator[tuple[FlaskClient, dict[str, dict[str, str]]]]:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", threads=2, executor_enabled=False,
                        scheduler_enabled=False, auth="required")
    application: Flask = create_app(settings)
    try:
        tokens = AuthService(application.extensions["kfp_backend.services"].db)
        headers = {}
        for user, namespace in (("alice", "team-a"), ("bob", "team-b")):
            _, secret = tokens.create_token(user, [namespace])
            headers[user] = {"Authorization": f"Bearer {secret}"}
        yield application.test_client(), headers
    finally:
        shutdown(application)


def test_multi_user_namespaces(multi_user: tuple[FlaskClient, dict[str, dict[str, str]]]) -> None:
    client, headers = multi_user
    alice, bob = headers["alice"], headers["bob"]
    health = client.get(f"{V2}/healthz")  # no token needed
    assert health.status_code == 200 and health.get_json()["multi_user"] is True
    v2_error(client.get(EXPERIMENTS, query_string={"namespace": "team-a"}), 401, 16)

    created = client.post(EXPERIMENTS, json={"display_name": "mine", "namespace": "team-a"}, headers=alice)
    assert created.status_code == 200, created.get_data(as_text=True)
    assert created.get_json()["namespace"] == "team-a"
    one = f"{EXPERIMENTS}/{created.get_json()['experiment_id']}"
    v2_error(client.post(EXPERIMENTS, json={"display_name": "nowhere"}, headers=alice), 400, 3)
    v2_error(client.post(EXPERIMENTS, json={"display_name": "theirs", "namespace": "team-b"}, headers=alice), 403, 7)

    page = client.get(EXPERIMENTS, query_string={"namespace": "team-a"}, headers=alice).get_json()
    assert names(page) == ["mine"] and page["experiments"][0]["namespace"] == "team-a"
    v2_error(client.get(EXPERIMENTS, headers=alice), 400, 3)  # a list call names its namespace
    v2_error(client.get(EXPERIMENTS, query_string={"namespace": "team-a"}, headers=bob), 403, 7)
    for method, path in (("GET", one), ("POST", f"{one}:archive"), ("DELETE", one)):
        v2_error(client.open(path, method=method, headers=bob), 403, 7)
    assert client.delete(one, headers=alice).status_code == 200


def test_multi_user_refusals_are_worded_as_upstreams_v2_server_words_them(
        multi_user: tuple[FlaskClient, dict[str, dict[str, str]]]) -> None:
    client, headers = multi_user
    alice, bob = headers["alice"], headers["bob"]

    def refused(response: Any, status: int, code: int) -> tuple[str, str]:
        body = v2_error(response, status, code)
        return body["message"], body["details"][0]["message"]

    empty = "An experiment cannot have an empty namespace in multi-user mode"
    assert refused(client.post(EXPERIMENTS, json={"display_name": "x"}, headers=alice), 400, 3) == (
        f"Failed to create a experiment: Failed to authorize the request: Invalid input error: {empty}", empty)
    assert refused(client.get(EXPERIMENTS, headers=alice), 400, 3) == (
        f"List experiments failed: Failed to authorize with API: Invalid input error: {empty}", empty)
    message, external = refused(client.get(EXPERIMENTS, query_string={"namespace": "team-b"}, headers=alice), 403, 7)
    assert external.startswith("User 'alice' is not authorized with reason: ")
    assert message == f"List experiments failed: Failed to authorize with API: Failed to authorize with API: " \
                      f"PermissionDenied: {external}: Unauthorized access"
    mine = client.post(EXPERIMENTS, json={"display_name": "mine", "namespace": "team-a"}, headers=alice).get_json()
    message, external = refused(client.post(f"{EXPERIMENTS}/{mine['experiment_id']}:archive", headers=bob), 403, 7)
    assert message == ("Failed to archive experiment: Failed to authorize the request: Failed to authorize with API: "
                       f"PermissionDenied: {external}: Unauthorized access")

    empty = "A run cannot have an empty namespace in multi-user mode"
    assert refused(client.get(f"{V2}/runs", headers=alice), 400, 3) == (
        "Failed to list runs: Failed to list runs due to authorization error. Check if you have permission to access "
        f"namespace : Invalid input error: {empty}", empty)
    message, external = refused(client.get(f"{V2}/runs", query_string={"namespace": "team-b"}, headers=alice), 403, 7)
    assert message == (
        "Failed to list runs: Failed to list runs due to authorization error. Check if you have permission to access "
        "namespace team-b: Failed to access run . Check if you have access to namespace team-b: "
        f"PermissionDenied: {external}: Unauthorized access")

    empty = "a recurring run cannot have an empty namespace in multi-user mode"
    assert refused(client.get(f"{V2}/recurringruns", headers=alice), 400, 3) == (
        "Failed to list jobs: Failed to list recurring runs due to authorization error. Check if you have permission "
        f"to access namespace : Invalid input error: {empty}", empty)
    message, external = refused(client.get(f"{V2}/pipelines", query_string={"namespace": "team-b"}, headers=alice),
                                403, 7)
    assert message == (
        "Failed to list pipelines in namespace team-b. Check error stack: Failed to list pipelines due to "
        "authorization error. Check if you have read permission to namespace team-b: Failed to access pipeline . Check "
        f"if you have access to namespace team-b: PermissionDenied: {external}: Unauthorized access")
