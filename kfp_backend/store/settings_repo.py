"""Server-wide facts recorded once (e.g. which experiment is the default)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert
from kfp_backend.store.errors import DuplicateKeyError
from kfp_backend.store.models import ServerSetting

DEFAULT_EXPERIMENT_ID = "default_experiment_id"


def get_setting(session: Session, key: str) -> str | None:
    return session.scalar(select(ServerSetting.value).where(ServerSetting.key == key))


def set_setting_if_absent(session: Session, key: str, value: str) -> str:
    """Record `value` unless another writer got there first; returns the value that is recorded."""
    try:
        insert(session, ServerSetting(key=key, value=value))
        return value
    except DuplicateKeyError:
        existing = get_setting(session, key)
        assert existing is not None
        return existing


def clear_setting(session: Session, key: str, *, only_if: str | None = None) -> None:
    statement = delete(ServerSetting).where(ServerSetting.key == key)
    if only_if is not None:
        statement = statement.where(ServerSetting.value == only_if)
    session.execute(statement)
