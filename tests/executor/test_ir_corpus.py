"""Every pipeline of the shared KFP v2 corpus (`../shared/pipelines-v2`, compiled by kfp 2.17.3) runs through
the executor to the final state and task states its `.expected.json` gives (see the corpus README).

The runs are created over v1beta1 from the compiled YAML; their Python steps use a `python3` with kfp 2.x
(`tests.kfp2_python`) found first on PATH. Skipped without the corpus (failed under CI=true).
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
from tests.conftest import SHARED_DIR
from tests.kfp2_python import require_kfp2_bin

RUNS = "/apis/v1beta1/runs"
CORPUS = SHARED_DIR / "pipelines-v2"
NAMES = sorted(path.name[: -len(".expected.json")] for path in CORPUS.glob("*.expected.json")) \
    if CORPUS.is_dir() else []
# Node phases as KFP v2 task states.
STATES = {"Succeeded": "SUCCEEDED", "Failed": "FAILED", "Error": "FAILED", "Skipped": "SKIPPED",
          "Omitted": "SKIPPED", "Running": "RUNNING", "Pending": "PENDING"}


@pytest.fixture
def app(settings: Settings, shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("PATH", f"{require_kfp2_bin()}:{__import__('os').environ.get('PATH', '')}")
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


def _check_tasks(expected: dict, tasks: dict[str, list[str]]) -> list[str]:
    problems = []
    for name, want in expected.items():
        got = tasks.get(name, [])
        if "states" in want:
            counts: dict[str, int] = {}
            for state in got:
                if state != "SKIPPED" or "SKIPPED" in want["states"]:
                    counts[state] = counts.get(state, 0) + 1
            if counts != want["states"]:
                problems.append(f"{name}: {counts} != {want['states']}")
        elif want["state"] == "SKIPPED":
            if any(state != "SKIPPED" for state in got):
                problems.append(f"{name}: {got}, expected not to run")
        elif not got:
            if not want.get("optional"):
                problems.append(f"{name}: missing")
        elif any(state != want["state"] for state in got):
            problems.append(f"{name}: {got} != {want['state']}")
    return problems


@pytest.mark.parametrize("name", NAMES or ["corpus-missing"])
def test_corpus_pipeline_runs_as_expected(client: FlaskClient, name: str) -> None:
    expected = json.loads((CORPUS / f"{name}.expected.json").read_text())
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
    assert _check_tasks(expected["tasks"], _tasks(nodes)) == [], json.dumps(summary, indent=1)
