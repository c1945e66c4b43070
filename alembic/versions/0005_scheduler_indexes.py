"""scheduler: runs(job_id, finished_at) for the max_concurrency count

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_runs_job_finished_at', 'runs', ['job_id', 'finished_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_runs_job_finished_at', table_name='runs')
