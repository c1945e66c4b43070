"""The runs list sorted by Duration and by Pipeline (all runs, and an experiment's), paged by its page tokens
to the end with no run missing or seen twice, on SQLite, PostgreSQL and MariaDB, over the Flask test client.

Runs are made over the API (from uploaded pipelines, and from a bare manifest: no pipeline); their times are
then set as an executor leaves them (created, finished or still active), by UPDATEs of the run rows, so the
database's generated sort key is seen to follow every write."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.all_services import Services
from kfp_backend.store.models import ACTIVE_DURATION_BASE, Run
from tests.api.run_references import API, experiment, experiment_ref, upload
from tests.ui.pipelines import compile_to, train_pipeline

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
NOW = 1_800_000_000
ROW = re.compile(r'<td><a href="/runs/([^"/]+)">')
NEXT = re.compile(r'<a href="([^"]+)" rel="next">')


@dataclass(frozen=True)
class Seeded:
    id: str
    experiment_id: str
    pipeline: str
    created_at: int
    finished_at: int  # 0: still active


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_to(train_pipeline, tmp_path_factory.mktemp("sorts") / "train.yaml").read_text()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    shutdown(application)


def _create(client: FlaskClient, name: str, experiment_id: str, spec: dict) -> str:
    response = client.post(f"{API}/runs", json={
        "name": name, "pipeline_spec": spec, "resource_references": [experiment_ref(experiment_id)]})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["run"]["id"]


@pytest.fixture
def seeded(client: FlaskClient, services: Services, template: str) -> list[Seeded]:
    """31 runs: 28 in one experiment, 3 in another; three pipelines and runs of a bare manifest (no pipeline
    name); finished runs with tied durations, active runs (two created in the same second)."""
    main, other = experiment(client, "sorts-main")["id"], experiment(client, "sorts-other")["id"]
    pipelines = {name: upload(client, template, name)["id"] for name in ("charlie", "alpha", "bravo")}
    runs = []
    for index in range(31):
        experiment_id = main if index < 28 else other
        choice = ("alpha", "bravo", "charlie", "")[index % 4]
        spec = {"pipeline_id": pipelines[choice]} if choice else {"workflow_manifest": template}
        run_id = _create(client, f"run-{index:02d}", experiment_id, spec)
        created_at = NOW - 1000 + (index % 9) * 10  # ties on creation too
        # Every fifth run is still active; the others took 0-60 s, many of them as long as another.
        finished_at = 0 if index % 5 == 0 else created_at + (index % 7) * 10
        runs.append(Seeded(run_id, experiment_id, choice, created_at, finished_at))
    with services.db.engine.begin() as connection:
        for run in runs:
            connection.execute(update(Run).where(Run.id == run.id).values(
                created_at=run.created_at, finished_at=run.finished_at, status="Succeeded" if run.finished_at
                else "Running"))
    return runs


def _duration(run: Seeded) -> int:
    # Active runs after every finished one, the oldest (longest running) last.
    return ACTIVE_DURATION_BASE - run.created_at if run.finished_at == 0 else run.finished_at - run.created_at


def _expected(runs: list[Seeded], column: str, descending: bool) -> list[str]:
    def key(run: Seeded) -> tuple[object, str]:
        return (_duration(run) if column == "duration" else run.pipeline, run.id)
    return [run.id for run in sorted(runs, key=key, reverse=descending)]


def _page_through(client: FlaskClient, path: str) -> tuple[list[str], int]:
    """Every run id the list shows from `path` on, following "Next page" links; and the number of pages."""
    seen: list[str] = []
    pages = 0
    next_path: str | None = path
    while next_path is not None:
        response = client.get(next_path)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        page = response.get_data(as_text=True)
        seen += ROW.findall(page)
        pages += 1
        found = NEXT.search(page)
        next_path = found.group(1).replace("&amp;", "&") if found else None
    return seen, pages


@pytest.mark.parametrize("column", ["duration", "pipeline_name"])
def test_the_runs_list_sorts_and_pages_by_duration_and_pipeline(
    client: FlaskClient, seeded: list[Seeded], column: str
) -> None:
    for descending in (False, True):
        seen, pages = _page_through(client, f"/runs?sort={column}&desc={int(descending)}")
        assert pages == 2  # 25 a page
        assert seen == _expected(seeded, column, descending)
        assert len(set(seen)) == len(seeded)

    experiment_id = seeded[0].experiment_id
    mine = [run for run in seeded if run.experiment_id == experiment_id]
    for descending in (False, True):
        seen, pages = _page_through(client, f"/experiments/{experiment_id}?sort={column}&desc={int(descending)}")
        assert pages == 2 and seen == _expected(mine, column, descending)


def test_a_run_that_finishes_moves_among_the_finished_ones(
    client: FlaskClient, services: Services, seeded: list[Seeded]
) -> None:
    """The sort key follows the run's row: finished now, a run sorts by its real duration."""
    active = next(run for run in seeded if run.finished_at == 0)
    with services.db.engine.begin() as connection:
        connection.execute(update(Run).where(Run.id == active.id).values(finished_at=active.created_at + 5))
    finished = [Seeded(r.id, r.experiment_id, r.pipeline, r.created_at, r.created_at + 5) if r.id == active.id else r
                for r in seeded]
    seen, _ = _page_through(client, "/runs?sort=duration&desc=0")
    assert seen == _expected(finished, "duration", False)
    assert seen.index(active.id) < len([r for r in finished if r.finished_at])  # among the finished


def test_the_headers_sort_and_the_api_keeps_its_own_sort_fields(client: FlaskClient, seeded: list[Seeded]) -> None:
    page = client.get("/runs").get_data(as_text=True)
    assert 'href="/runs?sort=duration&amp;desc=1" title="Sort by Duration (runs still active count as' in page
    assert 'href="/runs?sort=pipeline_name&amp;desc=1" title="Sort by Pipeline"' in page
    sorted_page = client.get("/runs?sort=pipeline_name&desc=0").get_data(as_text=True)
    assert re.search(r'aria-sort="ascending">\s*<a href="[^"]*" title="Sort by Pipeline"', sorted_page)
    # ListRuns keeps upstream's sort fields, and refuses the UI's page tokens.
    refused = client.get(f"{API}/runs", query_string={"sort_by": "duration"})
    assert refused.status_code == 400 and 'Invalid sorting field: "duration"' in refused.get_json()["error"]
    token = NEXT.search(sorted_page)
    assert token is not None
    ui_token = re.search(r"page_token=([^&\"]+)", token.group(1))
    assert ui_token is not None
    assert client.get(f"{API}/runs", query_string={"page_token": ui_token.group(1)}).status_code == 400


def test_a_token_stays_right_when_a_run_ends_between_pages(
    client: FlaskClient, services: Services, seeded: list[Seeded]
) -> None:
    """Active runs' keys do not change while they run, so a page token stays right: when an active run of a
    later page finishes (moving to an earlier page), the next pages still hold every other run once."""
    first = client.get("/runs?sort=duration&desc=0").get_data(as_text=True)
    link = NEXT.search(first)
    assert link is not None
    expected = _expected(seeded, "duration", False)
    assert ROW.findall(first) == expected[:25]
    ended = expected[-1]  # the oldest active run, on the second page
    with services.db.engine.begin() as connection:
        connection.execute(update(Run).where(Run.id == ended).values(finished_at=NOW - 1000 + 5))
    rest, _ = _page_through(client, link.group(1).replace("&amp;", "&"))
    assert rest == expected[25:-1]
