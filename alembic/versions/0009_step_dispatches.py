"""step_dispatches: steps sent to Celery workers, their state, heartbeat and result

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table('step_dispatches',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('queue', sa.String(length=255), nullable=False),
    sa.Column('spec', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('worker', sa.String(length=255), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('heartbeat_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('terminate', sa.Boolean(), nullable=False),
    sa.Column('result', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name='fk_step_dispatches_run', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key'),
    **MYSQL_TABLE,
    )
    op.create_index('ix_step_dispatches_run_id', 'step_dispatches', ['run_id'], unique=False)


def downgrade() -> None:
    op.drop_table('step_dispatches')  # its index with it (MySQL keeps one for the foreign key)
