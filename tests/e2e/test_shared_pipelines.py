"""Every pipeline of the shared corpus runs through the kfp 1.8.22 client and ends as its expected.json says.

The corpus lives beside the project (`../shared/pipelines`); these tests skip without it and fail
under CI=true if it is missing. Half the pipelines run from the package (workflow manifest), half
from an uploaded pipeline (pipeline id), so both creation paths execute.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED_DIR
from tests.e2e.run_checks import (
    check_run,
    corpus_names,
    expected_result,
    run_corpus_pipeline,
    terminate_long_running,
)

NAMES = corpus_names(SHARED_DIR / "pipelines")


@pytest.mark.parametrize("name", [n for n in NAMES if n != "long_running"] or ["corpus-missing"])
def test_pipeline_runs_as_expected(kfp_client, corpus: Path, unique: str, name: str) -> None:
    detail = run_corpus_pipeline(kfp_client, corpus, name, unique, upload=NAMES.index(name) % 2 == 1)
    check_run(detail, expected_result(corpus, name))


def test_long_running_is_terminated(kfp_client, corpus: Path, unique: str) -> None:
    detail = terminate_long_running(kfp_client, corpus, unique)
    check_run(detail, expected_result(corpus, "long_running"))
