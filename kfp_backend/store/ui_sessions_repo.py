"""Signed-in web UI sessions: added at sign-in, read on every page, deleted at sign-out or once expired."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert
from kfp_backend.store.models import UiSession


def add_session(session: Session, ui_session: UiSession) -> None:
    insert(session, ui_session)


def token_of(session: Session, session_hash: str, now: int) -> str | None:
    """The token id of a session that exists and has not expired."""
    return session.scalar(
        select(UiSession.token_id).where(UiSession.id == session_hash, UiSession.expires_at > now))


def delete_session(session: Session, session_hash: str) -> None:
    session.execute(delete(UiSession).where(UiSession.id == session_hash))


def delete_expired(session: Session, now: int) -> None:
    session.execute(delete(UiSession).where(UiSession.expires_at <= now))
