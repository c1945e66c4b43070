"""runs, run manifests, run nodes and run metrics

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# InnoDB with full UTF-8 on MySQL/MariaDB; ignored elsewhere.
MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table('runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('description_key', sa.String(length=255), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('experiment_id', sa.String(length=36), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_name', sa.String(length=255), nullable=False),
    sa.Column('pipeline_version_id', sa.String(length=36), nullable=True),
    sa.Column('service_account', sa.String(length=255), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('resource_references', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('scheduled_at', sa.BigInteger(), nullable=False),
    sa.Column('finished_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('storage_state', sa.String(length=32), nullable=False),
    sa.Column('terminate_requested', sa.Boolean(), nullable=False),
    sa.Column('driver_id', sa.String(length=64), nullable=True),
    sa.Column('driver_heartbeat', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    **MYSQL_TABLE,
    )
    op.create_index('ix_runs_created_at', 'runs', ['created_at', 'id'], unique=False)
    op.create_index('ix_runs_description_key', 'runs', ['description_key', 'id'], unique=False)
    op.create_index('ix_runs_experiment_created_at', 'runs', ['experiment_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_runs_experiment_name', 'runs', ['experiment_id', 'name', 'id'], unique=False)
    op.create_index('ix_runs_experiment_storage_state', 'runs', ['experiment_id', 'storage_state', 'created_at', 'id'], unique=False)
    op.create_index('ix_runs_finished_at', 'runs', ['finished_at', 'id'], unique=False)
    op.create_index('ix_runs_finished_heartbeat', 'runs', ['finished_at', 'driver_heartbeat'], unique=False)
    op.create_index('ix_runs_job_created_at', 'runs', ['job_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_runs_name', 'runs', ['name', 'id'], unique=False)
    op.create_index('ix_runs_namespace_created_at', 'runs', ['namespace', 'created_at', 'id'], unique=False)
    op.create_index('ix_runs_scheduled_at', 'runs', ['scheduled_at', 'id'], unique=False)
    op.create_index('ix_runs_status', 'runs', ['status', 'id'], unique=False)
    op.create_index('ix_runs_storage_state', 'runs', ['storage_state', 'created_at', 'id'], unique=False)
    op.create_index('ix_runs_version_created_at', 'runs', ['pipeline_version_id', 'created_at', 'id'], unique=False)
    op.create_table('run_manifests',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('pipeline_spec_manifest', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('workflow', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('workflow_status', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name='fk_run_manifests_run', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id'),
    **MYSQL_TABLE,
    )
    op.create_table('run_metrics',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('node_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('number_value', sa.Double(), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('reported_at_ns', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name='fk_run_metrics_run', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'node_id', 'name'),
    **MYSQL_TABLE,
    )
    op.create_table('run_nodes',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('node_id', sa.String(length=128), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('data', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name='fk_run_nodes_run', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'node_id'),
    **MYSQL_TABLE,
    )


def downgrade() -> None:
    op.drop_table('run_nodes')
    op.drop_table('run_metrics')
    op.drop_table('run_manifests')
    op.drop_index('ix_runs_version_created_at', table_name='runs')
    op.drop_index('ix_runs_storage_state', table_name='runs')
    op.drop_index('ix_runs_status', table_name='runs')
    op.drop_index('ix_runs_scheduled_at', table_name='runs')
    op.drop_index('ix_runs_namespace_created_at', table_name='runs')
    op.drop_index('ix_runs_name', table_name='runs')
    op.drop_index('ix_runs_job_created_at', table_name='runs')
    op.drop_index('ix_runs_finished_heartbeat', table_name='runs')
    op.drop_index('ix_runs_finished_at', table_name='runs')
    op.drop_index('ix_runs_experiment_storage_state', table_name='runs')
    op.drop_index('ix_runs_experiment_name', table_name='runs')
    op.drop_index('ix_runs_experiment_created_at', table_name='runs')
    op.drop_index('ix_runs_description_key', table_name='runs')
    op.drop_index('ix_runs_created_at', table_name='runs')
    op.drop_table('runs')
