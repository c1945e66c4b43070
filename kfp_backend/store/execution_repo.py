"""What the executor reads and writes: run claims, node rows, the workflow status.

A run is claimed by one driver at a time (`driver_id`); the claim is renewed by a heartbeat and may
be taken over when it goes stale. Every write here is a conditional UPDATE, so two executors racing
for one run cannot both win.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, case, delete, or_, select, update
from sqlalchemy.orm import Session

from kfp_backend.store.models import Run, RunManifest, RunNode
from kfp_backend.store.states import FINAL_RUN_STATUSES, TERMINATING


@dataclass(frozen=True)
class ClaimedRun:
    run_id: str
    status: str
    terminate_requested: bool
    workflow: str  # the runtime workflow JSON
    workflow_status: dict
    nodes: list[dict]  # node data (Argo shape + private keys)
    name: str = ""  # the run's name, for the log
    created_at: int = 0  # seconds since the epoch (the claim lag metric)
    namespace: str = ""  # the run's namespace ("": shared; KFP v2 cache hits stay within it)


def runs_to_claim(session: Session, *, stale_before: int, limit: int = 50) -> list[tuple[str, str | None]]:
    """Unfinished runs with no driver, or whose driver's heartbeat is older than `stale_before`; never a
    held run (created with start=false and not started yet)."""
    rows = session.execute(
        select(Run.id, Run.driver_id)
        .where(
            Run.finished_at == 0,
            Run.status.not_in(FINAL_RUN_STATUSES),
            Run.held.is_not(True),
            or_(Run.driver_id.is_(None), Run.driver_heartbeat < stale_before),
        )
        .order_by(Run.created_at, Run.id)
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


def driver_ids_of_unfinished_runs(session: Session) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Run.id, Run.driver_id).where(
            Run.finished_at == 0, Run.status.not_in(FINAL_RUN_STATUSES), Run.driver_id.is_not(None)
        )
    ).all()
    return [(row[0], row[1]) for row in rows]


def finished_before(session: Session, run_ids: list[str], cutoff: int) -> set[str]:
    """Of `run_ids`, those finished before `cutoff` (and not retried since); ids of deleted runs too (no
    row: nothing of theirs is needed any more)."""
    rows = session.execute(select(Run.id, Run.finished_at).where(Run.id.in_(run_ids))).all()
    known = {row[0]: row[1] for row in rows}
    return {run_id for run_id in run_ids if run_id not in known or 0 < known[run_id] < cutoff}


def claim_run(session: Session, run_id: str, driver_id: str, *, expected_driver: str | None, now: int) -> bool:
    """Take the run if its driver is still `expected_driver` (compare-and-set)."""
    condition = Run.driver_id.is_(None) if expected_driver is None else Run.driver_id == expected_driver
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.finished_at == 0, Run.held.is_not(True), condition)
        .values(driver_id=driver_id, driver_heartbeat=now)
    )
    return result.rowcount > 0


def load_claimed_run(session: Session, run_id: str) -> ClaimedRun | None:
    row = session.execute(
        select(Run.status, Run.terminate_requested, RunManifest.workflow, RunManifest.workflow_status, Run.name,
               Run.created_at, Run.namespace)
        .join(RunManifest, RunManifest.run_id == Run.id)
        .where(Run.id == run_id)
    ).first()
    if row is None:
        return None
    nodes = [json.loads(data) for data in session.scalars(select(RunNode.data).where(RunNode.run_id == run_id))]
    return ClaimedRun(
        run_id=run_id,
        status=row[0],
        terminate_requested=bool(row[1]),
        workflow=row[2],
        workflow_status=json.loads(row[3] or "{}"),
        nodes=nodes,
        name=row[4],
        created_at=row[5] or 0,
        namespace=row[6] or "",
    )


def run_namespace(session: Session, run_id: str) -> str | None:
    """The run's namespace ("": shared), or None when there is no such run."""
    return session.scalar(select(Run.namespace).where(Run.id == run_id))


def heartbeat(session: Session, run_id: str, driver_id: str, now: int) -> tuple[bool, bool] | None:
    """Renew the claim. Returns (still ours, terminate requested), or None if the run is gone."""
    session.execute(
        update(Run).where(Run.id == run_id, Run.driver_id == driver_id).values(driver_heartbeat=now)
    )
    row = session.execute(select(Run.driver_id, Run.terminate_requested).where(Run.id == run_id)).first()
    if row is None:
        return None
    return row[0] == driver_id, bool(row[1])


def release_run(session: Session, run_id: str, driver_id: str) -> None:
    session.execute(
        update(Run).where(Run.id == run_id, Run.driver_id == driver_id).values(driver_id=None, driver_heartbeat=0)
    )


NodeRow = tuple[str, str, str]  # (node id, phase, data as JSON)


@dataclass(frozen=True)
class Progress:
    """One pass of a driver as written: new and changed node rows, the workflow status, the run's status
    and, once it is final, when the run finished."""

    inserted: Iterable[NodeRow]
    updated: Iterable[NodeRow]
    workflow_status: dict
    status: str
    finished_at: int | None


def node_row(node: dict) -> NodeRow:
    """A node as it is stored; taken by the driver thread, so later changes to the dict do not leak in."""
    return node["id"], node.get("phase", ""), json.dumps(node, separators=(",", ":"))


def save_nodes(session: Session, run_id: str, inserted: Iterable[NodeRow], updated: Iterable[NodeRow]) -> None:
    """New nodes in one multi-row INSERT, changed ones in one executemany UPDATE."""
    rows = [{"run_id": run_id, "node_id": node_id, "phase": phase, "data": data} for node_id, phase, data in inserted]
    if rows:
        session.execute(RunNode.__table__.insert(), rows)
    changes = [{"k_run": run_id, "k_node": node_id, "phase": phase, "data": data} for node_id, phase, data in updated]
    if changes:
        table = RunNode.__table__
        statement = (
            table.update()
            .where(table.c.run_id == bindparam("k_run"), table.c.node_id == bindparam("k_node"))
            .values(phase=bindparam("phase"), data=bindparam("data"))
        )
        session.connection().execute(statement, changes)


# PostgreSQL: a pass's whole write as one statement (data-modifying CTEs, all or nothing as any single
# statement is), sent outside a transaction: one round trip instead of BEGIN, two run UPDATEs, the
# INSERT, the UPDATEs and COMMIT. The node rows travel as one JSON array of [id, phase, data] each
# (`->>` gives back the exact strings): the text never changes with the number of rows (psycopg
# prepares it once per connection), and a JSON text param is sent as is, where a text[] param would
# have psycopg escape every quote of every node in Python. Nothing is written unless the run is
# still this driver's; the count of `owned` says whether it was.
_PG_PROGRESS = """
WITH owned AS (
    UPDATE runs SET {status}{finished} WHERE id = %(run_id)s AND driver_id = %(driver_id)s RETURNING id
), manifest AS (
    UPDATE run_manifests SET workflow_status = %(workflow_status)s WHERE run_id IN (SELECT id FROM owned)
), inserted AS (
    INSERT INTO run_nodes (run_id, node_id, phase, data)
    SELECT owned.id, n->>0, n->>1, n->>2 FROM owned, json_array_elements(%(inserted)s::json) AS n
), updated AS (
    UPDATE run_nodes SET phase = n->>1, data = n->>2
    FROM owned, json_array_elements(%(updated)s::json) AS n
    WHERE run_nodes.run_id = owned.id AND run_nodes.node_id = n->>0
)
SELECT count(*) FROM owned
"""
_PG_STATUS_FINAL = "status = %(status)s"
# While a terminate is pending the run shows "Terminating", whatever phase the driver saw.
_PG_STATUS_RUNNING = f"status = CASE WHEN terminate_requested THEN '{TERMINATING}' ELSE %(status)s END"
_PG_FINISHED = ", finished_at = %(finished_at)s, driver_id = NULL"


def save_progress_postgresql(connection: Connection, run_id: str, driver_id: str, progress: Progress) -> bool:
    """`save_progress` as one statement (see _PG_PROGRESS); the connection must be in autocommit. False (and
    nothing written) if the run is no longer this driver's."""
    sql = _PG_PROGRESS.format(
        status=_PG_STATUS_FINAL if progress.status in FINAL_RUN_STATUSES else _PG_STATUS_RUNNING,
        finished="" if progress.finished_at is None else _PG_FINISHED,
    )
    params = {
        "run_id": run_id, "driver_id": driver_id, "status": progress.status, "finished_at": progress.finished_at,
        "workflow_status": json.dumps(progress.workflow_status),
        "inserted": json.dumps(list(progress.inserted)), "updated": json.dumps(list(progress.updated)),
    }
    return bool(connection.exec_driver_sql(sql, params).scalar())


def save_progress(session: Session, run_id: str, driver_id: str, progress: Progress) -> bool:
    """The run's status columns, its workflow status and its node rows, if this driver still owns the run."""
    owned = update_run_progress(
        session, run_id, driver_id, workflow_status=progress.workflow_status, status=progress.status,
        finished_at=progress.finished_at,
    )
    if owned:
        save_nodes(session, run_id, progress.inserted, progress.updated)
    return owned


def delete_nodes(session: Session, run_id: str, node_ids: Iterable[str]) -> None:
    ids = list(node_ids)
    if ids:
        session.execute(delete(RunNode).where(RunNode.run_id == run_id, RunNode.node_id.in_(ids)))


def update_run_progress(
    session: Session,
    run_id: str,
    driver_id: str,
    *,
    workflow_status: dict,
    status: str | None = None,
    finished_at: int | None = None,
) -> bool:
    """Write the workflow status (and the run's status columns) if this driver still owns the run.

    Core statements on the session's connection, not ORM updates: a driver writes after every pass, and
    the ORM's bulk-update machinery cost several times the SQL itself."""
    runs, manifests = Run.__table__, RunManifest.__table__
    values: dict[str, object] = {}
    if status is not None:
        # While a terminate is pending the run shows "Terminating", whatever phase the driver saw.
        terminating = case((runs.c.terminate_requested.is_(True), TERMINATING), else_=status)
        values["status"] = status if status in FINAL_RUN_STATUSES else terminating
    if finished_at is not None:
        values["finished_at"] = finished_at
        values["driver_id"] = None
    connection = session.connection()
    owned = and_(runs.c.id == run_id, runs.c.driver_id == driver_id)
    if values:
        result = connection.execute(update(runs).where(owned).values(**values))
        if result.rowcount == 0:
            return False
    elif connection.scalar(select(runs.c.id).where(owned)) is None:
        return False
    connection.execute(
        update(manifests).where(manifests.c.run_id == run_id).values(workflow_status=json.dumps(workflow_status))
    )
    return True

