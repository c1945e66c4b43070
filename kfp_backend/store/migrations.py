"""Schema migrations with Alembic: the only way the server's schema is created or changed."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from alembic import command

# The migration scripts live at the top of the source tree (installed editable, as the Makefile does).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "alembic"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> str | None:
    """Apply the migrations up to `revision`; returns the revision the database was at (None: empty)."""
    # Make sure a SQLite file's directory exists before Alembic opens it.
    from kfp_backend.store.db import Database

    Database(url, pool_size=1).dispose()
    before = current_revision(url)
    command.upgrade(alembic_config(url), revision)
    return before


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
