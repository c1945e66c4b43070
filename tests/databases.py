"""Fresh, migrated databases for tests: SQLite always, PostgreSQL and MariaDB/MySQL when configured.

Migrations run once per backend per test process into a template; each test then gets its own copy
(a file copy, `CREATE DATABASE ... TEMPLATE`, or the template's CREATE TABLE statements) and drops it after.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from kfp_backend.store import migrations
from kfp_backend.store.models import Base

POSTGRES_ENV = "KFP_BACKEND_TEST_POSTGRES_URL"
MYSQL_ENV = "KFP_BACKEND_TEST_MYSQL_URL"
BACKENDS = ("sqlite", "postgres", "mysql")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"database unavailable under CI=true: {reason}")
    pytest.skip(reason)


def _admin_url(backend: str) -> str:
    env = POSTGRES_ENV if backend == "postgres" else MYSQL_ENV
    url = os.environ.get(env)
    if not url:
        _unavailable(f"{env} is not set")
    return url  # type: ignore[return-value]


def _random_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class DatabaseFactory:
    """Hands out fresh migrated databases of one backend."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self._template: str | None = None
        self._admin_engine = None

    def _admin(self):  # type: ignore[no-untyped-def]
        if self._admin_engine is None:
            url = _admin_url(self.backend)
            engine = create_engine(url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            except Exception as exc:
                _unavailable(f"{self.backend} at {make_url(url).render_as_string()} unreachable: {exc}")
            self._admin_engine = engine
        return self._admin_engine

    def _url_for(self, database: str) -> str:
        return make_url(_admin_url(self.backend)).set(database=database).render_as_string(hide_password=False)

    def _ensure_template(self) -> str:
        if self._template is not None:
            return self._template
        if self.backend == "sqlite":
            path = self.workdir / "template.db"
            migrations.upgrade(f"sqlite:///{path}")
            self._template = str(path)
        else:
            name = _random_name("kfpb_tmpl")
            with self._admin().connect() as connection:
                connection.execute(text(f"CREATE DATABASE {name}"))
            migrations.upgrade(self._url_for(name))
            self._template = name
        return self._template

    @contextmanager
    def fresh(self) -> Iterator[str]:
        template = self._ensure_template()
        if self.backend == "sqlite":
            path = self.workdir / f"{uuid.uuid4().hex}.db"
            shutil.copyfile(template, path)
            yield f"sqlite:///{path}"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        name = _random_name("kfpb_test")
        with self._admin().connect() as connection:
            if self.backend == "postgres":
                connection.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}"))
            else:
                connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
                for table in ["alembic_version", *(t.name for t in Base.metadata.sorted_tables)]:
                    ddl = connection.execute(text(f"SHOW CREATE TABLE {template}.{table}")).one()[1]
                    connection.execute(text(f"USE {name}"))
                    connection.execute(text(ddl))
                    # Rows the migrations seed (the revision, list_generations).
                    connection.execute(text(f"INSERT INTO {name}.{table} SELECT * FROM {template}.{table}"))
                # And the triggers they create (SHOW CREATE TABLE leaves them out).
                for trigger in connection.execute(text(f"SHOW TRIGGERS FROM {template}")).mappings().all():
                    ddl = connection.execute(
                        text(f"SHOW CREATE TRIGGER {template}.{trigger['Trigger']}")).mappings().one()
                    connection.execute(text(f"USE {name}"))
                    connection.exec_driver_sql(ddl["SQL Original Statement"])
        try:
            yield self._url_for(name)
        finally:
            self.drop(name)

    def drop(self, name: str) -> None:
        with self._admin().connect() as connection:
            if self.backend == "postgres":
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))

    @contextmanager
    def empty(self) -> Iterator[str]:
        """An empty database (no schema), for tests of the migrations themselves."""
        if self.backend == "sqlite":
            path = self.workdir / f"{uuid.uuid4().hex}.db"
            yield f"sqlite:///{path}"
            path.unlink(missing_ok=True)
            return
        name = _random_name("kfpb_empty")
        with self._admin().connect() as connection:
            extra = " CHARACTER SET utf8mb4" if self.backend == "mysql" else ""
            connection.execute(text(f"CREATE DATABASE {name}{extra}"))
        try:
            yield self._url_for(name)
        finally:
            self.drop(name)

    def close(self) -> None:
        if self._template is not None and self.backend != "sqlite":
            self.drop(self._template)
        if self._admin_engine is not None:
            self._admin_engine.dispose()
