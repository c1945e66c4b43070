"""The Alembic migrations build exactly the schema the models describe, on every backend, and go back down."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Index, MetaData, String, create_engine, inspect, pool, text
from sqlalchemy.engine import make_url

from alembic import command
from kfp_backend.store import migrations
from kfp_backend.store.models import Base
from tests.databases import DatabaseFactory


def _schema_differences(url: str, metadata: MetaData = Base.metadata) -> list:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def _drifted_models() -> MetaData:
    """The models with a few changes a forgotten migration would leave behind."""
    metadata = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    experiments = metadata.tables["experiments"]
    experiments.append_column(Column("owner", String(64), nullable=True))
    Index("ix_experiments_owner", experiments.c.owner)
    metadata.tables["pipelines"].c.name.type = String(200)
    metadata.tables["pipeline_versions"].c.description.nullable = True
    return metadata


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_one_linear_history() -> None:
    scripts = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    assert len(scripts.get_heads()) == 1
    assert len(scripts.get_bases()) == 1
    assert migrations.head_revision() == scripts.get_current_head()


def test_upgrade_matches_models_and_downgrade_reverts(
    backend: str, database_factories: dict[str, DatabaseFactory]
) -> None:
    with database_factories[backend].empty() as url:
        assert migrations.current_revision(url) is None
        migrations.upgrade(url)
        assert migrations.current_revision(url) == migrations.head_revision()
        assert _tables(url) == set(Base.metadata.tables) | {"alembic_version"}
        assert _schema_differences(url) == []
        # The comparison does see drift on this backend (so the empty result above means something).
        drift = _schema_differences(url, _drifted_models())
        # Column modifications come as a list of tuples, the rest as tuples.
        kinds = {diff[0] if isinstance(diff, tuple) else diff[0][0] for diff in drift}
        assert {"add_column", "add_index", "modify_type", "modify_nullable"} <= kinds, kinds

        migrations.upgrade(url)  # nothing pending: a no-op
        assert migrations.current_revision(url) == migrations.head_revision()

        command.downgrade(migrations.alembic_config(url), "base")
        assert migrations.current_revision(url) is None
        assert _tables(url) <= {"alembic_version"}

        migrations.upgrade(url)
        assert _schema_differences(url) == []


def test_mysql_without_the_trigger_privilege_migrates_and_counts_every_time(
    database_factories: dict[str, DatabaseFactory],
) -> None:
    """A MySQL user who may not create triggers (no TRIGGER privilege, or binary logging without SUPER)
    still gets the whole schema; the list count cache stays off there (no generation rows)."""
    factory = database_factories["mysql"]
    with factory.empty() as url:
        parsed = make_url(url)
        user = f"kfpb_notrg_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
            connection.execute(text(f"GRANT ALL PRIVILEGES ON {parsed.database}.* TO '{user}'@'%'"))
            connection.execute(text(f"REVOKE TRIGGER ON {parsed.database}.* FROM '{user}'@'%'"))
        try:
            limited = parsed.set(username=user, password="pw").render_as_string(hide_password=False)
            migrations.upgrade(limited)
            assert migrations.current_revision(url) == migrations.head_revision()
            assert _schema_differences(url) == []
            with admin.connect() as connection:
                assert connection.execute(text("SELECT COUNT(*) FROM list_generations")).scalar() == 0
                triggers = connection.execute(text("SHOW TRIGGERS")).all()
                assert triggers == []
        finally:
            with admin.connect() as connection:
                connection.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
            admin.dispose()
