"""Pipeline, pipeline-version and template rows.

Templates live in their own table and are read only by the template lookups: listing never loads them
(v2beta1's version list reads its page's templates with one more query, get_templates).
Writes that touch a pipeline's versions lock the pipeline row first, so that concurrent version
deletes and creates keep the default-version pointer consistent.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert, values_by_key
from kfp_backend.store.listing import Listable, ListField, ListQuery, Page, list_page
from kfp_backend.store.models import Pipeline, PipelineTemplate, PipelineVersion

PIPELINE_LISTABLE = Listable(
    type_name="Pipeline",
    model=Pipeline,
    id_column=Pipeline.id,
    fields={
        "id": ListField(Pipeline.id, str),
        "name": ListField(Pipeline.name, str),
        "created_at": ListField(Pipeline.created_at, int),
        "description": ListField(Pipeline.description, str, sort_column=Pipeline.description_key),
        "namespace": ListField(Pipeline.namespace, str),
    },
)

VERSION_LISTABLE = Listable(
    type_name="PipelineVersion",
    model=PipelineVersion,
    id_column=PipelineVersion.id,
    fields={
        "id": ListField(PipelineVersion.id, str),
        "name": ListField(PipelineVersion.name, str),
        "created_at": ListField(PipelineVersion.created_at, int),
        "status": ListField(PipelineVersion.status, str),
    },
)


def add_pipeline(session: Session, pipeline: Pipeline) -> None:
    """Insert a pipeline row; DuplicateKeyError when its name is taken in its namespace."""
    insert(session, pipeline)


def add_version(session: Session, version: PipelineVersion, template: str) -> None:
    """Insert a version and its template; DuplicateKeyError when the name is taken in its pipeline."""
    insert(session, version)
    insert(session, PipelineTemplate(version_id=version.id, template=template))


def get_pipeline(session: Session, pipeline_id: str, *, lock: bool = False) -> Pipeline | None:
    statement = select(Pipeline).where(Pipeline.id == pipeline_id)
    if lock:
        statement = statement.with_for_update()
    return session.scalar(statement)


def find_pipeline_by_name(session: Session, namespace: str, name: str) -> Pipeline | None:
    return session.scalar(select(Pipeline).where(Pipeline.namespace == namespace, Pipeline.name == name))


def list_pipelines(session: Session, query: ListQuery, namespace: str) -> Page[Pipeline]:
    return list_page(session, PIPELINE_LISTABLE, query, [Pipeline.namespace == namespace])


def delete_pipeline(session: Session, pipeline_id: str) -> bool:
    """Delete a pipeline; its versions and their templates go with it (ON DELETE CASCADE)."""
    return session.execute(delete(Pipeline).where(Pipeline.id == pipeline_id)).rowcount > 0


def set_default_version(session: Session, pipeline_id: str, version_id: str | None) -> None:
    session.execute(update(Pipeline).where(Pipeline.id == pipeline_id).values(default_version_id=version_id))


def get_version(session: Session, version_id: str) -> PipelineVersion | None:
    return session.get(PipelineVersion, version_id)


def get_versions(session: Session, version_ids: Iterable[str]) -> dict[str, PipelineVersion]:
    """Versions by id, in one query."""
    wanted = sorted(set(version_ids))
    if not wanted:
        return {}
    rows = session.scalars(select(PipelineVersion).where(PipelineVersion.id.in_(wanted)))
    return {row.id: row for row in rows}


def list_versions(session: Session, query: ListQuery, pipeline_id: str) -> Page[PipelineVersion]:
    return list_page(session, VERSION_LISTABLE, query, [PipelineVersion.pipeline_id == pipeline_id])


def latest_version(session: Session, pipeline_id: str) -> PipelineVersion | None:
    """The most recently created version of a pipeline (ties: the greatest id)."""
    return session.scalar(
        select(PipelineVersion)
        .where(PipelineVersion.pipeline_id == pipeline_id)
        .order_by(PipelineVersion.created_at.desc(), PipelineVersion.id.desc())
        .limit(1)
    )


def delete_version(session: Session, version_id: str) -> bool:
    return session.execute(delete(PipelineVersion).where(PipelineVersion.id == version_id)).rowcount > 0


def get_template(session: Session, version_id: str) -> str | None:
    return session.scalar(select(PipelineTemplate.template).where(PipelineTemplate.version_id == version_id))


def get_templates(session: Session, version_ids: Iterable[str]) -> dict[str, str]:
    """Templates by version id, in one query."""
    return values_by_key(session, PipelineTemplate.version_id, PipelineTemplate.template, version_ids)
