"""A v1 run and a KFP v2 run side by side on one live server: the kfp 1.8.22 client's Argo pipeline with a
sleeping step and a KFP v2 (IR) pipeline submitted over the v2beta1 REST API run at the same time (their
steps' running intervals overlap), and both succeed with the outputs they should have.
"""

from __future__ import annotations

import json
import time
import warnings
from datetime import datetime
from typing import Any

import pytest
import requests
from kfp.components import create_component_from_func

from tests import ir_pipelines as ir
from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.test_step_isolation import read_output

pytestmark = pytest.mark.e2e

SLEEP_SECONDS = 4


def slow_square(x: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return x * x


slow_square_op = create_component_from_func(slow_square)


def v1_pipeline(x: int = 7, seconds: float = SLEEP_SECONDS):  # type: ignore[no-untyped-def]
    slow_square_op(x, seconds)


def v2_spec() -> dict[str, Any]:
    """`slow` sleeps, then writes 2*x as its output parameter and an artifact; `check` reads both."""
    slow = ir.sh_component(
        "slow", 'sleep "$0"; mkdir -p "$(dirname "$2")" "$(dirname "$3")"; printf %s $(( $1 * 2 )) > "$2"; '
        'printf data > "$3"',
        ["{{$.inputs.parameters['seconds']}}", "{{$.inputs.parameters['x']}}",
         "{{$.outputs.parameters['doubled'].output_file}}", "{{$.outputs.artifacts['data'].path}}"],
        inputs={"parameters": ir.parameters(x="NUMBER_INTEGER", seconds="NUMBER_INTEGER")},
        outputs={"parameters": ir.parameters(doubled="NUMBER_INTEGER"), "artifacts": ir.artifacts("data")})
    check = ir.sh_component(
        "check", ir.EXPECT + ' && test "$(cat "$2")" = data', ["{{$.inputs.parameters['got']}}", "10",
                                                             "{{$.inputs.artifacts['data'].path}}"],
        inputs={"parameters": ir.parameters(got="NUMBER_INTEGER"), "artifacts": ir.artifacts("data")})
    return ir.pipeline("side-by-side-v2", [slow, check], {
        "inputDefinitions": {"parameters": ir.parameters(x=("NUMBER_INTEGER", 5))},
        "dag": {"tasks": {
            "slow": ir.task("comp-slow", parameters={"x": ir.pipeline_input("x"),
                                                     "seconds": ir.const(SLEEP_SECONDS)}),
            "check": ir.task("comp-check", parameters={"got": ir.output_of("slow", "doubled")},
                             artifacts={"data": ir.artifact_of("slow", "data")}),
        }},
    })


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait_v2(url: str, run_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = requests.get(f"{url}/apis/v2beta1/runs/{run_id}", timeout=30).json()
        if run.get("state") in {"SUCCEEDED", "FAILED", "CANCELED"}:
            return run
        assert time.monotonic() < deadline, f"run {run_id} not finished: {json.dumps(run)[:2000]}"
        time.sleep(0.2)


def test_a_v1_run_and_a_v2_run_run_side_by_side(kfp_client: Any, server_url: str, unique: str) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)  # ContainerOp.image, in kfp
        warnings.filterwarnings("ignore", category=FutureWarning)
        v1_run = kfp_client.create_run_from_pipeline_func(
            v1_pipeline, arguments={"x": 7}, run_name=f"{unique}-v1", experiment_name=unique).run_id
    response = requests.post(f"{server_url}/apis/v2beta1/runs", json={
        "display_name": f"{unique}-v2", "pipeline_spec": v2_spec(), "runtime_config": {"parameters": {"x": 5}}},
        timeout=30)
    assert response.status_code == 200, response.text
    v2_run = response.json()["run_id"]

    detail = wait_for_run(kfp_client, v1_run)
    v2 = wait_v2(server_url, v2_run)
    assert detail.run.status == "Succeeded", detail.run.error
    assert v2["state"] == "SUCCEEDED", json.dumps(
        {task["display_name"]: (task["state"], task.get("error")) for task in v2["run_details"]["task_details"]})

    (v1_step,) = [node for node in workflow_nodes(detail) if node.get("type") == "Pod"]
    assert read_output(kfp_client, v1_run, v1_step) == "49"
    v2_tasks = {task["display_name"]: task for task in v2["run_details"]["task_details"]}
    assert v2_tasks["slow"]["state"] == v2_tasks["check"]["state"] == "SUCCEEDED"
    # The v2 step's output parameter, as the v1beta1 view of the same run shows it (`check` compared it too).
    manifest = requests.get(f"{server_url}/apis/v1beta1/runs/{v2_run}", timeout=30).json()
    nodes = json.loads(manifest["pipeline_runtime"]["workflow_manifest"])["status"]["nodes"].values()
    (slow,) = [node for node in nodes if node.get("displayName") == "slow" and node.get("type") == "Pod"]
    assert {p["name"]: p["value"] for p in slow["outputs"]["parameters"]} == {"doubled": "10"}

    # Both sleeping steps ran at the same time.
    v1_interval = (timestamp(v1_step["startedAt"]), timestamp(v1_step["finishedAt"]))
    v2_interval = (timestamp(v2_tasks["slow"]["start_time"]), timestamp(v2_tasks["slow"]["end_time"]))
    assert max(v1_interval[0], v2_interval[0]) < min(v1_interval[1], v2_interval[1]), (v1_interval, v2_interval)
