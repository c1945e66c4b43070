"""ui sessions: each signed-in web UI session, so signing out ends it on the server

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table('ui_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('token_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    **MYSQL_TABLE,
    )
    op.create_index('ix_ui_sessions_expires_at', 'ui_sessions', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ui_sessions_expires_at', table_name='ui_sessions')
    op.drop_table('ui_sessions')
