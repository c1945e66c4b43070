"""One experiment, two APIs: what the unchanged kfp 1.8.22 client (v1beta1) creates is listed through v2beta1,
and what v2beta1 creates the kfp 1.8 client finds, archives and deletes. The kfp 2.x client's side of the same
story is in tests/kfp2 (its own venv)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.helpers import name_contains

pytestmark = pytest.mark.e2e


def test_v1_client_and_v2beta1_share_experiments(kfp_client, server_url, unique):
    v2 = f"{server_url}/apis/v2beta1/experiments"
    from_v1 = kfp_client.create_experiment(f"{unique}-from-v1", description="v1")
    v2_filter = json.dumps({"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name",
                                            "string_value": unique}]})
    listed = requests.get(v2, params={"filter": v2_filter}, timeout=10).json()["experiments"]
    assert [(e["experiment_id"], e["display_name"], e["description"], e["storage_state"]) for e in listed] == [
        (from_v1.id, f"{unique}-from-v1", "v1", "AVAILABLE")]

    response = requests.post(v2, json={"display_name": f"{unique}-from-v2", "description": "v2"}, timeout=10)
    assert response.status_code == 200, response.text
    from_v2 = response.json()
    found = kfp_client.get_experiment(experiment_name=f"{unique}-from-v2")
    assert (found.id, found.description, found.storage_state) == (
        from_v2["experiment_id"], "v2", "STORAGESTATE_AVAILABLE")
    # The kfp 1.8 client reuses it rather than creating a second one.
    assert kfp_client.create_experiment(f"{unique}-from-v2").id == from_v2["experiment_id"]
    assert kfp_client.list_experiments(filter=name_contains(unique)).total_size == 2

    kfp_client.archive_experiment(from_v2["experiment_id"])
    assert requests.get(f"{v2}/{from_v2['experiment_id']}", timeout=10).json()["storage_state"] == "ARCHIVED"
    kfp_client.delete_experiment(from_v2["experiment_id"])
    gone = requests.get(f"{v2}/{from_v2['experiment_id']}", timeout=10)
    assert gone.status_code == 404 and gone.json()["code"] == 5
