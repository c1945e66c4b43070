"""jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# InnoDB with full UTF-8 on MySQL/MariaDB; ignored elsewhere.
MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table('job_fires',
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('scheduled_at', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('run_index', sa.BigInteger(), nullable=False),
    sa.Column('fired_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('job_id', 'scheduled_at'),
    **MYSQL_TABLE,
    )
    op.create_table('jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('description_key', sa.String(length=255), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('experiment_id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_name', sa.String(length=255), nullable=False),
    sa.Column('pipeline_version_id', sa.String(length=36), nullable=True),
    sa.Column('service_account', sa.String(length=255), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('resource_references', sa.Text(), nullable=False),
    sa.Column('max_concurrency', sa.BigInteger(), nullable=False),
    sa.Column('no_catchup', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('trigger_kind', sa.String(length=16), nullable=False),
    sa.Column('cron', sa.String(length=255), nullable=False),
    sa.Column('interval_seconds', sa.BigInteger(), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('last_scheduled_at', sa.BigInteger(), nullable=False),
    sa.Column('last_index', sa.BigInteger(), nullable=False),
    sa.Column('next_fire_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    **MYSQL_TABLE,
    )
    op.create_index('ix_jobs_created_at', 'jobs', ['created_at', 'id'], unique=False)
    op.create_index('ix_jobs_description_key', 'jobs', ['description_key', 'id'], unique=False)
    op.create_index('ix_jobs_enabled_next_fire', 'jobs', ['enabled', 'next_fire_at'], unique=False)
    op.create_index('ix_jobs_experiment_created_at', 'jobs', ['experiment_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_jobs_name', 'jobs', ['name', 'id'], unique=False)
    op.create_index('ix_jobs_namespace_created_at', 'jobs', ['namespace', 'created_at', 'id'], unique=False)
    op.create_index('ix_jobs_pipeline_id', 'jobs', ['pipeline_id', 'id'], unique=False)
    op.create_index('ix_jobs_version_created_at', 'jobs', ['pipeline_version_id', 'created_at', 'id'], unique=False)
    op.create_table('scheduler_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name'),
    **MYSQL_TABLE,
    )
    op.create_table('job_manifests',
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_spec_manifest', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name='fk_job_manifests_job', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id'),
    **MYSQL_TABLE,
    )


def downgrade() -> None:
    op.drop_table('job_manifests')
    op.drop_table('scheduler_leases')
    op.drop_index('ix_jobs_version_created_at', table_name='jobs')
    op.drop_index('ix_jobs_pipeline_id', table_name='jobs')
    op.drop_index('ix_jobs_namespace_created_at', table_name='jobs')
    op.drop_index('ix_jobs_name', table_name='jobs')
    op.drop_index('ix_jobs_experiment_created_at', table_name='jobs')
    op.drop_index('ix_jobs_enabled_next_fire', table_name='jobs')
    op.drop_index('ix_jobs_description_key', table_name='jobs')
    op.drop_index('ix_jobs_created_at', table_name='jobs')
    op.drop_table('jobs')
    op.drop_table('job_fires')
