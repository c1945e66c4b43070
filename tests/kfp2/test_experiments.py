"""Experiments through the unchanged kfp 2.x client (v2beta1) against a live server, and the same experiments
seen through v1beta1 (plain HTTP: kfp 1.8 cannot live in this venv)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kfp_server_api.exceptions import ApiException

pytestmark = pytest.mark.kfp2

STATUS_TYPE = "type.googleapis.com/google.rpc.Status"


def contains(text: str) -> str:
    """A v2 filter (as the SDK's own helpers write one) on display_name containing `text`."""
    return json.dumps({"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name", "stringValue": text}]})


def error_body(error: ApiException, status: int, code: int) -> dict[str, Any]:
    """The v2beta1 error body (grpc-gateway v2's google.rpc.Status): code, message, details; no `error`."""
    assert error.status == status, error.body
    body = json.loads(error.body)
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code
    (detail,) = body["details"]
    assert set(detail) == {"@type", "code", "message"} and detail["@type"] == STATUS_TYPE
    assert detail["code"] == code and detail["message"] in body["message"]
    return body


def test_healthz(client: Any) -> None:
    health = client.get_kfp_healthz()
    assert health.multi_user is False
    assert health.pipeline_store == "database"


def test_create_experiment_twice_gives_one_experiment(client: Any, unique: str) -> None:
    name = f"{unique}-training"
    created = client.create_experiment(name, description="my first experiment")
    assert created.experiment_id and created.display_name == name
    assert created.description == "my first experiment"
    assert created.storage_state == "AVAILABLE"
    assert created.created_at.tzinfo is not None
    assert created.last_run_created_at.timestamp() == 0  # no run yet
    assert created.namespace is None  # single-user mode

    again = client.create_experiment(name, description="ignored")
    assert again.experiment_id == created.experiment_id and again.description == "my first experiment"
    listed = client.list_experiments(filter=contains(unique))
    assert [experiment.experiment_id for experiment in listed.experiments] == [created.experiment_id]
    assert listed.total_size == 1


def test_get_experiment_by_id_and_by_name(client: Any, unique: str) -> None:
    created = client.create_experiment(f"{unique}-get")
    by_id = client.get_experiment(experiment_id=created.experiment_id)
    assert by_id.to_dict() == created.to_dict()
    by_name = client.get_experiment(experiment_name=f"{unique}-get")
    assert by_name.to_dict() == created.to_dict()
    with pytest.raises(ValueError, match="No experiment is found with name"):
        client.get_experiment(experiment_name=f"{unique}-missing")


def test_list_experiments_pages_sorts_and_filters(client: Any, unique: str) -> None:
    names = [f"{unique}-{letter}" for letter in "ecadb"]
    for name in names:
        client.create_experiment(name)
    seen, totals, token = [], set(), ""
    for _ in range(5):
        page = client.list_experiments(page_token=token, page_size=2, sort_by="display_name desc",
                                       filter=contains(unique))
        seen += [experiment.display_name for experiment in page.experiments]
        totals.add(page.total_size)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(names, reverse=True) and totals == {5}
    equals = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": names[0]}]})
    assert [e.display_name for e in client.list_experiments(filter=equals).experiments] == [names[0]]
    assert client.list_experiments(filter=contains(f"{unique}-none")).experiments is None


def test_archive_unarchive_and_delete(client: Any, unique: str) -> None:
    experiment = client.create_experiment(f"{unique}-cycle")
    assert client.archive_experiment(experiment.experiment_id) == {}
    assert client.get_experiment(experiment_id=experiment.experiment_id).storage_state == "ARCHIVED"
    archived = json.dumps({"predicates": [
        {"operation": "EQUALS", "key": "storage_state", "stringValue": "ARCHIVED"},
        {"operation": "IS_SUBSTRING", "key": "display_name", "stringValue": unique},
    ]})
    assert [e.experiment_id for e in client.list_experiments(filter=archived).experiments] == [experiment.experiment_id]
    assert client.unarchive_experiment(experiment.experiment_id) == {}
    assert client.get_experiment(experiment_id=experiment.experiment_id).storage_state == "AVAILABLE"

    assert client.delete_experiment(experiment.experiment_id) == {}
    with pytest.raises(ApiException) as caught:
        client.get_experiment(experiment_id=experiment.experiment_id)
    body = error_body(caught.value, 404, 5)
    assert body["details"][0]["message"] == f"Experiment {experiment.experiment_id} not found."
    with pytest.raises(ApiException) as caught:
        client.delete_experiment(experiment.experiment_id)
    error_body(caught.value, 404, 5)


def test_errors_have_the_v2beta1_body(client: Any, unique: str) -> None:
    import kfp_server_api

    name = f"{unique}-dup"
    client.create_experiment(name)
    duplicate = kfp_server_api.V2beta1Experiment(display_name=name)
    with pytest.raises(ApiException) as caught:
        client._experiment_api.experiment_service_create_experiment(experiment=duplicate)
    body = error_body(caught.value, 409, 6)
    assert f"The name {name} already exists" in body["message"]
    with pytest.raises(ApiException) as caught:
        client.list_experiments(sort_by="no_such_field")
    error_body(caught.value, 400, 3)


def test_experiments_are_shared_with_v1beta1(client: Any, server_url: str, unique: str) -> None:
    v1 = f"{server_url}/apis/v1beta1/experiments"
    response = requests.post(v1, json={"name": f"{unique}-from-v1", "description": "v1"}, timeout=10)
    assert response.status_code == 200, response.text
    from_v1 = response.json()
    listed = client.list_experiments(filter=contains(unique))
    assert [(e.experiment_id, e.display_name, e.description) for e in listed.experiments] == [
        (from_v1["id"], f"{unique}-from-v1", "v1")]
    # The kfp 2 client reuses the v1 experiment rather than creating a second one.
    assert client.create_experiment(f"{unique}-from-v1").experiment_id == from_v1["id"]

    from_v2 = client.create_experiment(f"{unique}-from-v2", description="v2")
    v1_view = requests.get(f"{v1}/{from_v2.experiment_id}", timeout=10).json()
    assert (v1_view["name"], v1_view["description"], v1_view["storage_state"]) == (
        f"{unique}-from-v2", "v2", "STORAGESTATE_AVAILABLE")
    v1_filter = json.dumps({"predicates": [{"op": "IS_SUBSTRING", "key": "name", "string_value": unique}]})
    v1_names = {e["name"] for e in requests.get(v1, params={"filter": v1_filter}, timeout=10).json()["experiments"]}
    assert v1_names == {f"{unique}-from-v1", f"{unique}-from-v2"}

    client.archive_experiment(from_v1["id"])
    assert requests.get(f"{v1}/{from_v1['id']}", timeout=10).json()["storage_state"] == "STORAGESTATE_ARCHIVED"
    requests.delete(f"{v1}/{from_v2.experiment_id}", timeout=10).raise_for_status()
    with pytest.raises(ApiException) as caught:
        client.get_experiment(experiment_id=from_v2.experiment_id)
    error_body(caught.value, 404, 5)
