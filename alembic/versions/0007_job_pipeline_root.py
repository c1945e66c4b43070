"""jobs.pipeline_root: the pipeline root of the runs a KFP v2 (IR) recurring run fires

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('pipeline_root', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'pipeline_root')  # SQLite 3.35+ drops a column in place
