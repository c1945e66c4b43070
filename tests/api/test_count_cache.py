"""total_size comes from the exact COUNT cache while nothing it counts was written, and stays exact after
every kind of write: through the API of either of two apps over one database ("replicas", each with its own
cache), and by a raw Core statement that no code of ours sees (the database triggers bump the generation)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, insert, pool, select, update

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.store.db import Database
from kfp_backend.store.listing import count_cache_of
from kfp_backend.store.models import Experiment, ListGeneration, Pipeline, PipelineVersion
from tests.api.count_statements import CountThreads

EXPERIMENTS = "/apis/v1beta1/experiments"
VERSIONS = "/apis/v1beta1/pipeline_versions"
AVAILABLE = "STORAGESTATE_AVAILABLE"
ARCHIVED = "STORAGESTATE_ARCHIVED"
PIPELINE_ID = "00000000-0000-4000-9000-000000000001"


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _db(app: Flask) -> Database:
    return app.extensions["kfp_backend.services"].db


@pytest.fixture
def replica(settings: Settings, app: Flask) -> Iterator[Flask]:
    """A second app over the same database, as another server replica would be."""
    second = create_app(settings)
    yield second
    shutdown(second)


@pytest.fixture
def raw(db_url: str) -> Iterator[Any]:
    """A plain engine on the same database, for writes no code of ours sees."""
    engine = create_engine(db_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def _experiments(client: FlaskClient, predicates: list[dict] | None = None) -> dict:
    params = {"page_size": "5", "sort_by": "created_at desc"}
    if predicates:
        params["filter"] = json.dumps({"predicates": predicates})
    response = client.get(EXPERIMENTS, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _total(client: FlaskClient, predicates: list[dict] | None = None) -> int:
    return _experiments(client, predicates).get("total_size", 0)


def _all_experiments(raw: Any) -> list[Any]:
    with raw.connect() as connection:
        return list(connection.execute(select(Experiment.name, Experiment.storage_state)))


ARCHIVED_ONLY = [{"key": "storage_state", "op": "EQUALS", "string_value": ARCHIVED}]
NAMED_ALPHA = [{"key": "name", "op": "IS_SUBSTRING", "string_value": "alpha"}]


def _expected(raw: Any) -> dict[str, int]:
    rows = _all_experiments(raw)
    return {"all": len(rows), "archived": sum(1 for r in rows if r.storage_state == ARCHIVED),
            "alpha": sum(1 for r in rows if "alpha" in r.name.lower())}


def _totals(client: FlaskClient) -> dict[str, int]:
    return {"all": _total(client), "archived": _total(client, ARCHIVED_ONLY), "alpha": _total(client, NAMED_ALPHA)}


def test_totals_stay_exact_across_replicas_and_every_kind_of_write(
    app: Flask, replica: Flask, raw: Any
) -> None:
    a, b = app.test_client(), replica.test_client()
    counts_a, counts_b = CountThreads(_db(app)), CountThreads(_db(replica))
    with counts_a.watching(), counts_b.watching():
        ids = []
        for n in range(6):
            response = a.post(EXPERIMENTS, json={"name": f"{'alpha' if n % 2 else 'beta'}-{n}"})
            assert response.status_code == 200, response.get_json()
            ids.append(response.get_json()["id"])

        def check() -> None:
            expected = _expected(raw)
            assert _totals(a) == expected
            assert _totals(b) == expected

        check()
        # Nothing written since: both replicas answer from their caches, without a COUNT.
        len(counts_a.take()), len(counts_b.take())
        check()
        assert (len(counts_a.take()), len(counts_b.take())) == (0, 0)

        # Written through replica B's API: replica A's cached totals are not used any more.
        response = b.post(f"{EXPERIMENTS}/{ids[1]}:archive")
        assert response.status_code == 200, response.get_json()
        check()
        response = b.post(EXPERIMENTS, json={"name": "alpha-new"})
        assert response.status_code == 200, response.get_json()
        check()
        assert b.delete(f"{EXPERIMENTS}/{ids[3]}").status_code == 200
        check()
        assert a.post(f"{EXPERIMENTS}/{ids[1]}:unarchive").status_code == 200
        check()

        # Raw Core writes, past the ORM and our sessions: an insert, a rename, an archive.
        with raw.begin() as connection:
            connection.execute(insert(Experiment.__table__), [
                {"id": _id(900 + n), "name": f"ALPHA-raw-{n}", "description": "", "description_key": "",
                 "namespace": "", "created_at": 5, "storage_state": ARCHIVED} for n in range(3)])
        check()
        with raw.begin() as connection:
            connection.execute(update(Experiment.__table__).where(Experiment.id == ids[0]).values(name="alphabet"))
        check()
        with raw.begin() as connection:
            connection.execute(update(Experiment.__table__).where(Experiment.id == ids[2])
                               .values(storage_state=ARCHIVED))
        check()
        len(counts_a.take()), len(counts_b.take())
        check()
        assert (len(counts_a.take()), len(counts_b.take())) == (0, 0)


def test_versions_of_a_pipeline_counted_once_until_written(app: Flask, client: FlaskClient, raw: Any) -> None:
    with raw.begin() as connection:
        connection.execute(insert(Pipeline.__table__), [{
            "id": PIPELINE_ID, "name": "p", "description": "", "description_key": "", "namespace": "",
            "created_at": 1, "status": "READY", "parameters": "[]", "default_version_id": None}])
        connection.execute(insert(PipelineVersion.__table__), [{
            "id": _id(n), "pipeline_id": PIPELINE_ID, "name": f"v{n}-{'nightly' if n % 3 else 'release'}",
            "description": "", "created_at": 100 + n, "status": "READY", "parameters": "[]",
            "code_source_url": "", "package_url": ""} for n in range(40)])
    params = {"resource_key.type": "PIPELINE", "resource_key.id": PIPELINE_ID, "page_size": "7",
              "sort_by": "created_at desc",
              "filter": json.dumps({"predicates": [{"key": "name", "op": "IS_SUBSTRING", "string_value": "nightly"}]})}

    def total() -> int:
        response = client.get(VERSIONS, query_string=params)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["total_size"]

    counts = CountThreads(_db(app))
    with counts.watching():
        expected = sum(1 for n in range(40) if n % 3)
        assert total() == expected
        assert len(counts.take()) == 1
        # Every later page of the same query is the same COUNT: counted once.
        response = client.get(VERSIONS, query_string=params)
        token = response.get_json()["next_page_token"]
        assert client.get(VERSIONS, query_string={**params, "page_token": token}).get_json()["total_size"] == expected
        assert total() == expected
        assert len(counts.take()) == 0
        # A raw rename out of the filter, then a raw delete.
        with raw.begin() as connection:
            connection.execute(update(PipelineVersion.__table__).where(PipelineVersion.id == _id(1))
                               .values(name="v1-release"))
        assert total() == expected - 1
        assert len(counts.take()) == 1
        with raw.begin() as connection:
            connection.execute(PipelineVersion.__table__.delete().where(PipelineVersion.id == _id(2)))
        assert total() == expected - 2
        assert len(counts.take()) == 1
        assert total() == expected - 2
        assert len(counts.take()) == 0


def test_a_write_landing_right_after_the_count_is_not_cached_as_current(
    app: Flask, client: FlaskClient, raw: Any
) -> None:
    """The generation is read before the COUNT: a row committed just after the COUNT ran (but before the
    request ended) leaves the stored total under the older generation, so the next request counts again.
    Were the generation read after the COUNT, the stale total would be stored as current."""
    with raw.begin() as connection:
        connection.execute(insert(Experiment.__table__), [
            {"id": _id(n), "name": f"e{n}", "description": "", "description_key": "", "namespace": "",
             "created_at": n, "storage_state": AVAILABLE} for n in range(10)])
    db = _db(app)
    fired = threading.Event()

    def write_after_count(_conn, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if "count(" in statement.lower() and not fired.is_set():
            fired.set()
            with raw.begin() as connection:
                connection.execute(insert(Experiment.__table__), [{
                    "id": _id(99), "name": "late", "description": "", "description_key": "", "namespace": "",
                    "created_at": 99, "storage_state": AVAILABLE}])

    event.listen(db.engine, "after_cursor_execute", write_after_count)
    try:
        first = _total(client)
    finally:
        event.remove(db.engine, "after_cursor_execute", write_after_count)
    assert fired.is_set()
    expected = len(_all_experiments(raw))  # with the default experiment the app made
    assert first in (expected - 1, expected)  # a count and a page of separate snapshots, as upstream's
    assert _total(client) == expected
    assert _total(client) == expected


def test_generations_move_on_every_write_and_the_cache_is_bounded(app: Flask, raw: Any) -> None:
    def generation(table: str) -> int:
        with raw.connect() as connection:
            return connection.scalar(select(ListGeneration.generation).where(ListGeneration.resource == table))

    before = generation("experiments")
    with raw.begin() as connection:
        connection.execute(insert(Experiment.__table__), [{
            "id": _id(1), "name": "x", "description": "", "description_key": "", "namespace": "",
            "created_at": 1, "storage_state": AVAILABLE}])
    after_insert = generation("experiments")
    assert after_insert > before
    with raw.begin() as connection:
        connection.execute(update(Experiment.__table__).where(Experiment.id == _id(1)).values(name="y"))
    after_update = generation("experiments")
    assert after_update > after_insert
    with raw.begin() as connection:
        connection.execute(Experiment.__table__.delete().where(Experiment.id == _id(1)))
    assert generation("experiments") > after_update
    assert generation("pipelines") == generation("pipeline_versions") == 0

    client = app.test_client()
    cache = count_cache_of(_db(app).engine)
    for n in range(300):
        _total(client, [{"key": "name", "op": "IS_SUBSTRING", "string_value": f"n{n}"}])
    assert len(cache) == 256
