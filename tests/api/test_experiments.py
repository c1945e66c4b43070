"""ExperimentService over HTTP on every database: create, get, list, delete, archive, the Default experiment."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.services.experiments import DEFAULT_EXPERIMENT_DESCRIPTION
from tests.gateway_errors import gateway_error

EXPERIMENTS = "/apis/v1beta1/experiments"
AVAILABLE = "STORAGESTATE_AVAILABLE"
ARCHIVED = "STORAGESTATE_ARCHIVED"
EMPTY_NAME = "Experiment name is empty. Please specify a valid experiment name."
NO_REFERENCES = "In single-user mode, CreateExperimentRequest shouldn't contain resource references."
NAMESPACE_REF = [{"key": {"type": "NAMESPACE", "id": "kubeflow"}, "relationship": "OWNER"}]


def seconds(timestamp: str) -> int:
    assert timestamp.endswith("Z") and "." not in timestamp, timestamp
    return int(datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def create(client: FlaskClient, body: object) -> dict:
    response = client.post(EXPERIMENTS, json=body)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    return response.get_json()


def list_all(client: FlaskClient, **params: str) -> dict:
    response = client.get(EXPERIMENTS, query_string={"page_size": "200", **params})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def listed_names(client: FlaskClient, **params: str) -> list[str]:
    """Names in name order (rows created within one second tie on created_at and come in id order)."""
    return [item["name"] for item in list_all(client, sort_by="name", **params).get("experiments", [])]


# ---------------------------------------------------------------------------------------------- create


def test_create_returns_the_experiment_and_get_returns_the_same(client: FlaskClient) -> None:
    before = int(time.time())
    body = create(client, {"name": "training", "description": "my first experiment"})
    after = int(time.time())
    assert set(body) == {"id", "name", "description", "created_at", "storage_state"}
    assert body["name"] == "training"
    assert body["description"] == "my first experiment"
    assert body["storage_state"] == AVAILABLE
    assert uuid.UUID(body["id"]).version == 4
    assert before <= seconds(body["created_at"]) <= after

    fetched = client.get(f"{EXPERIMENTS}/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.mimetype == "application/json"
    assert fetched.get_json() == body
    assert body in list_all(client)["experiments"]


def test_create_without_description_omits_it(client: FlaskClient) -> None:
    body = create(client, {"name": "bare"})
    assert set(body) == {"id", "name", "created_at", "storage_state"}
    assert client.get(f"{EXPERIMENTS}/{body['id']}").get_json() == body


def test_ids_are_unique(client: FlaskClient) -> None:
    ids = {create(client, {"name": f"e{i}"})["id"] for i in range(5)}
    assert len(ids) == 5


def test_text_round_trips(client: FlaskClient) -> None:
    # Non-ASCII (4-byte UTF-8 too: MariaDB needs utf8mb4), quotes, a long description.
    name = "實驗 🚀 \"quoted\" 'single' \\ back"
    description = "line one\nline two\t🚀" + "x" * 10_000
    body = create(client, {"name": name, "description": description})
    assert body["name"] == name and body["description"] == description
    assert client.get(f"{EXPERIMENTS}/{body['id']}").get_json() == body


def test_name_length_limit_counts_characters(client: FlaskClient) -> None:
    longest = create(client, {"name": "é" * 254 + "🚀"})
    assert longest["name"] == "é" * 254 + "🚀"
    body = gateway_error(client.post(EXPERIMENTS, json={"name": "x" * 256}), 400, 3)
    assert body["details"][0]["error_message"] == (
        "Experiment name is too long. Support maximum length of 255 characters."
    )
    assert body["error"] == "Validate experiment request failed.: Invalid input error: " + (
        "Experiment name is too long. Support maximum length of 255 characters."
    )


def test_create_with_empty_name(client: FlaskClient) -> None:
    for payload in (
        {}, {"name": ""}, {"description": "no name"}, {"name": None},
        {"name": "", "resource_references": NAMESPACE_REF},
    ):
        body = gateway_error(client.post(EXPERIMENTS, json=payload), 400, 3)
        assert body["error"] == "Validate experiment request failed.: Invalid input error: " + EMPTY_NAME, payload
        assert body["details"][0]["error_message"] == EMPTY_NAME
    assert listed_names(client) == ["Default"]


def test_create_with_no_body_at_all(client: FlaskClient) -> None:
    body = gateway_error(client.post(EXPERIMENTS), 400, 3)
    assert body["details"][0]["error_message"] == EMPTY_NAME


def test_create_with_resource_references(client: FlaskClient) -> None:
    for key in ("resource_references", "resourceReferences"):
        for references in (NAMESPACE_REF, [{"key": {"type": "EXPERIMENT", "id": "x"}}], [{}]):
            body = gateway_error(client.post(EXPERIMENTS, json={"name": "refs", key: references}), 400, 3)
            assert body["error"] == "Validate experiment request failed.: Invalid input error: " + NO_REFERENCES
            assert body["details"][0]["error_message"] == NO_REFERENCES
    assert listed_names(client) == ["Default"]
    # An empty list is no references at all (it does not survive the gRPC hop upstream either).
    assert create(client, {"name": "refs", "resource_references": []})["name"] == "refs"
    assert create(client, {"name": "refs2", "resourceReferences": []})["name"] == "refs2"


def test_duplicate_name(client: FlaskClient) -> None:
    first = create(client, {"name": "dup", "description": "one"})
    response = client.post(EXPERIMENTS, json={"name": "dup", "description": "two"})
    body = gateway_error(response, 409, 6)
    message = "Failed to create a new experiment. The name dup already exists. Please specify a new name."
    assert body["error"] == "Create experiment failed.: Already exist error: " + message
    assert body["details"][0]["error_message"] == message
    listed = list_all(client)
    assert listed["total_size"] == 2
    assert first in listed["experiments"]
    # The failed insert left the connection usable (PostgreSQL aborts a transaction on a violation).
    assert create(client, {"name": "dup2"})["name"] == "dup2"


def test_duplicate_of_default(client: FlaskClient) -> None:
    body = gateway_error(client.post(EXPERIMENTS, json={"name": "Default"}), 409, 6)
    assert "The name Default already exists." in body["details"][0]["error_message"]


def test_client_supplied_server_fields_are_ignored(client: FlaskClient) -> None:
    before = int(time.time())
    body = create(client, {
        "name": "mine", "id": "my-own-id", "created_at": "2001-01-01T00:00:00Z", "storage_state": ARCHIVED,
    })
    assert body["id"] != "my-own-id"
    assert seconds(body["created_at"]) >= before
    assert body["storage_state"] == AVAILABLE
    gateway_error(client.get(f"{EXPERIMENTS}/my-own-id"), 404, 5)
    camel = create(client, {"name": "camel", "createdAt": "2001-01-01T00:00:00Z", "storageState": 2})
    assert seconds(camel["created_at"]) >= before
    assert camel["storage_state"] == AVAILABLE


def test_unknown_keys_are_ignored(client: FlaskClient) -> None:
    body = create(client, {
        "name": "extra", "bogus": 1, "pipeline_spec": {"parameters": []}, "Name": "other", "": None,
        "nested": {"a": [1]},
    })
    assert body["name"] == "extra"
    assert set(body) == {"id", "name", "created_at", "storage_state"}


def test_null_means_unset(client: FlaskClient) -> None:
    # jsonpb reads null as "field not set".
    body = create(client, {"name": "nulls", "description": None, "resource_references": None, "id": None})
    assert body["name"] == "nulls"
    assert "description" not in body


WRONG_TYPES = [
    {"name": 5},
    {"name": True},
    {"name": ["a"]},
    {"name": {"a": 1}},
    {"name": "ok", "description": 5},
    {"name": "ok", "description": ["x"]},
    {"name": "ok", "resource_references": "NAMESPACE"},
    {"name": "ok", "resource_references": {"key": {}}},
    {"name": "ok", "resource_references": [5]},
    {"name": "ok", "resource_references": [{"key": {"type": "BOGUS", "id": "x"}}]},
    {"name": "ok", "resource_references": [{"key": {"type": "NAMESPACE", "id": 5}}]},
    {"name": "ok", "resource_references": [{"relationship": "SIBLING"}]},
]


def test_wrong_types(client: FlaskClient) -> None:
    for payload in WRONG_TYPES:
        body = gateway_error(client.post(EXPERIMENTS, json=payload), 400, 3)
        assert body["error"].startswith("Invalid input error: "), (payload, body["error"])
    assert listed_names(client) == ["Default"]


# ------------------------------------------------------------------------------------------------- get


def test_get_unknown(client: FlaskClient) -> None:
    missing = str(uuid.uuid4())
    body = gateway_error(client.get(f"{EXPERIMENTS}/{missing}"), 404, 5)
    assert body["error"] == f"Get experiment failed.: ResourceNotFoundError: Experiment {missing} not found."
    assert body["details"][0]["error_message"] == f"Experiment {missing} not found."
    body = gateway_error(client.get(f"{EXPERIMENTS}/not-a-uuid"), 404, 5)
    assert body["details"][0]["error_message"] == "Experiment not-a-uuid not found."


# ------------------------------------------------------------------------------------------------ list


def test_fresh_server_lists_only_the_default_experiment(client: FlaskClient) -> None:
    body = list_all(client)
    assert set(body) == {"experiments", "total_size"}
    assert body["total_size"] == 1
    (default,) = body["experiments"]
    assert default["name"] == "Default"
    assert default["description"] == DEFAULT_EXPERIMENT_DESCRIPTION
    assert default["storage_state"] == AVAILABLE
    assert set(default) == {"id", "name", "description", "created_at", "storage_state"}


def test_empty_list_is_an_empty_object(client: FlaskClient) -> None:
    (default,) = list_all(client)["experiments"]
    assert client.delete(f"{EXPERIMENTS}/{default['id']}").get_json() == {}
    response = client.get(EXPERIMENTS)
    assert response.status_code == 200
    assert response.get_json() == {}


def test_list_pages_over_created_experiments(client: FlaskClient) -> None:
    created = [create(client, {"name": f"exp-{i}"}) for i in range(5)]
    # Same-second creations tie on created_at and are then ordered by id.
    everything = list_all(client)["experiments"]
    assert len(everything) == 6
    keyed = [(e["created_at"], e["id"]) for e in everything]
    assert keyed == sorted(keyed)
    first = client.get(EXPERIMENTS, query_string={"page_size": 4}).get_json()
    assert first["total_size"] == 6
    second = client.get(EXPERIMENTS, query_string={"page_size": 4, "page_token": first["next_page_token"]}).get_json()
    assert second["total_size"] == 6
    assert "next_page_token" not in second
    assert first["experiments"] + second["experiments"] == everything
    assert {e["id"] for e in created} < {e["id"] for e in everything}


# ---------------------------------------------------------------------------------------------- delete


def test_delete(client: FlaskClient) -> None:
    keep = create(client, {"name": "keep"})
    gone = create(client, {"name": "gone"})
    response = client.delete(f"{EXPERIMENTS}/{gone['id']}")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {}
    gateway_error(client.get(f"{EXPERIMENTS}/{gone['id']}"), 404, 5)
    assert listed_names(client) == ["Default", "keep"]
    assert client.get(f"{EXPERIMENTS}/{keep['id']}").get_json() == keep
    # The name is free again.
    assert create(client, {"name": "gone"})["id"] != gone["id"]

    body = gateway_error(client.delete(f"{EXPERIMENTS}/{gone['id']}"), 404, 5)
    assert body["error"] == f"Delete experiment failed: ResourceNotFoundError: Experiment {gone['id']} not found."
    assert body["details"][0]["error_message"] == f"Experiment {gone['id']} not found."


def test_deleting_default_lets_a_new_default_be_created(client: FlaskClient, app: Flask) -> None:
    service = app.extensions["kfp_backend.services"].experiments
    default = service.ensure_default()
    assert service.ensure_default().id == default.id  # idempotent
    assert [e["id"] for e in list_all(client)["experiments"]] == [default.id]

    # Deleting another experiment leaves the recorded default alone.
    other = create(client, {"name": "other"})
    client.delete(f"{EXPERIMENTS}/{other['id']}")
    assert service.ensure_default().id == default.id

    assert client.delete(f"{EXPERIMENTS}/{default.id}").status_code == 200
    assert listed_names(client) == []
    replacement = service.ensure_default()
    assert replacement.id != default.id
    assert replacement.name == "Default"
    assert replacement.description == DEFAULT_EXPERIMENT_DESCRIPTION
    assert service.ensure_default().id == replacement.id
    listed = list_all(client)["experiments"]
    assert [e["id"] for e in listed] == [replacement.id]
    assert listed[0]["description"] == DEFAULT_EXPERIMENT_DESCRIPTION


# ----------------------------------------------------------------------------------- archive / unarchive


def _storage_filter(state: str) -> str:
    return json.dumps({"predicates": [{"key": "storage_state", "op": "EQUALS", "string_value": state}]})


def test_archive_and_unarchive(client: FlaskClient) -> None:
    experiment = create(client, {"name": "shelved"})
    url = f"{EXPERIMENTS}/{experiment['id']}"
    assert listed_names(client, filter=_storage_filter(ARCHIVED)) == []

    for _ in range(2):  # archiving twice is fine (MySQL reports 0 changed rows the second time)
        response = client.post(f"{url}:archive")
        assert response.status_code == 200
        assert response.get_json() == {}
        assert client.get(url).get_json() == {**experiment, "storage_state": ARCHIVED}
    assert listed_names(client, filter=_storage_filter(ARCHIVED)) == ["shelved"]
    assert listed_names(client, filter=_storage_filter(AVAILABLE)) == ["Default"]

    for _ in range(2):
        response = client.post(f"{url}:unarchive")
        assert response.status_code == 200
        assert response.get_json() == {}
        assert client.get(url).get_json() == experiment
    assert listed_names(client, filter=_storage_filter(ARCHIVED)) == []
    assert listed_names(client, filter=_storage_filter(AVAILABLE)) == ["Default", "shelved"]


def test_archive_touches_only_its_experiment(client: FlaskClient) -> None:
    one = create(client, {"name": "one"})
    two = create(client, {"name": "two"})
    client.post(f"{EXPERIMENTS}/{one['id']}:archive")
    assert client.get(f"{EXPERIMENTS}/{two['id']}").get_json()["storage_state"] == AVAILABLE
    assert listed_names(client, filter=_storage_filter(ARCHIVED)) == ["one"]


def test_archive_unknown_is_404(client: FlaskClient) -> None:
    # A deliberate difference: upstream (single-user) answers 200 and does nothing.
    missing = str(uuid.uuid4())
    for action, verb in (("archive", "Archive"), ("unarchive", "Unarchive")):
        body = gateway_error(client.post(f"{EXPERIMENTS}/{missing}:{action}"), 404, 5)
        assert body["error"] == f"{verb} experiment failed: ResourceNotFoundError: Experiment {missing} not found."
        assert body["details"][0]["error_message"] == f"Experiment {missing} not found."
    assert listed_names(client) == ["Default"]

