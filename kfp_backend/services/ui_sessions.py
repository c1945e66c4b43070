"""What the web UI keeps server-wide: the key that signs its session cookies, and the signed-in sessions.

Every replica of the API must sign and read the same cookies, so an unset `ui_secret_key` is made once
(256 random bits) and recorded in the database's server settings, where every replica finds it.

A signed-in session is a row (`UiSessions`): the signed cookie carries a random session id, and a page is
served only while the row exists and has not expired. Signing out deletes the row, so a copy of the cookie
(taken before the sign-out) no longer signs anyone in, on any replica."""

from __future__ import annotations

import hashlib
import secrets

from kfp_backend.config import Settings
from kfp_backend.services.clock import now_seconds
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import settings_repo, ui_sessions_repo
from kfp_backend.store.db import Database
from kfp_backend.store.models import UiSession

SECRET_SETTING = "ui_session_secret"


def session_secret(db: Database, settings: Settings) -> str:
    """The configured key, else the one recorded in the database (made by whichever replica came first)."""
    if settings.ui_secret_key:
        return settings.ui_secret_key
    with transaction(db, write=False) as session:
        recorded = settings_repo.get_setting(session, SECRET_SETTING)
    if recorded:
        return recorded
    with transaction(db) as session:
        return settings_repo.set_setting_if_absent(session, SECRET_SETTING, secrets.token_urlsafe(32))


def _hash(session_id: str) -> str:
    # Only the hash is stored: the table's readers cannot turn its rows into cookies.
    return hashlib.sha256(session_id.encode()).hexdigest()


class UiSessions:
    """The web UI's signed-in sessions (one row each)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(self, token_id: str, lifetime_seconds: int) -> str:
        """A new session of `token_id`, valid for `lifetime_seconds`; returns its secret id (for the cookie).
        Expired sessions are deleted on the way (sign-ins are rare: the table stays small)."""
        session_id = secrets.token_urlsafe(32)
        now = now_seconds()
        with transaction(self._db) as session:
            ui_sessions_repo.delete_expired(session, now)
            ui_sessions_repo.add_session(session, UiSession(
                id=_hash(session_id), token_id=token_id, created_at=now, expires_at=now + lifetime_seconds))
        return session_id

    def token_of(self, session_id: str) -> str | None:
        """The token the session signed in with; None once it is signed out or expired."""
        with transaction(self._db, write=False) as session:
            return ui_sessions_repo.token_of(session, _hash(session_id), now_seconds())

    def end(self, session_id: str) -> None:
        with transaction(self._db) as session:
            ui_sessions_repo.delete_session(session, _hash(session_id))
