"""Runs executed in-process over each database (real step processes, the real executor): the exit
handler receives the workflow's arguments, and Retry nodes have Argo's shape in the workflow status
(children exactly the attempt pods, dependents hanging off the last attempt).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests import exit_retry_pipelines as pipelines

RUNS = "/apis/v1beta1/runs"
FINISHED = {"Succeeded", "Failed", "Error"}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


@pytest.fixture
def marker() -> Iterator[str]:
    marker = f"exec-graph-{uuid.uuid4().hex[:12]}"
    yield marker
    pipelines.remove_traces(marker)


def run_to_the_end(client: FlaskClient, manifest: str, parameters: list[dict] | None = None) -> tuple[str, dict]:
    """Create a run from the manifest, wait for it to finish; its status and its workflow's `status`."""
    spec: dict = {"workflow_manifest": manifest}
    if parameters is not None:
        spec["parameters"] = parameters
    response = client.post(RUNS, json={"name": "run", "pipeline_spec": spec})
    assert response.status_code == 200, response.get_data(as_text=True)
    run_id = response.get_json()["run"]["id"]
    deadline = time.monotonic() + 60
    while True:
        detail = client.get(f"{RUNS}/{run_id}").get_json()
        if detail["run"].get("status") in FINISHED:
            return detail["run"]["status"], json.loads(detail["pipeline_runtime"]["workflow_manifest"])["status"]
        assert time.monotonic() < deadline, f"run not finished: {detail['run'].get('status')}"
        time.sleep(0.05)


@pytest.mark.parametrize("given", [None, "hello from the run"], ids=["default", "run-parameter"])
def test_the_exit_handler_receives_the_pipeline_parameters(
    client: FlaskClient, marker: str, given: str | None
) -> None:
    manifest = pipelines.workflow_manifest(pipelines.exit_with_parameter(marker))
    parameters = None if given is None else [{"name": "message", "value": given}]
    status, workflow = run_to_the_end(client, manifest, parameters)
    expected = pipelines.EXIT_MESSAGE_DEFAULT if given is None else given
    exit_node = pipelines.nodes_by_display(workflow["nodes"])["onExit"]
    assert (status, exit_node["phase"]) == ("Succeeded", "Succeeded"), json.dumps(workflow, indent=1)
    assert exit_node["inputs"] == {"parameters": [{"name": "message", "value": expected}]}
    assert pipelines.trace_path(marker, "exit").read_text() == f"{expected}\n"


def test_retry_nodes_list_their_attempts_and_dependents_hang_off_the_last(client: FlaskClient, marker: str) -> None:
    manifest = pipelines.workflow_manifest(pipelines.retried_with_dependents(marker))
    status, workflow = run_to_the_end(client, manifest)
    assert status == "Failed", json.dumps(workflow, indent=1)
    pipelines.check_retry_shape(workflow["nodes"])
    assert len(pipelines.trace_path(marker, "flaky").read_text().splitlines()) == pipelines.FLAKY_ATTEMPTS
    assert pipelines.trace_path(marker, "after-flaky").read_text() == "ran\n"
    assert not pipelines.trace_path(marker, "after-doomed").exists()
