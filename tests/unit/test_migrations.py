"""The Alembic migrations build exactly the schema the models describe, on every backend, and go back down."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Index, MetaData, String, create_engine, inspect, pool

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
