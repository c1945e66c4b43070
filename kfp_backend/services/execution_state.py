"""The executor's view of run state: claims, heartbeats, node rows, progress. One transaction per call."""

from __future__ import annotations

from collections.abc import Iterable

from kfp_backend.services.clock import now_seconds
from kfp_backend.store import execution_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.execution_repo import ClaimedRun, NodeRow


class ExecutionStateService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def claimable_runs(self, stale_after_seconds: int) -> list[tuple[str, str | None]]:
        with self._db.transaction(write=False) as session:
            return repo.runs_to_claim(session, stale_before=now_seconds() - stale_after_seconds)

    def driven_runs(self) -> list[tuple[str, str]]:
        with self._db.transaction(write=False) as session:
            return repo.driver_ids_of_unfinished_runs(session)

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
        with self._db.transaction() as session:
            owned = repo.update_run_progress(
                session, run_id, driver_id, workflow_status=workflow_status, status=status,
                finished_at=now_seconds() if finished else None,
            )
            if not owned:
                return False
            repo.save_nodes(session, run_id, inserted, updated)
            return True
