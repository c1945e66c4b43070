"""The dispatch table's rules as the Celery launcher and workers use them, on every database: a dispatch is
taken once; a result not yet collected is taken back by a later dispatch of its key, a collected one is
replaced; collected marks ride along with the next dispatch; a dispatch for a run that is gone is refused.
The one-statement paths (no transaction around them) keep these rules on PostgreSQL and SQLite, and MySQL
keeps its transactions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy.exc import IntegrityError

from kfp_backend.services.step_dispatch import COLLECTED, FINISHED, QUEUED, RUNNING, StepDispatchService
from kfp_backend.store.db import Database


@pytest.fixture
def dispatches(db_url: str) -> Iterator[StepDispatchService]:
    database = Database(db_url, pool_size=2)
    yield StepDispatchService(database)
    database.dispose()


def _run(client: FlaskClient) -> str:
    """A run row to hang dispatches on (the executor is off: nothing else touches them)."""
    manifest = json.dumps({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "d-"},
        "spec": {"entrypoint": "s", "templates": [{"name": "s", "container": {"image": "a", "command": ["true"]}}]},
    })
    response = client.post("/apis/v1beta1/runs", json={"name": "d", "pipeline_spec": {"workflow_manifest": manifest}})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["run"]["id"]


def _row(run_id: str, node: str, token: str) -> tuple[str, str, str, str, str]:
    return (f"{run_id}/{node}", run_id, token, "q", json.dumps({"key": f"{run_id}/{node}"}))


def test_a_dispatch_is_taken_once_kept_until_collected_then_replaced(
    client: FlaskClient, dispatches: StepDispatchService
) -> None:
    run_id = _run(client)
    key = f"{run_id}/n1"
    first = uuid.uuid4().hex
    assert dispatches.dispatch([_row(run_id, "n1", first)])[key].state == QUEUED
    assert dispatches.take(key, "0" * 32, "w1") is None  # a stale token takes nothing
    assert json.loads(dispatches.take(key, first, "w1") or "{}") == {"key": key}
    assert dispatches.take(key, first, "w2") is None  # taken once
    assert dispatches.get([key])[key].state == RUNNING
    assert dispatches.finish(key, first, "w1", '{"exit_code": 0}')
    assert not dispatches.finish(key, first, "w1", '{"exit_code": 1}')  # finished once

    # Not collected yet (a driver died before it took the result): a new dispatch takes it back.
    standing = dispatches.dispatch([_row(run_id, "n1", uuid.uuid4().hex)])[key]
    assert (standing.token, standing.state, standing.result) == (first, FINISHED, '{"exit_code": 0}')

    # Collected marks go with the next dispatch (of another key), before it.
    second = uuid.uuid4().hex
    dispatches.dispatch([_row(run_id, "n2", second)], collected=[(key, first)])
    assert dispatches.get([key])[key].state == COLLECTED
    assert dispatches.get([f"{run_id}/n2"])[f"{run_id}/n2"].state == QUEUED

    # Collected (a run retried): replaced by a fresh dispatch, alone and in a wave with a new key.
    third = uuid.uuid4().hex
    wave = dispatches.dispatch([_row(run_id, "n1", third), _row(run_id, "n3", uuid.uuid4().hex)])
    assert (wave[key].token, wave[key].state) == (third, QUEUED)
    assert dispatches.get([key])[key].token == third
    assert dispatches.take(key, first, "w1") is None  # the old attempt's message finds nothing


def test_marks_ride_along_when_the_dispatch_takes_a_key_back(
    client: FlaskClient, dispatches: StepDispatchService
) -> None:
    """The one-INSERT path finds the key taken: the transaction that sorts it out marks the results too."""
    run_id = _run(client)
    done, waiting = f"{run_id}/done", f"{run_id}/waiting"
    token = uuid.uuid4().hex
    dispatches.dispatch([_row(run_id, "done", token)])
    dispatches.take(done, token, "w1")
    dispatches.finish(done, token, "w1", "{}")
    queued = uuid.uuid4().hex
    dispatches.dispatch([_row(run_id, "waiting", queued)])
    standing = dispatches.dispatch([_row(run_id, "waiting", uuid.uuid4().hex)], collected=[(done, token)])
    assert standing[waiting].token == queued  # kept: still queued
    assert dispatches.get([done])[done].state == COLLECTED


def test_a_dispatch_for_a_run_that_is_gone_is_refused(client: FlaskClient, dispatches: StepDispatchService) -> None:
    run_id = _run(client)
    missing = str(uuid.uuid4())
    with pytest.raises(IntegrityError):  # the database's refusal (a foreign key), not a key taken
        dispatches.dispatch([_row(missing, "n1", uuid.uuid4().hex)])
    with pytest.raises(IntegrityError):
        dispatches.dispatch([_row(missing, "n1", uuid.uuid4().hex), _row(missing, "n2", uuid.uuid4().hex)])
    assert dispatches.get([f"{missing}/n1", f"{missing}/n2"]) == {}
    assert dispatches.dispatch([_row(run_id, "n1", uuid.uuid4().hex)])[f"{run_id}/n1"].state == QUEUED
