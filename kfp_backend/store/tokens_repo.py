"""API tokens: stored by hash, found by hash, listed, revoked."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert
from kfp_backend.store.models import ApiToken


def add_token(session: Session, token: ApiToken) -> None:
    """Raises DuplicateKeyError if the hash is taken (a 256-bit collision: never in practice)."""
    insert(session, token)


def find_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))


def get_token(session: Session, token_id: str) -> ApiToken | None:
    return session.get(ApiToken, token_id)


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def revoke_token(session: Session, token_id: str, now: int) -> bool:
    """Mark the token revoked at `now` unless it already is; True when this call revoked it."""
    result = session.execute(
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]
