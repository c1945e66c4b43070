"""Helpers shared by the repositories."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kfp_backend.store.errors import DuplicateKeyError


def insert(session: Session, *rows: object) -> None:
    """Insert rows now, turning a unique-constraint violation into DuplicateKeyError.

    The savepoint keeps the surrounding transaction usable after the violation (PostgreSQL aborts it).
    """
    try:
        with session.begin_nested():
            session.add_all(rows)
            session.flush()
    except IntegrityError as exc:
        raise DuplicateKeyError(str(exc.orig)) from exc
