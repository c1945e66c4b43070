"""Every pipeline of the shared KFP v2 corpus (`../shared/pipelines-v2`, compiled by kfp 2.17.3) submitted by the
real kfp 2.x client (`create_run_from_pipeline_package`) to the live server, and checked against its
`NAME.expected.json` (see the corpus README): the run's final state, and each listed task's state by display
name among `run_details.task_details`.

All runs are submitted at once by a module fixture, so they execute side by side; each test then waits for
its own. Skipped without the corpus (failed under CI=true).
"""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.databases import in_ci
from tests.v2_corpus import CORPUS, NAMES, expected_of, task_problems

pytestmark = pytest.mark.kfp2

# The run states after which nothing changes (the client's wait_for_run_completion misses CANCELED).
FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


@pytest.fixture(scope="module")
def submitted(client: Any) -> dict[str, str]:
    """Run id by corpus pipeline name: every pipeline submitted before any test waits."""
    if not NAMES:
        message = f"{CORPUS} is missing or holds no pipelines"
        if in_ci():
            pytest.fail(f"{message} under CI=true")
        pytest.skip(message)
    unique = f"corpus-{uuid.uuid4().hex[:12]}"
    experiment = unique
    return {
        name: client.create_run_from_pipeline_package(
            str(CORPUS / f"{name}.yaml"), arguments=expected_of(name)["arguments"], run_name=f"{unique}-{name}",
            experiment_name=experiment,
        ).run_id
        for name in NAMES
    }


def wait_until_final(client: Any, run_id: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        run = client.get_run(run_id)
        if run.state in FINAL:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is still {run.state} after {seconds} s"
        time.sleep(0.2)


@pytest.mark.parametrize("name", NAMES or ["corpus-missing"])
def test_corpus_pipeline_runs_as_expected(client: Any, submitted: dict[str, str], name: str) -> None:
    expected = expected_of(name)
    run = wait_until_final(client, submitted[name], expected.get("timeout", 300))
    details = run.run_details.task_details or []
    states: dict[str, list[str]] = {}
    for task in details:
        states.setdefault(task.display_name, []).append(task.state)
    summary = json.dumps(sorted((task.display_name, task.state) for task in details), indent=0)
    assert run.state == expected["state"], f"{run.error}\n{summary}"
    assert task_problems(expected["tasks"], states) == [], summary


def test_the_corpus_is_complete() -> None:
    """Each pipeline has its compiled YAML beside its expectations (a missing one would go untested)."""
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is missing")
    compiled = {path.stem for path in Path(CORPUS).glob("*.yaml")}
    assert compiled == set(NAMES)
