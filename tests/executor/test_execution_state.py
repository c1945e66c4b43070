"""ExecutionStateService.save_progress over every backend (PostgreSQL writes it as one statement, the
others in a transaction): node rows stored exactly, nothing written once the run is another driver's,
"Terminating" while a terminate is pending, the final write releasing the claim."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select, update

from kfp_backend.services.execution_state import ExecutionStateService
from kfp_backend.store.db import Database
from kfp_backend.store.execution_repo import node_row
from kfp_backend.store.models import Run, RunManifest, RunNode

RUN_ID = "11111111-2222-3333-4444-555555555555"
DRIVER = "driver-a"


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    with db.transaction() as session:
        session.execute(insert(Run).values(
            id=RUN_ID, name="r", experiment_id="e", created_at=1, storage_state="STORAGESTATE_AVAILABLE",
            status="Running", driver_id=DRIVER, driver_heartbeat=1,
        ))
        session.execute(insert(RunManifest).values(run_id=RUN_ID, workflow="{}", workflow_status="{}"))
    yield db
    db.dispose()


def _node(node_id: str, phase: str, **extra: object) -> dict:
    # Quotes, backslashes, newlines, non-ASCII and what looks like SQL or JSON: stored byte for byte.
    return {"id": node_id, "name": f"n-{node_id}", "phase": phase, "message": 'a "quoted" \\ back\nslash é ☃',
            "outputs": {"parameters": [{"name": "p", "value": "{\"k\": [1, 2]}'; --"}]}, **extra}


def _stored(db: Database) -> tuple[dict[str, tuple[str, str]], tuple[str, str | None, int], str]:
    with db.transaction(write=False) as session:
        nodes = {row[0]: (row[1], row[2]) for row in session.execute(
            select(RunNode.node_id, RunNode.phase, RunNode.data).where(RunNode.run_id == RUN_ID))}
        run = session.execute(select(Run.status, Run.driver_id, Run.finished_at).where(Run.id == RUN_ID)).one()
        status = session.scalar(select(RunManifest.workflow_status).where(RunManifest.run_id == RUN_ID))
    return nodes, (run[0], run[1], run[2]), status


def test_nodes_are_inserted_and_updated_exactly(database: Database) -> None:
    state = ExecutionStateService(database)
    first = [_node(f"node-{i}", "Pending") for i in range(30)]
    assert state.save_progress(RUN_ID, DRIVER, inserted=[node_row(n) for n in first], updated=[],
                               workflow_status={"phase": "Running", "progress": "0/30"}, status="Running",
                               finished=False)
    changed = [_node(f"node-{i}", "Succeeded", finishedAt="2026-11-26T04:00:00Z") for i in range(0, 30, 2)]
    late = _node("late", "Running")
    assert state.save_progress(RUN_ID, DRIVER, inserted=[node_row(late)], updated=[node_row(n) for n in changed],
                               workflow_status={"phase": "Running", "progress": "15/31"}, status="Running",
                               finished=False)
    nodes, run, status = _stored(database)
    expected = {n["id"]: n for n in first} | {n["id"]: n for n in changed} | {late["id"]: late}
    assert set(nodes) == set(expected)
    for node_id, node in expected.items():
        assert nodes[node_id] == (node["phase"], node_row(node)[2])
        assert json.loads(nodes[node_id][1]) == node
    assert run == ("Running", DRIVER, 0)
    assert json.loads(status) == {"phase": "Running", "progress": "15/31"}


def test_nothing_is_written_once_the_run_is_another_drivers(database: Database) -> None:
    state = ExecutionStateService(database)
    assert state.save_progress(RUN_ID, DRIVER, inserted=[node_row(_node("a", "Running"))], updated=[],
                               workflow_status={"phase": "Running"}, status="Running", finished=False)
    with database.transaction() as session:
        session.execute(update(Run).where(Run.id == RUN_ID).values(driver_id="driver-b"))
    assert not state.save_progress(RUN_ID, DRIVER, inserted=[node_row(_node("b", "Running"))],
                                   updated=[node_row(_node("a", "Failed"))], workflow_status={"phase": "Failed"},
                                   status="Failed", finished=True)
    nodes, run, status = _stored(database)
    assert set(nodes) == {"a"} and nodes["a"][0] == "Running"
    assert run == ("Running", "driver-b", 0)
    assert json.loads(status) == {"phase": "Running"}


def test_terminating_shows_until_the_final_write_which_releases_the_claim(database: Database) -> None:
    state = ExecutionStateService(database)
    with database.transaction() as session:
        session.execute(update(Run).where(Run.id == RUN_ID).values(terminate_requested=True))
    assert state.save_progress(RUN_ID, DRIVER, inserted=[], updated=[], workflow_status={"phase": "Running"},
                               status="Running", finished=False)
    assert _stored(database)[1] == ("Terminating", DRIVER, 0)
    assert state.save_progress(RUN_ID, DRIVER, inserted=[], updated=[], workflow_status={"phase": "Failed"},
                               status="Failed", finished=True)
    _nodes, (run_status, driver, finished_at), status = _stored(database)
    assert (run_status, driver) == ("Failed", None) and finished_at > 0
    assert json.loads(status) == {"phase": "Failed"}
