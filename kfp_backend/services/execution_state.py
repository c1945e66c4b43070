"""The executor's view of run state: claims, heartbeats, node rows, progress. One transaction per call."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from sqlalchemy import Connection

from kfp_backend.services.clock import now_seconds
from kfp_backend.store import execution_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.execution_repo import ClaimedRun, NodeRow

# A PostgreSQL connection the progress writes keep between them is used again only this soon (see
# _writer_connection); at most this many are kept.
WRITER_CONNECTION_IDLE_SECONDS = 5.0
WRITER_CONNECTIONS_KEPT = 4


class ExecutionStateService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._idle: list[tuple[float, Connection]] = []  # writer connections kept, with when they were last used

    def _writer_connection(self) -> Connection:
        """A connection in autocommit for a progress write on PostgreSQL.

        A checkout from the pool pings the server first (the engine's pre-ping): one more round trip per
        write, each of which takes the GIL back from the steps' launches. Writes come in bursts (a run's
        passes are milliseconds apart), so the connection of the last write is kept and used again when it
        was last used moments ago: a connection that just worked needs no ping. One idle for longer goes
        back to the pool, whose checkout pings."""
        now = time.monotonic()
        stale: list[Connection] = []
        connection = None
        with self._lock:
            while self._idle:
                used, kept = self._idle.pop()
                if now - used <= WRITER_CONNECTION_IDLE_SECONDS:
                    connection = kept
                    break
                stale.append(kept)
        for kept in stale:
            kept.close()
        if connection is None:
            connection = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return connection

    def _keep_writer_connection(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < WRITER_CONNECTIONS_KEPT:
                self._idle.append((time.monotonic(), connection))
                return
        connection.close()

    def close(self) -> None:
        """Give the kept writer connections back to the pool."""
        with self._lock:
            idle, self._idle = self._idle, []
        for _used, connection in idle:
            connection.close()

    def claimable_runs(self, stale_after_seconds: int) -> list[tuple[str, str | None]]:
        with self._db.transaction(write=False) as session:
            return repo.runs_to_claim(session, stale_before=now_seconds() - stale_after_seconds)

    def driven_runs(self) -> list[tuple[str, str]]:
        with self._db.transaction(write=False) as session:
            return repo.driver_ids_of_unfinished_runs(session)

    def finished_before(self, run_ids: list[str], seconds_ago: float) -> set[str]:
        """Of `run_ids`, those that finished more than `seconds_ago` ago, or are gone."""
        cutoff = now_seconds() - int(seconds_ago)
        done: set[str] = set()
        with self._db.transaction(write=False) as session:
            for start in range(0, len(run_ids), 500):
                done |= repo.finished_before(session, run_ids[start : start + 500], cutoff)
        return done

    def claim(self, run_id: str, driver_id: str, expected_driver: str | None) -> ClaimedRun | None:
        """Take the run over from `expected_driver`; the run's state if this driver now owns it."""
        with self._db.transaction() as session:
            if not repo.claim_run(session, run_id, driver_id, expected_driver=expected_driver, now=now_seconds()):
                return None
            return repo.load_claimed_run(session, run_id)

    def heartbeat(self, run_id: str, driver_id: str) -> tuple[bool, bool] | None:
        with self._db.transaction() as session:
            return repo.heartbeat(session, run_id, driver_id, now_seconds())

    def release(self, run_id: str, driver_id: str) -> None:
        with self._db.transaction() as session:
            repo.release_run(session, run_id, driver_id)

    def save_progress(
        self,
        run_id: str,
        driver_id: str,
        *,
        inserted: Iterable[NodeRow],
        updated: Iterable[NodeRow],
        workflow_status: dict,
        status: str,
        finished: bool,
    ) -> bool:
        """Write node changes (rows from `execution_repo.node_row`) and the workflow status, in one
        transaction; False if the run is no longer this driver's."""
        finished_at = now_seconds() if finished else None
        if self._db.dialect == "postgresql":
            # One statement, atomic on its own: no transaction around it (see save_progress_postgresql).
            connection = self._writer_connection()
            try:
                owned = repo.save_progress_postgresql(
                    connection, run_id, driver_id, inserted=inserted, updated=updated,
                    workflow_status=workflow_status, status=status, finished_at=finished_at,
                )
            except BaseException:
                connection.close()
                raise
            self._keep_writer_connection(connection)
            return owned
        with self._db.transaction() as session:
            owned = repo.update_run_progress(
                session, run_id, driver_id, workflow_status=workflow_status, status=status,
                finished_at=finished_at,
            )
            if not owned:
                return False
            repo.save_nodes(session, run_id, inserted, updated)
            return True
