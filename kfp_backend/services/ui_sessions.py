"""What the web UI keeps server-wide: the key that signs its session cookies.

Every replica of the API must sign and read the same cookies, so an unset `ui_secret_key` is made once
(256 random bits) and recorded in the database's server settings, where every replica finds it."""

from __future__ import annotations

import secrets

from kfp_backend.config import Settings
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import settings_repo
from kfp_backend.store.db import Database

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
