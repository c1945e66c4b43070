"""Steps sent to remote (Celery) workers, as the driver's launcher and the workers see them; one
transaction per call. The rules live in `store.dispatch_repo`: a dispatch is taken once, finished once."""

from __future__ import annotations

import time
from collections.abc import Iterable

from kfp_backend.store import dispatch_repo as repo
from kfp_backend.store import execution_repo
from kfp_backend.store.db import Database

# The row type and states, part of this service's interface: the executor takes them from here, not store/.
from kfp_backend.store.dispatch_repo import COLLECTED, FINISHED, QUEUED, RUNNING, Dispatch

__all__ = ["COLLECTED", "FINISHED", "QUEUED", "RUNNING", "Dispatch", "StepDispatchService"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class StepDispatchService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def run_namespace(self, run_id: str) -> str | None:
        """The namespace of a run ("": shared), None when it does not exist (an imported artifact's run)."""
        with self._db.transaction(write=False) as session:
            return execution_repo.run_namespace(session, run_id)

    def dispatch(self, rows: list[tuple[str, str, str, str, str]],
                 collected: Iterable[tuple[str, str]] = ()) -> dict[str, Dispatch]:
        """(key, run id, token, queue, spec JSON) -> the dispatch that stands for each key (an earlier one
        not yet collected is kept). `collected`: (key, token) of results taken meanwhile, marked first (so a
        step's path has one round of writes, not two)."""
        collected = list(collected)
        if len(rows) == 1:  # a chain's next step: no transaction, one INSERT (and the marks) on their own
            try:
                with self._db.statement() as session:
                    repo.collected(session, collected)
                    return repo.insert_new(session, rows[0], _now_ms())
            except repo.KeyTaken:
                pass
        with self._db.transaction() as session:
            repo.collected(session, collected)
            return repo.dispatch(session, rows, _now_ms())

    def get(self, keys: Iterable[str]) -> dict[str, Dispatch]:
        with self._db.statement() as session:
            return repo.get(session, keys)

    def take(self, key: str, token: str, worker: str) -> str | None:
        with self._db.statement() as session:  # one UPDATE ... RETURNING (else its spec read after)
            return repo.take(session, key, token, worker, _now_ms())

    def beat(self, held: Iterable[tuple[str, str]], worker: str) -> dict[str, bool]:
        with self._db.transaction() as session:
            return repo.beat(session, held, worker, _now_ms())

    def finish(self, key: str, token: str, worker: str, result: str) -> bool:
        with self._db.statement() as session:
            return repo.finish(session, key, token, worker, result)

    def end_queued(self, key: str, token: str, result: str) -> bool:
        with self._db.statement() as session:
            return repo.end_queued(session, key, token, result)

    def request_terminate(self, key: str, token: str) -> None:
        with self._db.statement() as session:
            repo.request_terminate(session, key, token)

    def declare_lost(self, key: str, token: str, stale_seconds: float, result: str) -> bool:
        with self._db.statement() as session:
            return repo.declare_lost(session, key, token, _now_ms() - int(stale_seconds * 1000), result)

    def collected(self, marks: Iterable[tuple[str, str]]) -> None:
        """The driver took the results of these (key, token) dispatches."""
        with self._db.statement() as session:
            repo.collected(session, marks)
