"""The executor's view of run state: claims, heartbeats, node rows, progress. One transaction per call."""

from __future__ import annotations

from collections.abc import Iterable

from kfp_backend.services.clock import now_seconds
from kfp_backend.store import execution_repo as repo
from kfp_backend.store.autocommit_connections import AutocommitConnections
from kfp_backend.store.db import Database

# The executor's row types, part of this service's interface: the executor takes them from here, not store/.
from kfp_backend.store.execution_repo import ClaimedRun, NodeRow, node_row

__all__ = ["ClaimedRun", "ExecutionStateService", "NodeRow", "node_row"]


class ExecutionStateService:
    def __init__(self, db: Database) -> None:
        self._db = db
        # PostgreSQL's progress writes, one statement each, on connections kept between them.
        self._writer_connections = AutocommitConnections(db.engine)

    def close(self) -> None:
        """Give the kept writer connections back to the pool."""
        self._writer_connections.close()

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

    def run_namespace(self, run_id: str) -> str | None:
        """The namespace of a run ("": shared), None when it does not exist (an imported artifact's run)."""
        with self._db.transaction(write=False) as session:
            return repo.run_namespace(session, run_id)

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
        """Write node changes (rows from `node_row`) and the workflow status, in one
        transaction; False if the run is no longer this driver's."""
        progress = repo.Progress(inserted, updated, workflow_status, status, now_seconds() if finished else None)
        if self._db.dialect == "postgresql":
            # One statement, atomic on its own: no transaction around it (see save_progress_postgresql).
            with self._writer_connections.connection() as connection:
                return repo.save_progress_postgresql(connection, run_id, driver_id, progress)
        with self._db.transaction() as session:
            return repo.save_progress(session, run_id, driver_id, progress)
