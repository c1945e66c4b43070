"""Helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from kfp_backend.store.errors import DuplicateKeyError, MissingReferenceError

_PG_FOREIGN_KEY_VIOLATION = "23503"
_MYSQL_FOREIGN_KEY_ERRORS = (1216, 1452)  # no parent row (1451/1217 are refused deletes)
_PG_WRITE_CONFLICTS = ("40P01", "40001")  # deadlock detected, serialization failure
_MYSQL_WRITE_CONFLICTS = (1213, 1205)  # deadlock found, lock wait timeout


def insert(session: Session, *rows: object) -> None:
    """Insert rows now, turning a unique-constraint violation into DuplicateKeyError and a foreign-key
    violation (the referenced row is gone) into MissingReferenceError.

    The savepoint keeps the surrounding transaction usable after the violation (PostgreSQL aborts it).
    """
    try:
        with session.begin_nested():
            session.add_all(rows)
            session.flush()
    except IntegrityError as exc:
        if is_foreign_key_violation(exc.orig):
            raise MissingReferenceError(str(exc.orig)) from exc
        raise DuplicateKeyError(str(exc.orig)) from exc


def is_foreign_key_violation(error: BaseException) -> bool:
    """Whether a driver's integrity error is a foreign key's refusal (PostgreSQL, MySQL/MariaDB, SQLite)."""
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL: (error number, message); its SQLSTATE is a generic 23000
        return args[0] in _MYSQL_FOREIGN_KEY_ERRORS
    sqlstate = getattr(error, "sqlstate", None)  # psycopg
    if sqlstate is not None:
        return sqlstate == _PG_FOREIGN_KEY_VIOLATION
    return "FOREIGN KEY constraint failed" in str(error)  # SQLite


def values_by_key(
    session: Session, key: InstrumentedAttribute[str], value: InstrumentedAttribute[Any], keys: Iterable[str]
) -> dict[str, Any]:
    """`value` of the rows whose `key` is one of `keys`, by key, in one query (none for no keys)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    return {found: got for found, got in session.execute(select(key, value).where(key.in_(wanted)))}


def is_write_conflict(error: BaseException) -> bool:
    """Whether a driver's operational error is a deadlock (or a lock wait given up) between writers."""
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL
        return args[0] in _MYSQL_WRITE_CONFLICTS
    return getattr(error, "sqlstate", None) in _PG_WRITE_CONFLICTS
