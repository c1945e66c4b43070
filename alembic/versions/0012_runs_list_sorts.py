"""runs list sorts: Duration (a generated runs.duration_key) and Pipeline, each with its indexes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# As models.ACTIVE_DURATION_BASE when this was written (a migration keeps its own copy).
DURATION_KEY = ("CASE WHEN finished_at = 0 THEN 1000000000000 - created_at "
                "ELSE finished_at - created_at END")
INDEXES = {
    'ix_runs_duration_key': ['duration_key', 'id'],
    'ix_runs_pipeline_name': ['pipeline_name', 'id'],
    'ix_runs_experiment_duration_key': ['experiment_id', 'duration_key', 'id'],
    'ix_runs_experiment_pipeline_name': ['experiment_id', 'pipeline_name', 'id'],
}


def upgrade() -> None:
    # VIRTUAL on SQLite (the only kind ALTER TABLE can add there) and MariaDB (both index it); STORED on
    # PostgreSQL, whose virtual columns (18+) cannot be indexed (this rewrites the table once).
    stored = True if op.get_bind().dialect.name == 'postgresql' else None
    op.add_column('runs', sa.Column('duration_key', sa.BigInteger(), sa.Computed(DURATION_KEY, persisted=stored),
                                    nullable=True))
    for name, columns in INDEXES.items():
        op.create_index(name, 'runs', columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name='runs')
    op.drop_column('runs', 'duration_key')  # SQLite 3.35+ drops a column in place
