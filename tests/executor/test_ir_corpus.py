"""Every pipeline of the shared KFP v2 corpus (`../shared/pipelines-v2`, compiled by kfp 2.17.3) runs through
the executor to the final state and task states its `.expected.json` gives (see the corpus README).

The runs are created over v1beta1 from the compiled YAML; their Python steps run in the step environment the
server prepares. Skipped without the corpus (failed under CI=true).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests.v2_corpus import CORPUS, NAMES, expected_of, task_problems

RUNS = "/apis/v1beta1/runs"
# Node phases as KFP v2 task states.
STATES = {"Succeeded": "SUCCEEDED", "Failed": "FAILED", "Error": "FAILED", "Skipped": "SKIPPED",
          "Omitted": "SKIPPED", "Running": "RUNNING", "Pending": "PENDING"}


@pytest.fixture
def app(settings: Settings, shared_dir: Path) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _tasks(nodes: dict) -> dict[str, list[str]]:
    """Task states by display name: each Pod (a Retry counts once, as its last attempt's state), each
    Skipped task, and each DAG below the root (sub-pipelines, conditions, loops)."""
    attempts = {child for node in nodes.values() if node["type"] == "Retry" for child in node.get("children", [])}
    tasks: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        if node_id in attempts or (not node.get("boundaryID") and node["type"] == "DAG"):
            continue
        tasks.setdefault(node["displayName"], []).append(STATES.get(node["phase"], node["phase"]))
    return tasks


@pytest.mark.parametrize("name", NAMES or ["corpus-missing"])
def test_corpus_pipeline_runs_as_expected(client: FlaskClient, name: str) -> None:
    expected = expected_of(name)
    parameters = [{"name": key, "value": _text(value)} for key, value in expected.get("arguments", {}).items()]
    response = client.post(RUNS, json={"name": name, "pipeline_spec": {
        "workflow_manifest": (CORPUS / f"{name}.yaml").read_text(), "parameters": parameters}})
    assert response.status_code == 200, response.get_data(as_text=True)
    run_id = response.get_json()["run"]["id"]
    deadline = time.monotonic() + expected.get("timeout", 300)
    while True:
        detail = client.get(f"{RUNS}/{run_id}").get_json()
        if detail["run"].get("status") in ("Succeeded", "Failed", "Error"):
            break
        assert time.monotonic() < deadline, f"{name}: not finished ({detail['run'].get('status')})"
        time.sleep(0.1)
    nodes = json.loads(detail["pipeline_runtime"]["workflow_manifest"])["status"].get("nodes", {})
    state = "SUCCEEDED" if detail["run"]["status"] == "Succeeded" else "FAILED"
    summary = {n["displayName"]: (n["phase"], n.get("message", "")) for n in nodes.values()}
    assert state == expected["state"], json.dumps(summary, indent=1)
    assert task_problems(expected["tasks"], _tasks(nodes)) == [], json.dumps(summary, indent=1)
