"""list generations: a write counter per listed table, bumped by triggers (the exact COUNT cache's key)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import logging

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

# Tables whose total_size may be cached. Never runs or jobs: every writer of a table updates its one row.
TABLES = ("experiments", "pipelines", "pipeline_versions")
EVENTS = ("INSERT", "UPDATE", "DELETE")
PG_FUNCTION = "kfp_bump_list_generation"


def _bump(table: str) -> str:
    return f"UPDATE list_generations SET generation = generation + 1 WHERE resource = '{table}'"


def upgrade() -> None:
    generations = op.create_table('list_generations',
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('resource'),
    **MYSQL_TABLE,
    )
    op.bulk_insert(generations, [{"resource": table, "generation": 0} for table in TABLES])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # One bump per statement (a bulk insert of 2,000 rows is one write).
        op.execute(
            f"CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "UPDATE list_generations SET generation = generation + 1 WHERE resource = TG_TABLE_NAME; "
            "RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER trg_{table}_list_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
            )
        return
    if dialect == "sqlite":
        for table in TABLES:
            for event in EVENTS:
                op.execute(f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} BEGIN {_bump(table)}; END")
        return
    # MySQL/MariaDB: row triggers only. A server with binary logging refuses CREATE TRIGGER to a user
    # without SUPER (unless log_bin_trust_function_creators is on), and a user may lack the TRIGGER
    # privilege: then the database keeps no generations and every list counts, exactly as before.
    created: list[str] = []
    try:
        for table in TABLES:
            for event in EVENTS:
                op.execute(f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} FOR EACH ROW {_bump(table)}")
                created.append(_name(table, event))
    except sa.exc.DBAPIError as exc:
        for name in created:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DELETE FROM list_generations")
        logging.getLogger("alembic").warning(
            "list counts are not cached on this database (triggers refused: %s)", exc.orig)


def _name(table: str, event: str) -> str:
    return f"trg_{table}_{event.lower()}_list_generation"


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_list_generation ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")
    else:
        for table in TABLES:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS {_name(table, event)}")
    op.drop_table('list_generations')
