"""Idempotency keys: claimed by inserting their row (the primary key lets one writer win), then finished with the
response, released, taken over once expired or abandoned, and purged. Bytes and integers only: what a response
means is the caller's business."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from kfp_backend.store.common import is_write_conflict
from kfp_backend.store.errors import DuplicateKeyError, WriteConflictError
from kfp_backend.store.models import IdempotencyKey

PENDING = "pending"
DONE = "done"


@dataclass(frozen=True)
class NewClaim:
    """The row a request writes to claim a key: pending, with no response yet."""

    id: str
    caller: str
    key: str
    fingerprint: str
    claim_id: str
    created_at: int
    expires_at: int

    def values(self) -> dict[str, object]:
        return {
            "caller": self.caller, "idempotency_key": self.key, "fingerprint": self.fingerprint,
            "claim_id": self.claim_id, "state": PENDING, "response_status": None, "response_type": None,
            "response_body": None, "created_at": self.created_at, "expires_at": self.expires_at,
        }


def claim(session: Session, new: NewClaim) -> None:
    """Insert the claim. Raises DuplicateKeyError when the key already has a row (another request claimed it,
    now or before) and WriteConflictError when the database broke a deadlock over it; either way the
    transaction must end there (no savepoint: on MySQL/MariaDB the refused insert keeps a shared lock on the
    row until the transaction ends, and a later write of it in the same transaction could deadlock).

    Two transactions inserting the same key at once: the database makes the second wait for the first and
    then refuses it, on SQLite, PostgreSQL and MySQL/MariaDB alike.
    """
    session.add(IdempotencyKey(id=new.id, **new.values()))
    try:
        session.flush()
    except IntegrityError as exc:
        raise DuplicateKeyError(str(exc.orig)) from exc
    except OperationalError as exc:
        if is_write_conflict(exc.orig):
            raise WriteConflictError(str(exc.orig)) from exc
        raise


def find(session: Session, key_id: str) -> IdempotencyKey | None:
    # populate_existing: the row as the database has it now, not as an earlier statement of the session saw it.
    statement = select(IdempotencyKey).where(IdempotencyKey.id == key_id).execution_options(populate_existing=True)
    return session.scalar(statement)


def take_over(session: Session, new: NewClaim, seen_claim_id: str) -> bool:
    """Replace the row (expired, or abandoned by its request) with `new` if it is still the one seen: of two
    requests taking it over at once, one changes it and the other finds its claim gone."""
    result = session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == new.id, IdempotencyKey.claim_id == seen_claim_id)
        .values(**new.values())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def finish(session: Session, key_id: str, claim_id: str, status: int, content_type: str, body: bytes) -> bool:
    """Record the response of the request holding the claim; False when it no longer holds it."""
    result = session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == key_id, IdempotencyKey.claim_id == claim_id, IdempotencyKey.state == PENDING)
        .values(state=DONE, response_status=status, response_type=content_type, response_body=body)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def release(session: Session, key_id: str, claim_id: str) -> bool:
    """Delete the pending claim, if still held by `claim_id`, so the key can be sent again."""
    result = session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.id == key_id, IdempotencyKey.claim_id == claim_id, IdempotencyKey.state == PENDING
        )
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def purge_expired(session: Session, now: int) -> int:
    """Delete every key expired at `now` (through the expires_at index); returns how many."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return result.rowcount  # type: ignore[attr-defined]


def count(session: Session) -> int:
    """How many keys are stored (expired ones not yet purged included)."""
    return session.scalar(select(func.count()).select_from(IdempotencyKey)) or 0
