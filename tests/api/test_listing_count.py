"""total_size stays an exact COUNT of the matching rows while the list engine counts beside the page.

On a file or server database a read-only list request runs its COUNT on a second pooled connection (a
"side read") while its own session fetches the page. These tests watch which thread sends each COUNT,
so they fail if the side path silently stops being used, and check every total_size against a Python
oracle: across pages, after rows are added and removed between pages, from many threads at once, and in
the cases that must count on the session's own connection (a session that wrote, every side slot busy).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from kfp_backend.services.authorization import SYSTEM
from kfp_backend.store import experiments_repo
from kfp_backend.store.db import Database, side_reads_of
from kfp_backend.store.listing import ListQuery
from kfp_backend.store.models import Experiment, Pipeline, PipelineVersion, description_key
from tests.api.count_statements import CountThreads

EXPERIMENTS = "/apis/v1beta1/experiments"
AVAILABLE = "STORAGESTATE_AVAILABLE"
ARCHIVED = "STORAGESTATE_ARCHIVED"
WORDS = ["apple", "banana", "cherry", "grape", "lemon"]


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def make_rows(start: int, count: int) -> list[dict]:
    return [
        {"id": _id(n), "name": f"{WORDS[n % len(WORDS)]}-{n:05d}", "created_at": 1000 + n // 2,
         "storage_state": ARCHIVED if n % 7 == 0 else AVAILABLE}
        for n in range(start, start + count)
    ]


def insert(db: Database, rows: list[dict]) -> None:
    with db.transaction() as session:
        for row in rows:
            experiments_repo.add_experiment(
                session,
                Experiment(id=row["id"], name=row["name"], description="", description_key=description_key(""),
                           namespace="", created_at=row["created_at"], storage_state=row["storage_state"]),
            )


def delete(db: Database, ids: list[str]) -> None:
    with db.transaction() as session:
        for experiment_id in ids:
            assert experiments_repo.delete_experiment(session, experiment_id)


# (filter predicates, oracle)
FILTERS: list[tuple[list[dict], Any]] = [
    ([], lambda r: True),
    ([{"key": "name", "op": "IS_SUBSTRING", "string_value": "an"}], lambda r: "an" in r["name"]),
    ([{"key": "storage_state", "op": "EQUALS", "string_value": ARCHIVED}], lambda r: r["storage_state"] == ARCHIVED),
    (
        [{"key": "name", "op": "IS_SUBSTRING", "string_value": "e"},
         {"key": "storage_state", "op": "NOT_EQUALS", "string_value": ARCHIVED}],
        lambda r: "e" in r["name"] and r["storage_state"] != ARCHIVED,
    ),
]


@pytest.fixture
def db(app: Flask) -> Database:
    database: Database = app.extensions["kfp_backend.services"].db
    services = app.extensions["kfp_backend.services"]
    services.experiments.delete(services.experiments.ensure_default().id, caller=SYSTEM)
    return database


def get_page(client: FlaskClient, predicates: list[dict], token: str | None, page_size: int = 25) -> dict:
    params = {"page_size": str(page_size), "sort_by": "created_at desc"}
    if predicates:
        params["filter"] = json.dumps({"predicates": predicates})
    if token:
        params["page_token"] = token
    response = client.get(EXPERIMENTS, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("predicates,oracle", FILTERS, ids=["none", "substring", "equals", "substring+not"])
def test_total_size_is_exact_on_every_page_while_rows_change(
    client: FlaskClient, db: Database, predicates: list[dict], oracle: Any
) -> None:
    assert db.side_reads is not None, "file and server databases count beside the page"
    rows = make_rows(1, 140)
    insert(db, rows)
    counts = CountThreads(db)
    token: str | None = None
    seen: list[str] = []
    next_id = 1000
    with counts.watching():
        for page in range(40):
            body = get_page(client, predicates, token)
            expected = [r for r in rows if oracle(r)]
            assert body.get("total_size", 0) == len(expected), f"page {page}"
            seen += [item["id"] for item in body.get("experiments", [])]
            token = body.get("next_page_token")
            if token is None:
                break
            # Between pages: rows that sort before and after the cursor come, and some go.
            added = make_rows(next_id, 9)
            for k, row in enumerate(added):
                row["created_at"] = 1 if k % 2 else 5000
            next_id += len(added)
            insert(db, added)
            gone = [r["id"] for r in rows[page * 3: page * 3 + 4]]
            delete(db, gone)
            rows = [r for r in rows if r["id"] not in gone] + added
        assert token is None
        threads = counts.take()
    assert len(seen) == len(set(seen))
    assert threads, "no COUNT was sent"
    assert threading.get_ident() not in threads, "the COUNT ran on the request thread, not beside the page"


def test_pipeline_versions_total_size_beside_the_page(client: FlaskClient, db: Database) -> None:
    """Another resource and scope (the versions of one pipeline) through the same engine."""
    with db.transaction() as session:
        pipelines = [Pipeline(id=_id(90_000 + p), name=f"p{p}", description="", description_key="", namespace="",
                              created_at=1, status="READY", parameters="[]", default_version_id=None)
                     for p in range(2)]
        session.add_all(pipelines)
        session.flush()
        for n in range(120):
            session.add(PipelineVersion(id=_id(n), pipeline_id=pipelines[n % 2].id,
                                        name=f"v{n:04d}-{'nightly' if n % 3 else 'release'}", description="",
                                        created_at=1000 + n, status="READY", parameters="[]",
                                        code_source_url="", package_url=""))
    expected = sum(1 for n in range(120) if n % 2 == 0 and n % 3)
    counts = CountThreads(db)
    with counts.watching():
        response = client.get("/apis/v1beta1/pipeline_versions", query_string={
            "resource_key.type": "PIPELINE", "resource_key.id": _id(90_000), "page_size": "10",
            "filter": json.dumps({"predicates": [{"key": "name", "op": "IS_SUBSTRING", "string_value": "nightly"}]}),
        })
        threads = counts.take()
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["total_size"] == expected
    assert threads and threading.get_ident() not in threads


def test_a_session_that_wrote_counts_its_own_uncommitted_rows(db: Database) -> None:
    """A second connection cannot see the session's uncommitted rows: such a session counts itself."""
    insert(db, make_rows(1, 30))
    counts = CountThreads(db)
    query = ListQuery(page_size=10, sort_field="created_at", descending=True)
    with counts.watching(), db.transaction(write=False) as session:
        assert side_reads_of(session) is db.side_reads
        assert experiments_repo.list_experiments(session, query).total_size == 30
        beside = counts.take()
        assert beside and threading.get_ident() not in beside
        experiments_repo.add_experiment(session, Experiment(
            id=_id(500), name="mine", description="", description_key="", namespace="", created_at=1,
            storage_state=AVAILABLE))
        page = experiments_repo.list_experiments(session, query)
        assert page.total_size == 31
        assert counts.take() == [threading.get_ident()]
        assert side_reads_of(session) is None
        session.rollback()
    with db.transaction() as session:  # a write transaction never counts beside
        assert side_reads_of(session) is None


def test_busy_side_slots_count_on_the_request_thread(client: FlaskClient, db: Database) -> None:
    insert(db, make_rows(1, 60))
    side_reads = db.side_reads
    assert side_reads is not None
    held = 0
    while side_reads._slots.acquire(blocking=False):  # every slot taken, as by other requests' counts
        held += 1
    assert held > 0
    counts = CountThreads(db)
    try:
        with counts.watching():
            body = get_page(client, [], None)
            threads = counts.take()
    finally:
        for _ in range(held):
            side_reads._slots.release()
    assert body["total_size"] == 60
    assert threads == [threading.get_ident()]


def test_many_threads_listing_at_once_get_exact_totals(app: Flask, db: Database) -> None:
    """More concurrent lists than sessions and side slots (threads=4): none waits forever, all exact."""
    rows = make_rows(1, 200)
    insert(db, rows)
    cases = [(predicates, sum(1 for r in rows if oracle(r))) for predicates, oracle in FILTERS]

    def worker(n: int) -> list[tuple[int, int]]:
        client = app.test_client()
        results = []
        for k in range(12):
            predicates, expected = cases[(n + k) % len(cases)]
            results.append((get_page(client, predicates, None, page_size=10)["total_size"], expected))
        return results

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(worker, n) for n in range(12)]
        results = [pair for future in futures for pair in future.result(timeout=300)]
    assert len(results) == 144
    assert all(got == expected for got, expected in results)


@pytest.mark.parametrize(
    "url,side",
    [
        ("sqlite://", False),
        ("sqlite:///:memory:", False),
        ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", False),
        ("sqlite:///{tmp}/kfp.db", True),
    ],
)
def test_side_reads_only_where_a_second_connection_sees_the_same_database(tmp_path, url: str, side: bool) -> None:  # type: ignore[no-untyped-def]
    database = Database(url.format(tmp=tmp_path), pool_size=2)
    try:
        assert (database.side_reads is not None) is side
        with database.transaction(write=False) as session:
            assert (side_reads_of(session) is not None) is side
    finally:
        database.dispose()


TRICKY_NAMES = [
    "NIGHTLY-build", "nightly-1", "Nightly café", "\u212aelvin-1", "kelvin-2", "\u0130stanbul-nightly", "istanbul-3",
    "straße-a", "STRASSE-b", "naïve-Nightly", "CAFÉ-crème", "under_score", "fifty%off", "plain",
]


@pytest.mark.parametrize(
    "value", ["nightly", "NIGHTLY", "kelvin", "K", "istanbul", "i", "é", "CAFÉ", "straße", "ss", "_", "%", "f%o"]
)
def test_substring_filter_matches_the_databases_own_case_insensitive_match(
    client: FlaskClient, db: Database, value: str
) -> None:
    """Whatever form the engine uses (on PostgreSQL, ASCII rows under the "C" collation), IS_SUBSTRING
    selects exactly the rows the database's plain case-insensitive match does (ILIKE on PostgreSQL, the
    collation's LIKE elsewhere), with non-ASCII rows that fold to ASCII letters (KELVIN SIGN, dotted I)."""
    insert(db, [{"id": _id(n), "name": name, "created_at": 1000 + n, "storage_state": AVAILABLE}
                for n, name in enumerate(TRICKY_NAMES)])
    escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
    with db.transaction(write=False) as session:
        match = (Experiment.name.ilike if db.dialect == "postgresql" else Experiment.name.like)(
            f"%{escaped}%", escape="/")
        expected = sorted(session.scalars(select(Experiment.name).where(match)))
    statements: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        body = get_page(client, [{"key": "name", "op": "IS_SUBSTRING", "string_value": value}], None, page_size=100)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert sorted(item["name"] for item in body.get("experiments", [])) == expected
    assert body.get("total_size", 0) == len(expected)
    if db.dialect == "postgresql":
        ascii_form = any('COLLATE "C"' in s for s in statements)
        assert ascii_form is value.isascii()


def test_connections_used_for_side_reads_still_roll_back_sessions(db_url: str) -> None:
    """Side reads run their single statement without a transaction (autocommit on PostgreSQL, no BEGIN on
    SQLite); the pooled connection they used must come back transactional: a failed write leaves nothing."""
    database = Database(db_url, pool_size=1)  # two pooled connections: sessions reuse side-read ones
    counts = CountThreads(database)
    query = ListQuery(page_size=5, sort_field="created_at")
    try:
        with counts.watching():
            for attempt in range(6):
                with database.transaction(write=False) as session:
                    experiments_repo.list_experiments(session, query).total_size  # noqa: B018
                with pytest.raises(RuntimeError), database.transaction() as session:
                    experiments_repo.add_experiment(session, Experiment(
                        id=_id(700 + attempt), name=f"rolled-back-{attempt}", description="", description_key="",
                        namespace="", created_at=1, storage_state=AVAILABLE))
                    raise RuntimeError("fail after the insert")
            threads = counts.take()
        assert threads and threading.get_ident() not in threads
        with database.transaction(write=False) as session:
            names = [e.name for e in experiments_repo.list_experiments(
                session, ListQuery(page_size=100, sort_field="created_at")).items]
        assert not [n for n in names if n.startswith("rolled-back-")]
    finally:
        database.dispose()
