"""api tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# InnoDB with full UTF-8 on MySQL/MariaDB; ignored elsewhere.
MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('display_prefix', sa.String(length=16), nullable=False),
    sa.Column('user_name', sa.String(length=255), nullable=False),
    sa.Column('namespaces', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash', name='uq_api_tokens_token_hash'),
    **MYSQL_TABLE,
    )
    op.create_index('ix_api_tokens_created_at', 'api_tokens', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_api_tokens_created_at', table_name='api_tokens')
    op.drop_table('api_tokens')
