"""The shared corpus on PostgreSQL: a second live server on a fresh, empty PostgreSQL database runs every
pipeline of `shared/pipelines` through the kfp 1.8.22 client, as test_shared_pipelines does on SQLite.

The server creates its schema itself (migrations at start). Skips when KFP_BACKEND_TEST_POSTGRES_URL is
not set, fails instead under CI=true (tests/databases.py decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SHARED_DIR
from tests.databases import DatabaseFactory
from tests.e2e.helpers import kfp_client_for
from tests.e2e.run_checks import check_run, corpus_names, expected_result, run_corpus_pipeline, terminate_long_running
from tests.e2e.servers import live_server

NAMES = corpus_names(SHARED_DIR / "pipelines")


@pytest.fixture(scope="module")
def postgres_server(
    shared_dir: Path, database_factories: dict[str, DatabaseFactory], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Needs the corpus (skips before touching PostgreSQL without it)."""
    with database_factories["postgres"].empty() as database_url, live_server(
        tmp_path_factory.mktemp("kfp-backend-postgres"), database_url=database_url
    ) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def postgres_client(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with kfp_client_for(postgres_server, tmp_path_factory.mktemp("kfp-context-postgres")) as client:
        yield client


@pytest.mark.parametrize("name", [n for n in NAMES if n != "long_running"] or ["corpus-missing"])
def test_pipeline_runs_as_expected_on_postgres(postgres_client, corpus: Path, unique: str, name: str) -> None:
    # The other creation path than test_shared_pipelines uses for the same pipeline.
    detail = run_corpus_pipeline(postgres_client, corpus, name, unique, upload=NAMES.index(name) % 2 == 0)
    check_run(detail, expected_result(corpus, name))


def test_long_running_is_terminated_on_postgres(postgres_client, corpus: Path, unique: str) -> None:
    detail = terminate_long_running(postgres_client, corpus, unique)
    check_run(detail, expected_result(corpus, "long_running"))
