"""Experiments through the unchanged kfp 1.8.22 client against a live server."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from tests.e2e.helpers import api_exception, collect_pages, error_text, name_contains

pytestmark = pytest.mark.e2e

AVAILABLE = "STORAGESTATE_AVAILABLE"
ARCHIVED = "STORAGESTATE_ARCHIVED"


def test_default_experiment_exists_from_start_up(kfp_client):
    default = kfp_client.get_experiment(experiment_name="Default")
    assert default.name == "Default"
    assert default.description == "All runs created without specifying an experiment will be grouped here."
    assert default.id
    assert isinstance(default.created_at, datetime)
    assert kfp_client.get_experiment(experiment_id=default.id).to_dict() == default.to_dict()

    listed = kfp_client.list_experiments(filter=name_contains("Default"), page_size=200)
    assert default.id in {experiment.id for experiment in listed.experiments}


def test_create_get_and_reuse_by_name(kfp_client, unique):
    name = f"{unique}-training"
    created = kfp_client.create_experiment(name, description="my first experiment")
    assert created.id
    assert created.name == name
    assert created.description == "my first experiment"
    assert created.storage_state == AVAILABLE
    assert isinstance(created.created_at, datetime)
    assert created.created_at.tzinfo is not None
    assert created.resource_references is None  # single-user mode: no namespace reference

    by_id = kfp_client.get_experiment(experiment_id=created.id)
    assert by_id.to_dict() == created.to_dict()
    by_name = kfp_client.get_experiment(experiment_name=name)
    assert by_name.to_dict() == created.to_dict()

    # The client looks the name up first and reuses the match instead of creating a second experiment.
    again = kfp_client.create_experiment(name, description="ignored")
    assert again.id == created.id
    assert again.description == "my first experiment"
    listed = kfp_client.list_experiments(filter=name_contains(unique))
    assert [experiment.id for experiment in listed.experiments] == [created.id]
    assert listed.total_size == 1


def test_duplicate_name_through_the_generated_api_is_409(kfp_client, unique):
    import kfp_server_api

    name = f"{unique}-dup"
    kfp_client.create_experiment(name)
    body = api_exception(
        lambda: kfp_client.experiments.create_experiment(body=kfp_server_api.ApiExperiment(name=name)), 409
    )
    assert body["code"] == 6
    assert "Please specify a new name" in error_text(body)


def test_empty_name_is_refused(kfp_client):
    body = api_exception(lambda: kfp_client.create_experiment(""), 400)
    assert body["code"] == 3
    assert "Experiment name is empty" in error_text(body)


def test_unknown_experiment(kfp_client, unique):
    with pytest.raises(ValueError, match="No experiment is found with name"):
        kfp_client.get_experiment(experiment_name=f"{unique}-missing")
    missing_id = "00000000-0000-4000-8000-000000000000"
    body = api_exception(lambda: kfp_client.get_experiment(experiment_id=missing_id), 404)
    assert body["code"] == 5
    assert error_text(body).endswith(f"Experiment {missing_id} not found.")
    assert body["details"][0]["error_message"] == f"Experiment {missing_id} not found."
    api_exception(lambda: kfp_client.delete_experiment(missing_id), 404)


def test_list_paging_and_sorting(kfp_client, unique):
    # Created a little over a second apart: created_at has whole-second resolution.
    names = [f"{unique}-training", f"{unique}-prediction", f"{unique}-moonshot"]
    ids = {}
    for index, name in enumerate(names):
        if index:
            time.sleep(1.05)
        ids[name] = kfp_client.create_experiment(name).id
    only_mine = name_contains(unique)

    def pages(sort_by: str, page_size: int = 2) -> list[list[str]]:
        found, totals = collect_pages(
            lambda token: kfp_client.list_experiments(
                page_token=token, page_size=page_size, sort_by=sort_by, filter=only_mine
            ),
            "experiments",
        )
        assert totals == [3] * len(found), totals
        return [[experiment.name for experiment in page] for page in found]

    training, prediction, moonshot = names
    assert pages("name") == [[moonshot, prediction], [training]]
    assert pages("name asc") == [[moonshot, prediction], [training]]
    assert pages("name desc") == [[training, prediction], [moonshot]]
    assert pages("created_at") == [[training, prediction], [moonshot]]
    assert pages("created_at desc") == [[moonshot, prediction], [training]]
    assert pages("") == [[training, prediction], [moonshot]]  # default order: created_at ascending
    assert pages("name", page_size=1) == [[moonshot], [prediction], [training]]
    assert pages("name", page_size=3) == [[moonshot, prediction, training]]
    assert pages("name", page_size=1000) == [[moonshot, prediction, training]]  # clamped to 200, not refused

    first = kfp_client.list_experiments(page_size=2, sort_by="id", filter=only_mine)
    rest = kfp_client.list_experiments(page_token=first.next_page_token, page_size=2, sort_by="id", filter=only_mine)
    by_id = [experiment.id for experiment in first.experiments + rest.experiments]
    assert by_id == sorted(ids.values())
    assert rest.next_page_token is None

    # The page token carries the sort and filter: asking for another order with it is refused.
    body = api_exception(
        lambda: kfp_client.list_experiments(
            page_token=first.next_page_token, page_size=2, sort_by="name desc", filter=only_mine
        ),
        400,
    )
    assert "page token does not match" in error_text(body)


def test_list_refusals(kfp_client):
    body = api_exception(lambda: kfp_client.list_experiments(sort_by="unknownfield"), 400)
    assert 'Invalid sorting field: "unknownfield"' in error_text(body)
    body = api_exception(lambda: kfp_client.list_experiments(page_token="not a token"), 400)
    assert "Invalid package token." in error_text(body)
    body = api_exception(lambda: kfp_client.list_experiments(filter='{"predicates": [{"op": 1, "key": "nope", '
                                                                     '"string_value": "x"}]}'), 400)
    assert 'unrecognized field "nope"' in error_text(body)


def test_list_of_nothing(kfp_client, unique):
    empty = kfp_client.list_experiments(filter=name_contains(f"{unique}-nothing"))
    assert empty.experiments is None
    assert not empty.total_size
    assert empty.next_page_token is None


def test_archive_and_unarchive(kfp_client, unique):
    kept = kfp_client.create_experiment(f"{unique}-kept")
    archived = kfp_client.create_experiment(f"{unique}-archived")

    assert kfp_client.archive_experiment(archived.id) is None
    assert kfp_client.get_experiment(experiment_id=archived.id).storage_state == ARCHIVED
    assert kfp_client.get_experiment(experiment_id=kept.id).storage_state == AVAILABLE
    # Archiving is idempotent.
    kfp_client.archive_experiment(archived.id)
    assert kfp_client.get_experiment(experiment_id=archived.id).storage_state == ARCHIVED

    # Archived experiments stay listed; the client filters on storage_state itself.
    listed = kfp_client.list_experiments(filter=name_contains(unique), sort_by="name")
    assert [(e.name, e.storage_state) for e in listed.experiments] == [
        (archived.name, ARCHIVED), (kept.name, AVAILABLE)
    ]
    only_available = json.dumps({"predicates": [
        {"op": "IS_SUBSTRING", "key": "name", "string_value": unique},
        {"op": "NOT_EQUALS", "key": "storage_state", "string_value": ARCHIVED},
    ]})
    assert [e.id for e in kfp_client.list_experiments(filter=only_available).experiments] == [kept.id]
    # Sorting compares the stored strings: ..._ARCHIVED < ..._AVAILABLE.
    by_state = kfp_client.list_experiments(filter=name_contains(unique), sort_by="storage_state desc")
    assert [e.id for e in by_state.experiments] == [kept.id, archived.id]
    by_state = kfp_client.list_experiments(filter=name_contains(unique), sort_by="storage_state")
    assert [e.id for e in by_state.experiments] == [archived.id, kept.id]

    # kfp 1.8's Client has no unarchive_experiment(); the generated API it exposes does.
    kfp_client.experiments.unarchive_experiment(id=archived.id)
    assert kfp_client.get_experiment(experiment_id=archived.id).storage_state == AVAILABLE
    assert kfp_client.list_experiments(filter=only_available).total_size == 2


def test_delete(kfp_client, unique):
    doomed = kfp_client.create_experiment(f"{unique}-doomed")
    survivor = kfp_client.create_experiment(f"{unique}-survivor")

    assert kfp_client.delete_experiment(doomed.id) == {}  # the gateway answers an empty object
    body = api_exception(lambda: kfp_client.get_experiment(experiment_id=doomed.id), 404)
    assert "not found" in error_text(body)
    with pytest.raises(ValueError, match="No experiment is found with name"):
        kfp_client.get_experiment(experiment_name=doomed.name)
    api_exception(lambda: kfp_client.delete_experiment(doomed.id), 404)
    assert [e.id for e in kfp_client.list_experiments(filter=name_contains(unique)).experiments] == [survivor.id]

    # The name is free again: create_experiment makes a new experiment with a new id.
    recreated = kfp_client.create_experiment(doomed.name)
    assert recreated.id != doomed.id
