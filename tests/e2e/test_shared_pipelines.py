"""Every pipeline of the shared corpus runs through the kfp 1.8.22 client and ends as its expected.json says.

The corpus lives beside the project (`../shared/pipelines`); these tests skip without it and fail
under CI=true if it is missing. Half the pipelines run from the package (workflow manifest), half
from an uploaded pipeline (pipeline id), so both creation paths execute.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED_DIR
from tests.e2e.run_checks import check_run, wait_for_run, workflow_nodes

CORPUS = SHARED_DIR / "pipelines"
NAMES = sorted(p.name[: -len(".expected.json")] for p in CORPUS.glob("*.expected.json")) if CORPUS.is_dir() else []


@pytest.fixture
def corpus(shared_dir: Path) -> Path:
    return shared_dir / "pipelines"


def _expected(corpus: Path, name: str) -> dict:
    return json.loads((corpus / f"{name}.expected.json").read_text())


@pytest.mark.parametrize("name", [n for n in NAMES if n != "long_running"] or ["corpus-missing"])
def test_pipeline_runs_as_expected(kfp_client, corpus: Path, unique: str, name: str) -> None:
    expected = _expected(corpus, name)
    package = str(corpus / f"{name}.yaml")
    arguments = expected.get("arguments", {})
    if NAMES.index(name) % 2 == 0:
        result = kfp_client.create_run_from_pipeline_package(package, arguments=arguments, run_name=f"{unique}-{name}")
        run_id = result.run_id
    else:
        pipeline = kfp_client.upload_pipeline(package, pipeline_name=f"{unique}-{name}")
        experiment = kfp_client.create_experiment(f"{unique}-exp")
        run_id = kfp_client.run_pipeline(
            experiment.id, f"{unique}-{name}", pipeline_id=pipeline.id, params=arguments
        ).id
    detail = wait_for_run(kfp_client, run_id, timeout=180)
    check_run(detail, expected)


def test_long_running_is_terminated(kfp_client, corpus: Path, unique: str) -> None:
    expected = _expected(corpus, "long_running")
    result = kfp_client.create_run_from_pipeline_package(
        str(corpus / "long_running.yaml"), arguments=expected.get("arguments", {}), run_name=f"{unique}-long"
    )
    deadline = time.monotonic() + 60
    while not any(
        n.get("displayName") == "sleep-long" and n.get("phase") == "Running"
        for n in workflow_nodes(kfp_client.get_run(result.run_id))
    ):
        assert time.monotonic() < deadline, "sleep-long never started"
        time.sleep(0.2)
    kfp_client.runs.terminate_run(result.run_id)
    status = kfp_client.get_run(result.run_id).run.status
    assert status in ("Terminating", "Failed")
    # The step sleeps 300 s: finishing within the wait means it was killed.
    detail = wait_for_run(kfp_client, result.run_id, timeout=60)
    check_run(detail, expected)
