"""Autocommit connections kept between the bursts of single-statement writes of the executor (PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

# A connection kept between writes is used again only this soon after its last use; at most this many are kept.
IDLE_SECONDS = 5.0
KEPT = 4


class AutocommitConnections:
    """Hands out connections in autocommit, keeping the last ones used for the next write.

    A checkout from the pool pings the server first (the engine's pre-ping): one more round trip per
    write, each of which takes the GIL back from the steps' launches. Writes come in bursts (a run's
    passes are milliseconds apart), so the connection of the last write is kept and used again when it
    was last used moments ago: a connection that just worked needs no ping. One idle for longer goes
    back to the pool, whose checkout pings."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._idle: list[tuple[float, Connection]] = []  # connections kept, with when they were last used

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one statement; kept for the next one unless the statement failed."""
        connection = self._checkout()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        self._keep(connection)

    def close(self) -> None:
        """Give the kept connections back to the pool."""
        with self._lock:
            idle, self._idle = self._idle, []
        for _used, connection in idle:
            connection.close()

    def _checkout(self) -> Connection:
        now = time.monotonic()
        stale: list[Connection] = []
        connection = None
        with self._lock:
            while self._idle:
                used, kept = self._idle.pop()
                if now - used <= IDLE_SECONDS:
                    connection = kept
                    break
                stale.append(kept)
        for kept in stale:
            kept.close()
        if connection is None:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return connection

    def _keep(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < KEPT:
                self._idle.append((time.monotonic(), connection))
                return
        connection.close()
