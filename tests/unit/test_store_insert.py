"""store.common.insert tells a taken key from a reference to a row that is gone, on every database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kfp_backend.store.common import insert
from kfp_backend.store.db import Database
from kfp_backend.store.errors import DuplicateKeyError, MissingReferenceError
from kfp_backend.store.models import Pipeline, PipelineVersion, RunMetric


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    database = Database(db_url, pool_size=2)
    yield database
    database.dispose()


def _version(pipeline_id: str, name: str = "v1") -> PipelineVersion:
    return PipelineVersion(id=str(uuid.uuid4()), pipeline_id=pipeline_id, name=name, created_at=1)


def test_a_taken_key_and_a_missing_parent_are_told_apart(database: Database) -> None:
    pipeline = Pipeline(id=str(uuid.uuid4()), name="p", created_at=1)
    with database.transaction() as session:
        insert(session, pipeline)
        insert(session, _version(pipeline.id))
    with database.transaction() as session:
        with pytest.raises(DuplicateKeyError):
            insert(session, _version(pipeline.id))  # (pipeline, name) is taken
        with pytest.raises(MissingReferenceError):
            insert(session, _version(str(uuid.uuid4())))  # no such pipeline
        with pytest.raises(MissingReferenceError):
            insert(session, RunMetric(run_id=str(uuid.uuid4()), node_id="n", name="m", number_value=1.0))
        # The transaction stays usable after both refusals (savepoints).
        insert(session, _version(pipeline.id, name="v2"))
    with database.transaction(write=False) as session:
        names = {v.name for v in session.query(PipelineVersion).filter_by(pipeline_id=pipeline.id)}
    assert names == {"v1", "v2"}
