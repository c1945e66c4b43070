"""Execution semantics through the kfp 1.8.22 client: retry, terminate, errors, concurrency caps, timeouts,
step isolation, workflow macros, artifacts and logs (kfp-execution-semantics.md, sections 2, 3, 6 and 7).

Each test runs one small pipeline of `semantics_pipelines` on the session's live server. Steps leave
traces in `/var/tmp/<marker>-*` files, so the tests see what really ran, how often and when.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e import semantics_pipelines as sp
from tests.e2e.helpers import api_exception
from tests.e2e.run_checks import wait_for_run, workflow_nodes

RUN_TIMEOUT = 60.0
DEADLINE_MESSAGE = "Step exceeded its deadline"


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def marker(unique: str) -> Iterator[str]:
    """The test's trace-file prefix; its files under /var/tmp are removed afterwards."""
    yield unique
    for path in sp.TRACE_DIR.glob(f"{unique}-*"):
        path.unlink(missing_ok=True)


def start(client: Any, pipeline: Callable, marker: str, name: str) -> str:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)  # ContainerOp.image, compiling
        return client.create_run_from_pipeline_func(pipeline, arguments={}, run_name=f"{marker}-{name}").run_id


def trace(marker: str, name: str) -> list[str]:
    path = sp.trace_path(marker, name)
    return path.read_text().splitlines() if path.exists() else []


def nodes_by_display(detail: Any) -> dict[str, dict]:
    """Nodes keyed by displayName; the exit handler's node under "onExit"."""
    found: dict[str, dict] = {}
    for node in workflow_nodes(detail):
        key = "onExit" if node["name"].endswith(".onExit") else node["displayName"]
        assert key not in found, f"two nodes display as {key!r}"
        found[key] = node
    return found


def describe(detail: Any) -> str:
    return json.dumps(
        {n["name"]: [n.get("type"), n.get("phase"), n.get("message")] for n in workflow_nodes(detail)}, indent=1
    )


def wait_for_node(client: Any, run_id: str, display: str, phase: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for node in workflow_nodes(client.get_run(run_id)):
            if node.get("displayName") == display and node.get("phase") == phase:
                return node
        assert time.monotonic() < deadline, f"node {display} never reached {phase}"
        time.sleep(0.1)


def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return path.read_text().strip()


def process_gone(pid: int, command_word: str, timeout: float = 10.0) -> bool:
    """True once `pid` is no longer a process running `command_word` (or does not exist at all)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if command_word.encode() not in cmdline or state == "Z":
            return True
        time.sleep(0.05)
    return False


def read_node_log(api_url: str, run_id: str, node_id: str) -> str:
    response = requests.get(f"{api_url}/runs/{run_id}/nodes/{node_id}/log", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def read_artifact_file(api_url: str, run_id: str, node_id: str, name: str) -> bytes:
    """The single file inside the tgz that `.../nodes/{node}/artifacts/{name}:read` returns as base64."""
    response = requests.get(f"{api_url}/runs/{run_id}/nodes/{node_id}/artifacts/{name}:read", timeout=10)
    assert response.status_code == 200, response.text
    archive = base64.b64decode(response.json()["data"], validate=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        files = [member for member in tar.getmembers() if member.isfile()]
        assert len(files) == 1, [member.name for member in tar.getmembers()]
        extracted = tar.extractfile(files[0])
        assert extracted is not None
        return extracted.read()


def assert_json_4xx(response: requests.Response, allowed: tuple[int, ...] = (400, 409)) -> dict:
    assert response.status_code in allowed, f"HTTP {response.status_code}: {response.text}"
    body = response.json()
    assert isinstance(body, dict) and (body.get("error") or body.get("message")), body
    return body


def max_overlap(lines: list[str]) -> int:
    """The largest number of "start end" intervals open at one instant."""
    events = []
    for line in lines:
        start_at, end_at = (float(x) for x in line.split())
        events += [(start_at, 1), (end_at, -1)]
    open_now = peak = 0
    for _, delta in sorted(events, key=lambda event: (event[0], event[1])):  # ends before starts on ties
        open_now += delta
        peak = max(peak, open_now)
    return peak


def metrics_of(detail: Any) -> list[tuple[str, str, float]]:
    return sorted((m.name, m.node_id, float(m.number_value or 0)) for m in detail.run.metrics or [])


# ---------------------------------------------------------------------------------------------- retry


def test_retry_of_a_failed_run_reruns_only_what_failed(kfp_client, api_url: str, marker: str) -> None:
    run_id = start(kfp_client, sp.retry_chain(marker), marker, "retry")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Failed", describe(detail)
    nodes = nodes_by_display(detail)
    assert (nodes["step-a"]["phase"], nodes["step-b"]["phase"], nodes["step-c"]["phase"]) == (
        "Succeeded", "Failed", "Omitted"), describe(detail)
    assert nodes["onExit"]["phase"] == "Succeeded", describe(detail)
    step_a = nodes["step-a"]
    step_b_id = nodes["step-b"]["id"]
    assert metrics_of(detail) == [("execution", step_b_id, 1.0)]
    assert trace(marker, "exit") == ["Failed"]

    kfp_client.runs.retry_run(run_id)
    retried = kfp_client.get_run(run_id).run
    assert retried.status == "Running"
    assert retried.finished_at is None or retried.finished_at.year == 1970, retried.finished_at
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)

    assert detail.run.status == "Succeeded", describe(detail)
    assert detail.run.id == run_id
    nodes = nodes_by_display(detail)
    assert {name: nodes[name]["phase"] for name in ("step-a", "step-b", "step-c", "onExit")} == dict.fromkeys(
        ("step-a", "step-b", "step-c", "onExit"), "Succeeded"), describe(detail)
    assert (len(trace(marker, "a")), len(trace(marker, "b")), len(trace(marker, "c"))) == (1, 2, 1)
    for key in ("id", "startedAt", "finishedAt"):
        assert nodes["step-a"][key] == step_a[key], f"step-a {key} changed across the retry"
    assert trace(marker, "exit") == ["Failed", "Succeeded"], "the exit handler runs again after a retry"
    # Metrics: the first report of (node, name) wins, also across a retry (the second execution wrote 2).
    assert nodes["step-b"]["id"] == step_b_id
    assert "execution 2" in read_node_log(api_url, run_id, step_b_id)
    assert metrics_of(detail) == [("execution", step_b_id, 1.0)]

    # A succeeded run cannot be retried: 400 (gRPC FailedPrecondition), upstream's BadRequestError; a
    # finished run cannot be terminated.
    body = api_exception(lambda: kfp_client.runs.retry_run(run_id), 400)
    assert body["code"] == 9 and body["details"][0]["error_message"] == "Workflow must be Failed/Error to retry"
    body = assert_json_4xx(requests.post(f"{api_url}/runs/{run_id}/terminate", timeout=10), allowed=(400,))
    assert "Row not found" in json.dumps(body), body
    assert kfp_client.get_run(run_id).run.status == "Succeeded"


def test_retry_of_a_failed_loop_iteration_reruns_only_that_iteration(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.loop_with_flaky_item(marker), marker, "retry-loop")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Failed", describe(detail)
    assert trace(marker, "after-loop") == []
    iterations = {n["displayName"]: n for n in workflow_nodes(detail) if n["displayName"].startswith("for-loop-2(")}
    assert sorted(iterations) == ["for-loop-2(0:0)", "for-loop-2(1:1)", "for-loop-2(2:2)"], describe(detail)

    kfp_client.runs.retry_run(run_id)
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)

    assert detail.run.status == "Succeeded", describe(detail)
    assert [len(trace(marker, f"item-{i}")) for i in range(3)] == [1, 2, 1]
    assert trace(marker, "after-loop") == ["ran"]
    nodes = workflow_nodes(detail)
    by_id = {n["id"]: n for n in nodes}
    after = {n["displayName"]: n for n in nodes if n["displayName"].startswith("for-loop-2(")}
    assert sorted(after) == sorted(iterations), describe(detail)
    for name in ("for-loop-2(0:0)", "for-loop-2(2:2)"):
        assert after[name]["startedAt"] == iterations[name]["startedAt"], f"{name} was run again"
    # The graph still hangs together: the loop's group node lists its iterations, each child exists.
    group = next(n for n in nodes if n["displayName"] == "for-loop-2")
    assert group["type"] == "TaskGroup" and group["phase"] == "Succeeded", describe(detail)
    assert {n["id"] for n in after.values()} <= set(group.get("children", [])), describe(detail)
    for node in nodes:
        for child in node.get("children", []):
            assert child in by_id, f"{node['name']} lists a child {child} that is not in the workflow"


def test_retry_after_terminate_resumes_the_run(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.slow_then_next(marker), marker, "terminate-retry")
    wait_for_node(kfp_client, run_id, "slow", "Running")
    # Its pid file comes after its counter line: terminating earlier would leave the counter at 0 and make
    # the retried execution sleep as the first one did.
    wait_for_file(sp.trace_path(marker, "pid"))
    kfp_client.runs.terminate_run(run_id)
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Failed", describe(detail)

    kfp_client.runs.retry_run(run_id)
    # The second execution of `slow` ends at once: a retry that is still terminating would fail it again.
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)

    assert detail.run.status == "Succeeded", describe(detail)
    nodes = nodes_by_display(detail)
    assert (nodes["slow"]["phase"], nodes["next"]["phase"], nodes["onExit"]["phase"]) == (
        "Succeeded", "Succeeded", "Succeeded"), describe(detail)
    assert (len(trace(marker, "slow")), len(trace(marker, "next"))) == (2, 1)
    assert trace(marker, "exit") == ["Failed", "Succeeded"]


def test_retry_of_a_running_run_is_refused(kfp_client, api_url: str, marker: str) -> None:
    run_id = start(kfp_client, sp.slow_then_next(marker, with_exit_handler=False), marker, "retry-running")
    try:
        wait_for_node(kfp_client, run_id, "slow", "Running")
        wait_for_file(sp.trace_path(marker, "pid"))
        body = assert_json_4xx(requests.post(f"{api_url}/runs/{run_id}/retry", timeout=10), allowed=(400,))
        assert body["details"][0]["error_message"] == "Workflow must be Failed/Error to retry", body
        assert kfp_client.get_run(run_id).run.status == "Running"
    finally:
        kfp_client.runs.terminate_run(run_id)
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Failed", describe(detail)
    assert trace(marker, "slow") == ["ran"], "the refused retry must not start the step again"


# ---------------------------------------------------------------------------------------------- terminate


def test_terminate_kills_the_step_omits_waiters_and_runs_the_exit_handler(
    kfp_client, api_url: str, marker: str
) -> None:
    run_id = start(kfp_client, sp.slow_then_next(marker), marker, "terminate")
    wait_for_node(kfp_client, run_id, "slow", "Running")
    pid = int(wait_for_file(sp.trace_path(marker, "pid")))
    assert not process_gone(pid, "sleep", timeout=0), "the slow step should be running"

    kfp_client.runs.terminate_run(run_id)
    assert kfp_client.get_run(run_id).run.status in ("Terminating", "Failed")
    # The step sleeps 300 s: the run finishing within the wait means it was killed.
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)

    assert detail.run.status == "Failed", describe(detail)
    assert process_gone(pid, "sleep"), f"the slow step's process {pid} is still running"
    nodes = nodes_by_display(detail)
    assert nodes["slow"]["phase"] == "Failed", describe(detail)
    assert nodes["next"]["phase"] == "Omitted", describe(detail)
    assert trace(marker, "next") == []
    assert nodes["onExit"]["phase"] == "Succeeded", describe(detail)
    assert "status=Failed" in read_node_log(api_url, run_id, nodes["onExit"]["id"])
    assert trace(marker, "exit") == ["Failed"]
    # Terminating it again is refused: it is finished.
    assert_json_4xx(requests.post(f"{api_url}/runs/{run_id}/terminate", timeout=10), allowed=(400,))


def test_terminate_stops_retries(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.failing_with_backoff(marker), marker, "terminate-retries")
    wait_for_file(sp.trace_path(marker, "flaky"))
    kfp_client.runs.terminate_run(run_id)
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Failed", describe(detail)
    attempts = len(trace(marker, "flaky"))
    assert attempts < 11, "terminate must stop the retries"
    nodes = nodes_by_display(detail)
    assert nodes["flaky"]["phase"] == "Failed", describe(detail)
    # No attempt is even created after the terminate: every attempt node is one that really ran.
    assert sorted(k for k in nodes if k.startswith("flaky(")) == [f"flaky({i})" for i in range(attempts)], describe(
        detail)


def test_terminate_right_after_create(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.slow_then_next(marker), marker, "terminate-early")
    kfp_client.runs.terminate_run(run_id)
    # `slow` sleeps 300 s on its first execution if it starts at all: finishing within the wait means it was not
    # left running.
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Failed", describe(detail)
    assert trace(marker, "next") == []
    nodes = nodes_by_display(detail)
    assert nodes["onExit"]["phase"] == "Succeeded", describe(detail)
    assert trace(marker, "exit") == ["Failed"]


def test_workflow_timeout_fails_the_run_and_still_runs_the_exit_handler(
    kfp_client, api_url: str, marker: str
) -> None:
    run_id = start(kfp_client, sp.workflow_timeout(marker, seconds=2), marker, "timeout")
    # Both long steps sleep 60 s and run one at a time: finishing within the wait means the deadline hit.
    detail = wait_for_run(kfp_client, run_id, timeout=30)

    assert detail.run.status == "Failed", describe(detail)
    nodes = nodes_by_display(detail)
    started = [name for name in ("first", "second") if trace(marker, name)]
    never_started = [name for name in ("first", "second") if not trace(marker, name)]
    assert len(started) == 1, f"parallelism 1: exactly one long step starts before the deadline, got {started}"
    assert nodes[started[0]]["phase"] == "Failed", describe(detail)
    assert nodes[never_started[0]]["phase"] == "Failed", describe(detail)
    assert nodes[never_started[0]].get("message") == DEADLINE_MESSAGE, describe(detail)
    assert nodes["third"]["phase"] == "Omitted", describe(detail)
    assert trace(marker, "third") == []
    assert nodes["onExit"]["phase"] == "Succeeded", describe(detail)
    assert trace(marker, "exit") == ["Failed"]


# ---------------------------------------------------------------------------------------------- errors


def test_missing_output_parameter_file_is_an_error(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.missing_output_parameter(marker), marker, "missing-output")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Error", describe(detail)
    nodes = nodes_by_display(detail)
    assert (nodes["producer"]["type"], nodes["producer"]["phase"]) == ("Pod", "Error"), describe(detail)
    assert trace(marker, "producer") == ["ran"]
    assert nodes["consumer"]["phase"] == "Omitted", describe(detail)
    assert trace(marker, "consumer") == []
    assert trace(marker, "exit") == ["Error"], "the exit handler sees {{workflow.status}} = Error"


def test_retry_policy_always_retries_errors_but_on_failure_does_not(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.retry_policies(marker), marker, "policies")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Error", describe(detail)
    nodes = nodes_by_display(detail)
    for name, attempts in (("always", 3), ("on-failure", 1)):
        assert (nodes[name]["type"], nodes[name]["phase"]) == ("Retry", "Error"), describe(detail)
        pods = sorted(key for key, node in nodes.items() if key.startswith(f"{name}(") and node["type"] == "Pod")
        assert pods == [f"{name}({i})" for i in range(attempts)], describe(detail)
        assert all(nodes[pod]["phase"] == "Error" for pod in pods), describe(detail)
        assert len(trace(marker, name)) == attempts


def test_with_param_over_a_non_list_is_an_error(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.loop_over_output(marker, '{"a": 1}'), marker, "non-list")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Error", describe(detail)
    nodes = nodes_by_display(detail)
    assert (nodes["for-loop-1"]["type"], nodes["for-loop-1"]["phase"]) == ("Skipped", "Error"), describe(detail)
    assert "JSON list" in nodes["for-loop-1"].get("message", ""), describe(detail)
    assert nodes["after-loop"]["phase"] == "Omitted", describe(detail)
    assert trace(marker, "body") == [] and trace(marker, "after-loop") == []


def test_with_param_over_an_empty_list_is_skipped_and_dependents_run(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.loop_over_output(marker, "[]"), marker, "empty-list")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Succeeded", describe(detail)
    nodes = nodes_by_display(detail)
    loop = nodes["for-loop-1"]
    assert (loop["type"], loop["phase"], loop.get("message")) == ("Skipped", "Skipped", "Skipped, empty params")
    assert nodes["after-loop"]["phase"] == "Succeeded", describe(detail)
    assert trace(marker, "body") == [] and trace(marker, "after-loop") == ["ran"]


def test_non_numeric_operand_of_a_numeric_condition_is_an_error(kfp_client, marker: str) -> None:
    run_id = start(kfp_client, sp.numeric_condition(marker, "abc"), marker, "when-error")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Error", describe(detail)
    nodes = nodes_by_display(detail)
    assert nodes["condition-1"]["phase"] == "Error", describe(detail)
    assert "inside" not in nodes and trace(marker, "inside") == []


# ---------------------------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("factory", [sp.run_parallelism, sp.loop_parallelism], ids=["spec", "parallel-for"])
def test_parallelism_caps_running_steps(kfp_client, marker: str, factory: Callable) -> None:
    run_id = start(kfp_client, factory(marker, 5, 2), marker, "parallelism")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Succeeded", describe(detail)
    intervals = trace(marker, "intervals")
    assert len(intervals) == 5
    assert max_overlap(intervals) <= 2, f"more than 2 steps ran at once: {intervals}"


def test_concurrent_steps_writing_the_same_output_path_each_keep_their_own(
    kfp_client, api_url: str, marker: str
) -> None:
    run_id = start(kfp_client, sp.same_output_path(4), marker, "same-path")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    # Each step checks, after a pause, that the file still holds what it wrote.
    assert detail.run.status == "Succeeded", describe(detail)
    fan: dict[str, str] = {}
    loop_values: list[str] = []
    for node in workflow_nodes(detail):
        if node["type"] != "Pod":
            continue
        value = read_artifact_file(api_url, run_id, node["id"], f"{node['templateName']}-out").decode()
        if node["displayName"] == "loop-write":
            loop_values.append(value)
        else:
            fan[node["displayName"]] = value
    assert fan == {f"fan-{i}": f"fan-{i}" for i in range(4)}
    assert sorted(loop_values) == ["0", "1", "2", "3"]


# ---------------------------------------------------------------------------------------------- introspection


def test_workflow_uid_artifacts_and_logs(kfp_client, api_url: str, marker: str) -> None:
    run_id = start(kfp_client, sp.introspection(marker), marker, "introspection")
    detail = wait_for_run(kfp_client, run_id, timeout=RUN_TIMEOUT)
    assert detail.run.status == "Succeeded", describe(detail)
    node = nodes_by_display(detail)["introspect"]
    assert read_artifact_file(api_url, run_id, node["id"], "introspect-uid").decode() == run_id
    assert read_artifact_file(api_url, run_id, node["id"], "introspect-report") == (
        f"artifact content {marker}\n".encode()
    )
    log = read_node_log(api_url, run_id, node["id"])
    assert f"stdout-line-{marker}" in log and f"stderr-line-{marker}" in log
    # The client's own call reaches the same endpoint.
    assert kfp_client.runs.read_artifact(run_id, node["id"], "introspect-uid").data
