"""Watching the COUNT statements an engine sends, for the tests of total_size."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from kfp_backend.store.db import Database


class CountThreads:
    """Records the thread that sends each COUNT statement to the database."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine
        self.threads: list[int] = []
        self._lock = threading.Lock()

    def _before(self, _conn, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if "count(" in statement.lower():
            with self._lock:
                self.threads.append(threading.get_ident())

    @contextmanager
    def watching(self) -> Iterator[CountThreads]:
        event.listen(self.engine, "before_cursor_execute", self._before)
        try:
            yield self
        finally:
            event.remove(self.engine, "before_cursor_execute", self._before)

    def take(self) -> list[int]:
        with self._lock:
            taken, self.threads = self.threads, []
        return taken
