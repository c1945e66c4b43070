from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kfp_backend.store.db import Database
from tests.scheduler.helpers import compile_pipeline


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_pipeline(tmp_path_factory.mktemp("scheduled") / "scheduled.yaml")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url, pool_size=4)
    yield database
    database.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
