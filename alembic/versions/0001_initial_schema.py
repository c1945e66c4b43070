"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# InnoDB with full UTF-8 on MySQL/MariaDB; ignored elsewhere.
MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('description_key', sa.String(length=255), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('storage_state', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('namespace', 'name', name='uq_experiments_namespace_name'),
    **MYSQL_TABLE,
    )
    op.create_index('ix_experiments_created_at', 'experiments', ['created_at', 'id'], unique=False)
    op.create_index('ix_experiments_description_key', 'experiments', ['description_key', 'id'], unique=False)
    op.create_index('ix_experiments_name', 'experiments', ['name', 'id'], unique=False)
    op.create_index('ix_experiments_namespace_created_at', 'experiments', ['namespace', 'created_at', 'id'], unique=False)
    op.create_index('ix_experiments_storage_state', 'experiments', ['storage_state', 'created_at', 'id'], unique=False)
    op.create_table('pipelines',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('description_key', sa.String(length=255), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('default_version_id', sa.String(length=36), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('namespace', 'name', name='uq_pipelines_namespace_name'),
    **MYSQL_TABLE,
    )
    op.create_index('ix_pipelines_created_at', 'pipelines', ['created_at', 'id'], unique=False)
    op.create_index('ix_pipelines_name', 'pipelines', ['name', 'id'], unique=False)
    op.create_index('ix_pipelines_namespace_created_at', 'pipelines', ['namespace', 'created_at', 'id'], unique=False)
    op.create_index('ix_pipelines_namespace_description_key', 'pipelines', ['namespace', 'description_key', 'id'], unique=False)
    op.create_table('server_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key'),
    **MYSQL_TABLE,
    )
    op.create_table('pipeline_versions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('code_source_url', sa.Text(), nullable=False),
    sa.Column('package_url', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name='fk_pipeline_versions_pipeline', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('pipeline_id', 'name', name='uq_pipeline_versions_pipeline_name'),
    **MYSQL_TABLE,
    )
    op.create_index('ix_pipeline_versions_pipeline_created_at', 'pipeline_versions', ['pipeline_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_pipeline_versions_pipeline_status', 'pipeline_versions', ['pipeline_id', 'status', 'id'], unique=False)
    op.create_table('pipeline_templates',
    sa.Column('version_id', sa.String(length=36), nullable=False),
    sa.Column('template', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['pipeline_versions.id'], name='fk_pipeline_templates_version', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id'),
    **MYSQL_TABLE,
    )


def downgrade() -> None:
    op.drop_table('pipeline_templates')
    op.drop_index('ix_pipeline_versions_pipeline_status', table_name='pipeline_versions')
    op.drop_index('ix_pipeline_versions_pipeline_created_at', table_name='pipeline_versions')
    op.drop_table('pipeline_versions')
    op.drop_table('server_settings')
    op.drop_index('ix_pipelines_namespace_description_key', table_name='pipelines')
    op.drop_index('ix_pipelines_namespace_created_at', table_name='pipelines')
    op.drop_index('ix_pipelines_name', table_name='pipelines')
    op.drop_index('ix_pipelines_created_at', table_name='pipelines')
    op.drop_table('pipelines')
    op.drop_index('ix_experiments_storage_state', table_name='experiments')
    op.drop_index('ix_experiments_namespace_created_at', table_name='experiments')
    op.drop_index('ix_experiments_name', table_name='experiments')
    op.drop_index('ix_experiments_description_key', table_name='experiments')
    op.drop_index('ix_experiments_created_at', table_name='experiments')
    op.drop_table('experiments')
