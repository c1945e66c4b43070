"""Through the kfp 1.8.22 client: an exit op taking a pipeline parameter receives it (Argo runs `onExit`
with the workflow's arguments), and a retried step's Retry node has Argo's shape in the workflow status
(children exactly the attempt pods; a dependent, run or omitted, is a child of the last attempt pod).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import exit_retry_pipelines as pipelines
from tests.e2e.run_checks import wait_for_run

RUN_TIMEOUT = 60.0


@pytest.fixture
def marker(unique: str) -> Iterator[str]:
    yield unique
    pipelines.remove_traces(unique)


def run(client: Any, pipeline: Callable, arguments: dict[str, str], name: str) -> tuple[Any, dict[str, dict]]:
    """Run the pipeline (compiled by the client), wait for it; the run and its workflow's `status.nodes`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        run_id = client.create_run_from_pipeline_func(pipeline, arguments=arguments, run_name=name).run_id
    detail = wait_for_run(client, run_id, timeout=RUN_TIMEOUT)
    workflow = json.loads(detail.pipeline_runtime.workflow_manifest)
    return detail.run, workflow["status"]["nodes"]


def test_an_exit_op_taking_a_pipeline_parameter_receives_it(kfp_client, marker: str) -> None:
    found, nodes = run(kfp_client, pipelines.exit_with_parameter(marker), {"message": "bye now"}, f"{marker}-exit")
    exit_node = pipelines.nodes_by_display(nodes)["onExit"]
    assert (found.status, exit_node["phase"]) == ("Succeeded", "Succeeded"), json.dumps(nodes, indent=1)
    assert exit_node["inputs"] == {"parameters": [{"name": "message", "value": "bye now"}]}
    assert pipelines.trace_path(marker, "exit").read_text() == "bye now\n"
    assert pipelines.trace_path(marker, "body").read_text() == "ran\n"


def test_a_retry_node_lists_its_attempts_and_dependents_hang_off_the_last(kfp_client, marker: str) -> None:
    found, nodes = run(kfp_client, pipelines.retried_with_dependents(marker), {}, f"{marker}-retry")
    assert found.status == "Failed", json.dumps(nodes, indent=1)  # doomed fails on every attempt
    pipelines.check_retry_shape(nodes)
    assert len(pipelines.trace_path(marker, "flaky").read_text().splitlines()) == pipelines.FLAKY_ATTEMPTS
    assert pipelines.trace_path(marker, "after-flaky").read_text() == "ran\n"
    assert not pipelines.trace_path(marker, "after-doomed").exists()
