"""Steps sent to remote (Celery) workers, as the driver's launcher and the workers see them; one
transaction per call. The rules live in `store.dispatch_repo`: a dispatch is taken once, finished once."""

from __future__ import annotations

import time
from collections.abc import Iterable

from kfp_backend.store import dispatch_repo as repo
from kfp_backend.store.db import Database

# The row type and states, part of this service's interface: the executor takes them from here, not store/.
from kfp_backend.store.dispatch_repo import COLLECTED, FINISHED, QUEUED, RUNNING, Dispatch

__all__ = ["COLLECTED", "FINISHED", "QUEUED", "RUNNING", "Dispatch", "StepDispatchService"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class StepDispatchService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def dispatch(self, rows: list[tuple[str, str, str, str, str]]) -> dict[str, Dispatch]:
        """(key, run id, token, queue, spec JSON) -> the dispatch that stands for each key (an earlier one
        not yet collected is kept)."""
        with self._db.transaction() as session:
            return repo.dispatch(session, rows, _now_ms())

    def get(self, keys: Iterable[str]) -> dict[str, Dispatch]:
        with self._db.transaction(write=False) as session:
            return repo.get(session, keys)

    def take(self, key: str, token: str, worker: str) -> str | None:
        with self._db.transaction() as session:
            return repo.take(session, key, token, worker, _now_ms())

    def beat(self, held: Iterable[tuple[str, str]], worker: str) -> dict[str, bool]:
        with self._db.transaction() as session:
            return repo.beat(session, held, worker, _now_ms())

    def finish(self, key: str, token: str, worker: str, result: str) -> bool:
        with self._db.transaction() as session:
            return repo.finish(session, key, token, worker, result)

    def end_queued(self, key: str, token: str, result: str) -> bool:
        with self._db.transaction() as session:
            return repo.end_queued(session, key, token, result)

    def request_terminate(self, key: str, token: str) -> None:
        with self._db.transaction() as session:
            repo.request_terminate(session, key, token)

    def declare_lost(self, key: str, token: str, stale_seconds: float, result: str) -> bool:
        with self._db.transaction() as session:
            return repo.declare_lost(session, key, token, _now_ms() - int(stale_seconds * 1000), result)

    def collected(self, key: str, token: str) -> None:
        with self._db.transaction() as session:
            repo.collected(session, key, token)
