"""Relational schema. Alembic migrations (alembic/versions) own the real schema; a test keeps them in step.

Times are whole Unix seconds (as upstream stores them), which keeps keyset pagination exact.
`description_key` columns hold the first 255 characters of a free-text description: they carry the
index used to sort by description (long text cannot be indexed on every database).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DESCRIPTION_KEY_LENGTH = 255
NAME_LENGTH = 255
NAMESPACE_LENGTH = 63

LongText = Text().with_variant(mysql.LONGTEXT(), "mysql")


class Base(DeclarativeBase):
    pass


def description_key(description: str) -> str:
    return description[:DESCRIPTION_KEY_LENGTH]


class ServerSetting(Base):
    """Small key/value facts the server records once (e.g. the default experiment's id)."""

    __tablename__ = "server_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Experiment(Base):
    __tablename__ = "experiments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    description_key: Mapped[str] = mapped_column(String(DESCRIPTION_KEY_LENGTH), nullable=False, default="")
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LENGTH), nullable=False, default="")
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


class Pipeline(Base):
    __tablename__ = "pipelines"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    description_key: Mapped[str] = mapped_column(String(DESCRIPTION_KEY_LENGTH), nullable=False, default="")
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LENGTH), nullable=False, default="")
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
    version_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("pipeline_versions.id", ondelete="CASCADE", name="fk_pipeline_templates_version"),
        primary_key=True,
    )
    template: Mapped[str] = mapped_column(LongText, nullable=False)
