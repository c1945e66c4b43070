"""v1 (Argo) runs executed in-process by the real executor, read through the v2beta1 API: task details come
from the node rows the executor wrote, and terminate shows CANCELING, then CANCELED (v1 view: Failed)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kfp import dsl

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests import exit_retry_pipelines as pipelines
from tests.api.test_v2_pipelines import IR

V2_RUNS = "/apis/v2beta1/runs"
FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


@pytest.fixture
def marker() -> Iterator[str]:
    marker = f"v2-view-{uuid.uuid4().hex[:12]}"
    yield marker
    pipelines.remove_traces(marker)


def create(client: FlaskClient, pipeline: Callable) -> str:
    spec = json.loads(pipelines.workflow_manifest(pipeline))
    response = client.post(V2_RUNS, json={"display_name": "run", "pipeline_spec": spec})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["run_id"]


def wait_for(client: FlaskClient, run_id: str, states: set[str], seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        run = client.get(f"{V2_RUNS}/{run_id}").get_json()
        if run["state"] in states:
            return run
        assert time.monotonic() < deadline, f"run is {run['state']}, not {states}"
        time.sleep(0.05)


def test_task_details_of_an_executed_argo_run(client: FlaskClient, marker: str) -> None:
    run_id = create(client, pipelines.retried_with_dependents(marker))
    run = wait_for(client, run_id, FINAL)
    assert run["state"] == "FAILED" and run["error"]["code"] == 2
    assert [entry["state"] for entry in run["state_history"]] == ["PENDING", "RUNNING", "FAILED"]
    tasks = run["run_details"]["task_details"]
    by_name = {task["display_name"]: task for task in tasks}
    root = next(task for task in tasks if "parent_task_id" not in task)
    assert root["state"] == "FAILED"
    doomed = by_name["doomed"]
    attempts = [by_name["doomed(0)"], by_name["doomed(1)"]]
    assert doomed["state"] == "FAILED" and doomed["parent_task_id"] == root["task_id"]
    assert doomed["child_tasks"] == [{"pod_name": a["task_id"]} for a in attempts]
    assert all(a["parent_task_id"] == doomed["task_id"] and a["pod_name"] == a["task_id"] for a in attempts)
    assert "exit code 3" in attempts[-1]["error"]["message"]
    assert by_name["after-doomed"]["state"] == "SKIPPED"
    assert by_name["after-flaky"]["state"] == "SUCCEEDED"
    assert all(task["run_id"] == run_id and task["start_time"] for task in tasks)
    # The v1 view of the same run.
    v1 = client.get(f"/apis/v1beta1/runs/{run_id}").get_json()
    nodes = json.loads(v1["pipeline_runtime"]["workflow_manifest"])["status"]["nodes"]
    assert set(nodes) == {task["task_id"] for task in tasks}


def test_terminate_is_canceling_then_canceled(client: FlaskClient, marker: str) -> None:
    @dsl.pipeline(name="sleeper")
    def sleeper():
        pipelines._sh("sleep", f"echo started >> {pipelines.trace_path(marker, 'sleep')}; sleep 60")

    run_id = create(client, sleeper)
    started = pipelines.trace_path(marker, "sleep")
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    assert client.post(f"{V2_RUNS}/{run_id}:terminate").status_code == 200
    states = [client.get(f"{V2_RUNS}/{run_id}").get_json()["state"]]
    run = wait_for(client, run_id, FINAL, seconds=30)
    states.append(run["state"])
    assert states[0] in {"CANCELING", "CANCELED"} and states[-1] == "CANCELED", states
    assert run["error"] == {"code": 1, "message": "Stopped with strategy 'Terminate'"}
    assert [entry["state"] for entry in run["state_history"]] == ["PENDING", "RUNNING", "CANCELING", "CANCELED"]
    (task,) = [t for t in run["run_details"]["task_details"] if t["display_name"] == "sleep"]
    assert task["state"] == "CANCELED"
    assert client.get(f"/apis/v1beta1/runs/{run_id}").get_json()["run"]["status"] == "Failed"


def test_task_details_of_an_executed_kfp_v2_run(client: FlaskClient) -> None:
    response = client.post(V2_RUNS, json={"display_name": "ir", "pipeline_spec": IR,
                                          "runtime_config": {"parameters": {"word": "hi"}}})
    assert response.status_code == 200, response.get_data(as_text=True)
    run = wait_for(client, response.get_json()["run_id"], FINAL)
    assert run["state"] == "SUCCEEDED", json.dumps(run, indent=1)
    assert run["runtime_config"]["parameters"] == {"word": "hi"}
    tasks = run["run_details"]["task_details"]
    (say,) = [task for task in tasks if task["display_name"] == "say"]
    assert say["state"] == "SUCCEEDED" and say["parent_task_id"]
    assert {task["task_id"] for task in tasks} >= {say["parent_task_id"]}
