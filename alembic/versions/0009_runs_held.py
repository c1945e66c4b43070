"""runs.held: a run created with start=false waits, unclaimed, for POST .../runs/{id}:start

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL counts as not held: the existing rows are runs that were started when created.
    op.add_column('runs', sa.Column('held', sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column('runs', 'held')  # SQLite 3.35+ drops a column in place
