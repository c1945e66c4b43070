"""Runs through the unchanged kfp 2.x client (v2beta1) against a live server: get, list paging, archive,
terminate, delete of runs of an Argo pipeline (which this server runs as a v1 run), and a KFP v2 pipeline
run from a function."""

# No `from __future__ import annotations`: the kfp compiler reads the components' annotations as types.
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kfp_server_api.exceptions import ApiException

pytestmark = pytest.mark.kfp2

FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}

# A one-step Argo workflow (as kfp 1.8 compiles), written by hand: the kfp 2.x compiler makes no Argo.
SLEEPER = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "sleeper-"},
    "spec": {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "seconds", "value": "0"}]},
        "templates": [
            {"name": "main", "dag": {"tasks": [{
                "name": "nap", "template": "nap",
                "arguments": {"parameters": [{"name": "seconds", "value": "{{workflow.parameters.seconds}}"}]},
            }]}},
            {"name": "nap", "inputs": {"parameters": [{"name": "seconds"}]},
             "container": {"image": "alpine", "command": ["sh", "-c", "sleep {{inputs.parameters.seconds}}"]}},
        ],
    },
}


@pytest.fixture(scope="module")
def sleeper(client: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(pipeline id, version id) of the Argo sleeper, uploaded by the kfp 2.x client."""
    path = tmp_path_factory.mktemp("sleeper") / "sleeper.yaml"
    path.write_text(yaml.safe_dump(SLEEPER))
    pipeline = client.upload_pipeline(str(path), pipeline_name=f"sleeper-{time.time_ns()}")
    versions = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    return pipeline.pipeline_id, versions[0].pipeline_version_id


def start(client: Any, sleeper: tuple[str, str], experiment_id: str, name: str, seconds: int = 0) -> Any:
    pipeline_id, version_id = sleeper
    return client.run_pipeline(experiment_id, name, pipeline_id=pipeline_id, version_id=version_id,
                               params={"seconds": seconds})


def wait_for(client: Any, run_id: str, states: set, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        run = client.get_run(run_id)
        if run.state in states:
            return run
        assert time.monotonic() < deadline, f"run is {run.state}, not one of {states}"
        time.sleep(0.1)


def test_get_list_paging_archive_and_delete(client: Any, server_url: str, sleeper: tuple, unique: str) -> None:
    experiment = client.create_experiment(f"{unique}-runs")
    made = [start(client, sleeper, experiment.experiment_id, f"{unique}-{i}") for i in range(3)]
    assert all(run.state == "PENDING" and run.experiment_id == experiment.experiment_id for run in made)
    done = client.wait_for_run_completion(made[0].run_id, timeout=60, sleep_duration=0.2)
    assert done.state == "SUCCEEDED" and done.finished_at.year > 2000 and done.error is None
    assert done.runtime_config.parameters == {"seconds": "0"}
    assert done.pipeline_version_reference.pipeline_version_id == sleeper[1]
    assert [status.state for status in done.state_history] == ["PENDING", "RUNNING", "SUCCEEDED"]
    tasks = done.run_details.task_details
    assert {task.display_name for task in tasks} >= {"nap"}
    assert all(task.state == "SUCCEEDED" for task in tasks)

    seen, token = [], ""
    while True:
        page = client.list_runs(experiment_id=experiment.experiment_id, page_size=2, page_token=token,
                                sort_by="created_at")
        assert page.total_size == 3 and len(page.runs) <= 2
        seen += [run.run_id for run in page.runs]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(run.run_id for run in made)  # one second apart at most: ties go by id

    client.archive_run(made[1].run_id)
    assert client.get_run(made[1].run_id).storage_state == "ARCHIVED"
    client.unarchive_run(made[1].run_id)
    assert client.get_run(made[1].run_id).storage_state == "AVAILABLE"

    for run in made:
        wait_for(client, run.run_id, FINAL)
    client.delete_run(made[2].run_id)
    with pytest.raises(ApiException) as caught:
        client.get_run(made[2].run_id)
    assert caught.value.status == 404
    # The v1beta1 view of the same rows.
    v1 = requests.get(f"{server_url}/apis/v1beta1/runs/{made[0].run_id}", timeout=10).json()
    assert v1["run"]["status"] == "Succeeded"


def test_terminate_a_running_run(client: Any, sleeper: tuple, unique: str) -> None:
    experiment = client.create_experiment(f"{unique}-terminate")
    run = start(client, sleeper, experiment.experiment_id, f"{unique}-long", seconds=60)
    wait_for(client, run.run_id, {"RUNNING"})
    client.terminate_run(run.run_id)
    assert client.get_run(run.run_id).state in {"CANCELING", "CANCELED"}
    ended = wait_for(client, run.run_id, FINAL, seconds=30)
    assert ended.state == "CANCELED" and ended.error.message == "Stopped with strategy 'Terminate'"
    with pytest.raises(ApiException) as caught:
        client.terminate_run(run.run_id)
    assert caught.value.status == 400
    assert client.get_run(run.run_id).state == "CANCELED"


def test_create_run_from_pipeline_func(client: Any, unique: str, tmp_path: Path) -> None:
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def add(a: float, b: float) -> float:
        return a + b

    @dsl.pipeline(name="add-from-func")
    def arithmetic(a: float = 1.0, b: float = 2.0) -> float:
        return add(a=a, b=b).output

    result = client.create_run_from_pipeline_func(arithmetic, arguments={"a": 3}, run_name=f"{unique}-func",
                                                  experiment_name=f"{unique}-func")
    run = client.wait_for_run_completion(result.run_id, timeout=300, sleep_duration=0.5)
    assert run.state == "SUCCEEDED", run
    assert run.runtime_config.parameters["a"] == 3
