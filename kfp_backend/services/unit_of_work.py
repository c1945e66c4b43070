"""One database transaction per operation, and where a value the database refused becomes a service error.

A service operation opens one transaction here and passes its session down: reading, authorizing and writing
the rows it acts on all happen in it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from kfp_backend.services.errors import AlreadyExists, ValueRefused
from kfp_backend.store.db import Database
from kfp_backend.store.errors import DuplicateKeyError, ValueRefusedError

log = logging.getLogger(__name__)


@contextmanager
def transaction(db: Database, *, write: bool = True) -> Iterator[Session]:
    """`db.transaction`, with a value the database refused (a NUL character PostgreSQL text cannot hold, a
    number out of a column's range...) turned into the caller's 400 once the transaction has rolled back."""
    try:
        with db.transaction(write=write) as session:
            yield session
    except ValueRefusedError as exc:
        log.warning("database refused a value: %s", exc)
        raise ValueRefused(str(exc)) from exc


@contextmanager
def refused_as_taken(message: str) -> Iterator[None]:
    """AlreadyExists(`message`) when a write inside is refused by a unique constraint (a name taken)."""
    try:
        yield
    except DuplicateKeyError:
        raise AlreadyExists(message) from None
