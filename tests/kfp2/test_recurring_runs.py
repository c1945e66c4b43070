"""Recurring runs through the unchanged kfp 2.x client (v2beta1) against a live server: create from an uploaded
pipeline version, get, list, disable/enable, delete; the scheduler fires the runs; the same job seen through
v1beta1 (plain HTTP); recurring runs of KFP v2 pipeline specs fire runs that execute with typed parameters."""

# No `from __future__ import annotations`: the kfp compiler reads the components' annotations as types.
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from kfp_server_api.exceptions import ApiException

from tests.kfp2.test_pipelines import error_body

pytestmark = pytest.mark.kfp2

# An Argo workflow (what the kfp 1.x SDK compiles): the scheduler fires these as well as KFP v2 pipeline specs.
ARGO_WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: kfp2-recurring-
spec:
  entrypoint: say
  arguments:
    parameters:
      - {name: word, value: hello}
      - {name: times, value: "1"}
  templates:
    - name: say
      container:
        image: alpine:3.19
        command: [echo, "{{workflow.parameters.word}}"]
"""


def argo_version(client: Any, unique: str, tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "argo.yaml"
    path.write_text(ARGO_WORKFLOW)
    pipeline = client.upload_pipeline(str(path), pipeline_name=f"{unique}-argo")
    versions = client.list_pipeline_versions(pipeline.pipeline_id)
    return pipeline.pipeline_id, versions.pipeline_versions[0].pipeline_version_id


def job_runs(server_url: str, job_id: str) -> list[dict]:
    response = requests.get(f"{server_url}/apis/v1beta1/runs", timeout=30, params={
        "resource_reference_key.type": "JOB", "resource_reference_key.id": job_id})
    response.raise_for_status()
    return response.json().get("runs", [])


def test_recurring_run_lifecycle(client: Any, server_url: str, unique: str, tmp_path: Path) -> None:
    pipeline_id, version_id = argo_version(client, unique, tmp_path)
    experiment = client.create_experiment(f"{unique}-experiment")
    created = client.create_recurring_run(
        experiment.experiment_id, f"{unique}-hourly", description="every hour", cron_expression="0 0 * * * *",
        start_time="2999-01-01T00:00:00Z", max_concurrency=2, no_catchup=True, params={"word": "hi", "times": 3},
        pipeline_id=pipeline_id, version_id=version_id, enabled=False,
    )
    run_id = created.recurring_run_id
    assert created.display_name == f"{unique}-hourly" and created.description == "every hour"
    assert created.pipeline_version_reference.pipeline_id == pipeline_id
    assert created.pipeline_version_reference.pipeline_version_id == version_id
    assert created.runtime_config.parameters == {"word": "hi", "times": 3}
    assert created.trigger.cron_schedule.cron == "0 0 * * * *"
    assert created.max_concurrency == "2" and created.no_catchup is True
    assert (created.mode, created.status) == ("DISABLE", "DISABLED")
    assert created.experiment_id == experiment.experiment_id

    got = client.get_recurring_run(run_id)
    assert got.to_dict() == created.to_dict()
    listed = client.list_recurring_runs(experiment_id=experiment.experiment_id)
    assert [r.recurring_run_id for r in listed.recurring_runs] == [run_id] and listed.total_size == 1
    by_name = client.list_recurring_runs(page_size=5, filter=json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": f"{unique}-hourly"}]}))
    assert [r.recurring_run_id for r in by_name.recurring_runs] == [run_id]

    # v1beta1 sees the job, parameters as text.
    job = requests.get(f"{server_url}/apis/v1beta1/jobs/{run_id}", timeout=30).json()
    assert job["pipeline_spec"]["parameters"] == [{"name": "word", "value": "hi"}, {"name": "times", "value": "3"}]
    assert "enabled" not in job

    client.enable_recurring_run(run_id)
    assert client.get_recurring_run(run_id).status == "ENABLED"
    client.disable_recurring_run(run_id)
    assert client.get_recurring_run(run_id).status == "DISABLED"
    client.delete_recurring_run(run_id)
    with pytest.raises(ApiException) as missing:
        client.get_recurring_run(run_id)
    assert run_id in error_body(missing.value, 404)["message"]


def test_an_enabled_periodic_recurring_run_fires(client: Any, server_url: str, unique: str, tmp_path: Path) -> None:
    pipeline_id, version_id = argo_version(client, unique, tmp_path)
    experiment = client.create_experiment(f"{unique}-fired")
    created = client.create_recurring_run(
        experiment.experiment_id, f"{unique}-every-second", interval_second=1, max_concurrency=1,
        params={"word": "fired"}, pipeline_id=pipeline_id, version_id=version_id,
    )
    assert created.status == "ENABLED"
    deadline = time.monotonic() + 60
    runs: list[dict] = []
    while time.monotonic() < deadline and not runs:
        runs = job_runs(server_url, created.recurring_run_id)
        time.sleep(0.2)
    client.disable_recurring_run(created.recurring_run_id)
    assert runs, "the scheduler fired no run within 60 s"
    assert {"name": "word", "value": "fired"} in runs[0]["pipeline_spec"]["parameters"]
    client.delete_recurring_run(created.recurring_run_id)


def compile_typed_check_pipeline(path: Path) -> Path:
    """A KFP v2 pipeline whose one step succeeds only if `word` is "at <digits>" and the integer `n` is 3."""
    from kfp import compiler, dsl

    @dsl.container_component
    def check(word: str, n: int) -> dsl.ContainerSpec:
        script = 'case "$0" in "at "[0-9]*) ;; *) exit 1 ;; esac; test "$1" = 3'
        return dsl.ContainerSpec(image="python:3.11", command=["sh", "-c", script], args=[word, n])

    @dsl.pipeline(name="typed-check")
    def typed_check(word: str = "none", n: int = 0) -> None:
        check(word=word, n=n)

    compiler.Compiler().compile(typed_check, str(path))
    return path


def wait_for_fires(server_url: str, job_id: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 60
    runs = job_runs(server_url, job_id)
    while time.monotonic() < deadline and len(runs) < count:
        time.sleep(0.2)
        runs = job_runs(server_url, job_id)
    assert len(runs) >= count, f"the scheduler fired {len(runs)} runs within 60 s"
    return runs


def test_ir_recurring_runs_fire_runs_that_succeed(client: Any, server_url: str, unique: str, tmp_path: Path) -> None:
    """A KFP v2 pipeline with a past start: the scheduler catches up, each run executes with the typed
    parameters (`[[Index]]` substituted) and the recurring run's pipeline root. A v1beta1 job of the uploaded
    IR version fires too."""
    package = compile_typed_check_pipeline(tmp_path / "typed.yaml")
    experiment = client.create_experiment(f"{unique}-ir")
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 25))
    created = client.create_recurring_run(
        experiment.experiment_id, f"{unique}-ir", start_time=start, interval_second=10, max_concurrency=5,
        params={"word": "at [[Index]]", "n": 3}, pipeline_package_path=str(package),
        pipeline_root=f"minio://bucket/{unique}",
    )
    assert created.runtime_config.parameters == {"word": "at [[Index]]", "n": 3}
    assert created.runtime_config.pipeline_root == f"minio://bucket/{unique}"
    pipeline = client.upload_pipeline(str(package), pipeline_name=f"{unique}-ir")
    version = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0]
    v1 = requests.post(f"{server_url}/apis/v1beta1/jobs", timeout=30, json={
        "name": f"{unique}-ir-v1", "enabled": True, "max_concurrency": 5,
        "pipeline_spec": {"parameters": [{"name": "word", "value": "at [[Index]]"}, {"name": "n", "value": "3"}]},
        "trigger": {"periodic_schedule": {"interval_second": 10, "start_time": start}},
        "resource_references": [{"key": {"type": "PIPELINE_VERSION", "id": version.pipeline_version_id},
                                 "relationship": "CREATOR"}]})
    assert v1.status_code == 200, v1.text
    fired = wait_for_fires(server_url, created.recurring_run_id, 2)
    fired_v1 = wait_for_fires(server_url, v1.json()["id"], 2)
    client.disable_recurring_run(created.recurring_run_id)
    client.disable_recurring_run(v1.json()["id"])
    for run in fired + fired_v1:
        done = client.wait_for_run_completion(run["id"], timeout=120, sleep_duration=0.2)
        assert done.state == "SUCCEEDED", done
        index = int(run["name"].split("-")[-2])
        # Typed as the run's runtime document has them (the v1beta1 job's text "3" too).
        assert done.runtime_config.parameters == {"word": f"at {index}", "n": 3}
        if run in fired:
            assert done.runtime_config.pipeline_root == f"minio://bucket/{unique}"
    client.delete_recurring_run(created.recurring_run_id)
    client.delete_recurring_run(v1.json()["id"])
