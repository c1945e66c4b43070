"""Relational schema. Alembic migrations (alembic/versions) own the real schema; a test keeps them in step.

Times are whole Unix seconds (as upstream stores them), which keeps keyset pagination exact.
`description_key` columns hold the first 255 characters of a free-text description: they carry the
index used to sort by description (long text cannot be indexed on every database).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kfp_backend.store.states import JOB_NO_STATUS

DESCRIPTION_KEY_LENGTH = 255
NAME_LENGTH = 255
NAMESPACE_LENGTH = 63
# Argo node ids are `<workflow name>-<decimal hash>`; metric node ids are capped at 128 upstream.
NODE_ID_LENGTH = 128
IDEMPOTENCY_KEY_LENGTH = 255
# runs.duration_key of a run still active: this minus its creation time, above any finished run's duration.
ACTIVE_DURATION_BASE = 10**12

LongText = Text().with_variant(mysql.LONGTEXT(), "mysql")
# Bytes of any size: a MySQL BLOB holds 64 KiB only.
LongBlob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql")


class Base(DeclarativeBase):
    pass


def description_key(description: str) -> str:
    return description[:DESCRIPTION_KEY_LENGTH]


def row_of(table: str, constraint: str) -> Mapped[str]:
    """A primary-key column naming the row of `table` this row belongs to (and goes with)."""
    return mapped_column(
        String(36), ForeignKey(f"{table}.id", ondelete="CASCADE", name=constraint), primary_key=True
    )


class NamedInNamespace:
    """The columns of every resource with an id, a name and a description, in a namespace ("": shared)."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    description_key: Mapped[str] = mapped_column(String(DESCRIPTION_KEY_LENGTH), nullable=False, default="")
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LENGTH), nullable=False, default="")


class ServerSetting(Base):
    """Small key/value facts the server records once (e.g. the default experiment's id)."""

    __tablename__ = "server_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Experiment(NamedInNamespace, Base):
    __tablename__ = "experiments"
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    storage_state: Mapped[str] = mapped_column(String(32), nullable=False)

    __table_args__ = (
        UniqueConstraint("namespace", "name", name="uq_experiments_namespace_name"),
        Index("ix_experiments_created_at", "created_at", "id"),
        Index("ix_experiments_name", "name", "id"),
        Index("ix_experiments_description_key", "description_key", "id"),
        Index("ix_experiments_storage_state", "storage_state", "created_at", "id"),
        Index("ix_experiments_namespace_created_at", "namespace", "created_at", "id"),
    )


class Pipeline(NamedInNamespace, Base):
    __tablename__ = "pipelines"
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="READY")
    # JSON parameters of the pipeline's first version, as upstream reports them on the pipeline.
    parameters: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    # No foreign key: the default version may be deleted and is then moved by the service.
    default_version_id: Mapped[str | None] = mapped_column(String(36), nullable=True)

    __table_args__ = (
        UniqueConstraint("namespace", "name", name="uq_pipelines_namespace_name"),
        Index("ix_pipelines_namespace_created_at", "namespace", "created_at", "id"),
        Index("ix_pipelines_namespace_description_key", "namespace", "description_key", "id"),
        Index("ix_pipelines_created_at", "created_at", "id"),
        Index("ix_pipelines_name", "name", "id"),
    )


class PipelineVersion(Base):
    __tablename__ = "pipeline_versions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("pipelines.id", ondelete="CASCADE", name="fk_pipeline_versions_pipeline"),
        nullable=False,
    )
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="READY")
    # JSON list of {"name", "value"?} taken from the workflow's spec.arguments.parameters.
    parameters: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    code_source_url: Mapped[str] = mapped_column(Text, nullable=False, default="")
    package_url: Mapped[str] = mapped_column(Text, nullable=False, default="")

    __table_args__ = (
        UniqueConstraint("pipeline_id", "name", name="uq_pipeline_versions_pipeline_name"),
        Index("ix_pipeline_versions_pipeline_created_at", "pipeline_id", "created_at", "id"),
        Index("ix_pipeline_versions_pipeline_status", "pipeline_id", "status", "id"),
    )


class PipelineTemplate(Base):
    """A version's workflow manifest, kept apart so that listing versions never reads it."""

    __tablename__ = "pipeline_templates"
    version_id: Mapped[str] = row_of("pipeline_versions", "fk_pipeline_templates_version")
    template: Mapped[str] = mapped_column(LongText, nullable=False)


class ExecutesAPipeline(NamedInNamespace):
    """The columns a run and a job share: their experiment and what pipeline they execute, with which
    parameters and references."""

    experiment_id: Mapped[str] = mapped_column(String(36), nullable=False)
    pipeline_id: Mapped[str] = mapped_column(String(36), nullable=False, default="")
    pipeline_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    pipeline_version_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    service_account: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    # JSON list of {"name", "value"}: exactly the parameters the request gave.
    parameters: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    resource_references: Mapped[str] = mapped_column(Text, nullable=False, default="[]")


class PipelineSpecManifest:
    """pipeline_spec.workflow_manifest of a run or a job: the request's manifest verbatim, or the version's
    template."""

    pipeline_spec_manifest: Mapped[str] = mapped_column(LongText, nullable=False, default="")


class Run(ExecutesAPipeline, Base):
    """One run. What listing returns lives here; manifests and node state live in their own tables.

    `resource_references` is the rendered JSON list (names included): experiment and version names
    never change, so listing needs no join. The id columns beside it carry the indexes.
    """

    __tablename__ = "runs"
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    scheduled_at: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    finished_at: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # The Argo workflow phase ("" before the first report), or "Terminating".
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    storage_state: Mapped[str] = mapped_column(String(32), nullable=False)
    # Execution bookkeeping: a terminate was asked for; which executor drives the run and when it
    # last said so (a stale heartbeat lets another executor take the run over).
    terminate_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Created with start=false and not started yet: no executor claims it (status Pending) until :start.
    # Nullable (NULL: not held), so that adding it to a table with rows needs no default on any database.
    held: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=False)
    driver_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    driver_heartbeat: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # What the runs list sorts Duration by, computed by the database (so every writer keeps it right): a
    # finished run's finished_at - created_at; a run still active sorts above every finished one, the oldest
    # highest (as its running time grows), by a value that does not change while it runs, so page tokens
    # stay valid. Nullable only because MariaDB refuses NOT NULL on a generated column; it is never NULL.
    # Migration 0012 makes it VIRTUAL on SQLite and MariaDB, STORED on PostgreSQL (indexed everywhere).
    duration_key: Mapped[int | None] = mapped_column(BigInteger, Computed(
        f"CASE WHEN finished_at = 0 THEN {ACTIVE_DURATION_BASE} - created_at ELSE finished_at - created_at END"
    ), nullable=True)

    __table_args__ = (
        Index("ix_runs_created_at", "created_at", "id"),
        Index("ix_runs_name", "name", "id"),
        Index("ix_runs_description_key", "description_key", "id"),
        Index("ix_runs_finished_at", "finished_at", "id"),
        Index("ix_runs_scheduled_at", "scheduled_at", "id"),
        Index("ix_runs_status", "status", "id"),
        Index("ix_runs_storage_state", "storage_state", "created_at", "id"),
        Index("ix_runs_experiment_created_at", "experiment_id", "created_at", "id"),
        Index("ix_runs_experiment_storage_state", "experiment_id", "storage_state", "created_at", "id"),
        Index("ix_runs_experiment_name", "experiment_id", "name", "id"),
        # The runs list sorted by Duration or Pipeline, all runs or an experiment's (migration 0012).
        Index("ix_runs_duration_key", "duration_key", "id"),
        Index("ix_runs_pipeline_name", "pipeline_name", "id"),
        Index("ix_runs_experiment_duration_key", "experiment_id", "duration_key", "id"),
        Index("ix_runs_experiment_pipeline_name", "experiment_id", "pipeline_name", "id"),
        Index("ix_runs_job_created_at", "job_id", "created_at", "id"),
        # The scheduler's max_concurrency count: the unfinished runs of a few jobs.
        Index("ix_runs_job_finished_at", "job_id", "finished_at"),
        Index("ix_runs_version_created_at", "pipeline_version_id", "created_at", "id"),
        Index("ix_runs_namespace_created_at", "namespace", "created_at", "id"),
        # The monitor's scan: unfinished runs and their drivers' heartbeats.
        Index("ix_runs_finished_heartbeat", "finished_at", "driver_heartbeat"),
    )


class RunManifest(PipelineSpecManifest, Base):
    """The big texts of a run, read only by get, the executor and retry."""

    __tablename__ = "run_manifests"
    run_id: Mapped[str] = row_of("runs", "fk_run_manifests_run")
    # The workflow as submitted (JSON: metadata + spec, parameters overridden, ids substituted).
    workflow: Mapped[str] = mapped_column(LongText, nullable=False, default="")
    # The workflow-level status fields (phase, startedAt, finishedAt, message, progress) as JSON.
    workflow_status: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


class RunNode(Base):
    """One Argo node of a run: `data` is the node as Argo's status shows it (JSON), plus private
    executor keys starting with `_` that are never shown."""

    __tablename__ = "run_nodes"
    run_id: Mapped[str] = row_of("runs", "fk_run_nodes_run")
    node_id: Mapped[str] = mapped_column(String(NODE_ID_LENGTH), primary_key=True)
    phase: Mapped[str] = mapped_column(String(16), nullable=False)
    data: Mapped[str] = mapped_column(LongText, nullable=False)


class RunMetric(Base):
    """A reported metric; the primary key makes the first report win."""

    __tablename__ = "run_metrics"
    run_id: Mapped[str] = row_of("runs", "fk_run_metrics_run")
    node_id: Mapped[str] = mapped_column(String(NODE_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    number_value: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    format: Mapped[str] = mapped_column(String(16), nullable=False, default="UNSPECIFIED")
    # Keeps the order of reports (runs show their metrics in that order).
    reported_at_ns: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class Job(ExecutesAPipeline, Base):
    """A recurring run. Its schedule progress (`last_scheduled_at`, `last_index`, `next_fire_at`) is
    what the scheduler reads and advances; the manifest lives in `job_manifests`."""

    __tablename__ = "jobs"
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    max_concurrency: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1)
    no_catchup: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # "cron", "periodic" or "" (neither: a one-off that fires once at creation, as upstream).
    trigger_kind: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    cron: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    interval_seconds: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    start_time: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # 0: not set
    end_time: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # 0: not set
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default=JOB_NO_STATUS)
    last_scheduled_at: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_index: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # When the scheduler should look at the job next (None: never, e.g. past its end time).
    next_fire_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The pipeline root of the runs of a KFP v2 (IR) job (v2beta1 runtime_config.pipeline_root); None: the
    # default. Nullable, so that adding it to a table with rows needs no default on any database.
    pipeline_root: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)

    __table_args__ = (
        Index("ix_jobs_created_at", "created_at", "id"),
        Index("ix_jobs_name", "name", "id"),
        Index("ix_jobs_description_key", "description_key", "id"),
        Index("ix_jobs_experiment_created_at", "experiment_id", "created_at", "id"),
        Index("ix_jobs_namespace_created_at", "namespace", "created_at", "id"),
        Index("ix_jobs_pipeline_id", "pipeline_id", "id"),
        Index("ix_jobs_version_created_at", "pipeline_version_id", "created_at", "id"),
        Index("ix_jobs_enabled_next_fire", "enabled", "next_fire_at"),
    )


class JobManifest(PipelineSpecManifest, Base):
    __tablename__ = "job_manifests"
    job_id: Mapped[str] = row_of("jobs", "fk_job_manifests_job")


class JobFire(Base):
    """One fire of a job. The primary key makes a second fire of the same scheduled time impossible,
    whatever the number of schedulers; `fired_at_ms` records the fire lag."""

    __tablename__ = "job_fires"
    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    scheduled_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), nullable=False)
    run_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fired_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SchedulerLease(Base):
    """Who is the active scheduler, until when. Renewed on a heartbeat; a stale lease may be taken."""

    __tablename__ = "scheduler_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), nullable=False)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ApiToken(Base):
    """A bearer token for the API. Only its SHA-256 hash is stored (the token itself is shown once, at
    creation); `display_prefix` is a short non-secret head of it, to tell tokens apart in listings."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # hex SHA-256
    display_prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    user_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    # JSON list of namespaces the token is limited to; [] means not limited by the token.
    namespaces: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: never
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: not revoked

    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        Index("ix_api_tokens_created_at", "created_at", "id"),
    )


class ListGeneration(Base):
    """A write counter per listed table, bumped by database triggers (migration 0006) on every INSERT, UPDATE
    and DELETE of it, whatever the writer: the list engine keeps an exact total_size while the counter of
    every table its COUNT reads is unchanged (see store/listing.py). Not for runs and jobs: all their writers
    would queue on the one row."""

    __tablename__ = "list_generations"
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)  # the table's name
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)


class IdempotencyKey(Base):
    """One `Idempotency-Key` of one caller (services/idempotency.py): claimed by the first request naming it,
    which records its fingerprint, then that request's response, until `expires_at`."""

    __tablename__ = "idempotency_keys"
    # SHA-256 (hex) of the caller and the key: a short primary key, compared byte for byte on every database
    # (MySQL's default collation would compare the key itself without case), whatever the caller's length.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    caller: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)  # the user, for operators to read
    idempotency_key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_LENGTH), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)  # SHA-256 (hex) of the request
    # Which claim holds the row: finishing or releasing a claim changes the row only while it still holds it.
    claim_id: Mapped[str] = mapped_column(String(36), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # "pending", then "done"
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LongBlob, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)


class StepDispatch(Base):
    """One attempt of a step sent to a remote worker (Celery): the record both sides write, so a lost
    message or a restarted driver loses nothing. `key` is the attempt's (`<run id>/<node id>`); `token`
    names this dispatch of it: a worker takes a dispatch only while it is `queued` with that token, so a
    redelivered or stale message never runs a step twice. The worker renews `heartbeat_at_ms` while it
    runs the step; `result` (JSON) is its exit, its small output files and the outputs it stored."""

    __tablename__ = "step_dispatches"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("runs.id", ondelete="CASCADE", name="fk_step_dispatches_run"), nullable=False
    )
    token: Mapped[str] = mapped_column(String(32), nullable=False)
    # queued -> running -> finished (or lost: its worker stopped beating) -> collected (the driver took it)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    queue: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    spec: Mapped[str] = mapped_column(LongText, nullable=False)  # the StepSpec as JSON
    worker: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    heartbeat_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    terminate: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    result: Mapped[str] = mapped_column(LongText, nullable=False, default="")

    __table_args__ = (Index("ix_step_dispatches_run_id", "run_id"),)


class UiSession(Base):
    """A signed-in web UI session (services/ui_sessions.py). The cookie names it; signing out deletes the row, so
    a copy of the cookie stops working too. Only the SHA-256 of the session's secret id is stored."""

    __tablename__ = "ui_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256 of the cookie's session id
    token_id: Mapped[str] = mapped_column(String(36), nullable=False)  # the API token the person signed in with
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (Index("ix_ui_sessions_expires_at", "expires_at"),)
