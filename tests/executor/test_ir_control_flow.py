"""KFP v2 (IR) control flow executed in-process (real steps, each database): sub-pipelines and their DAG
outputs, CEL conditions with untaken branches Skipped, exit handlers receiving the body's final status,
retries, and ParallelFor over static and upstream lists with a parallelism limit and collected fan-in."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests import ir_pipelines as ir
from tests.ir_pipelines import by_display, phases, run_to_the_end

WRITE_OUT = 'mkdir -p "$(dirname "$1")"; printf "%s" "$0" > "$1"'


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


def _check(kind: str = "STRING") -> tuple[str, dict, dict]:
    return ir.sh_component(
        f"check-{kind.lower()}", ir.EXPECT,
        ["{{$.inputs.parameters['got']}}", "{{$.inputs.parameters['want']}}"],
        inputs={"parameters": ir.parameters(got=kind, want="STRING")})


def test_a_sub_pipeline_runs_twice_and_its_dag_output_flows_on(client: FlaskClient) -> None:
    double = ir.sh_component("double", 'mkdir -p "$(dirname "$1")"; printf "%s" $(( $0 * 2 )) > "$1"',
                             ["{{$.inputs.parameters['x']}}", "{{$.outputs.parameters['out'].output_file}}"],
                             inputs={"parameters": ir.parameters(x="NUMBER_INTEGER")},
                             outputs={"parameters": ir.parameters(out="NUMBER_INTEGER")})
    inner = ir.dag_component(
        "inner", {"double": ir.task("comp-double", parameters={"x": ir.pipeline_input("x")})},
        inputs={"parameters": ir.parameters(x="NUMBER_INTEGER")},
        outputs={"parameters": {"y": {"valueFromParameter": {"producerSubtask": "double",
                                                             "outputParameterKey": "out"}}}},
        output_definitions={"parameters": ir.parameters(y="NUMBER_INTEGER")})
    spec = ir.pipeline("nested", [double, inner, _check("NUMBER_INTEGER")], {"dag": {"tasks": {
        "inner": ir.task("comp-inner", parameters={"x": ir.const(3.0)}),
        "inner-2": ir.task("comp-inner", display="inner-2", parameters={"x": ir.output_of("inner", "y")}),
        "check": ir.task("comp-check-number_integer", display="check", parameters={"got": ir.output_of("inner-2", "y"),
                                                                  "want": ir.const("12")}),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    dags = {n["displayName"]: n for n in nodes.values() if n["type"] == "DAG"}
    assert dags["inner-2"]["outputs"] == {"parameters": [{"name": "y", "value": "12"}]}
    assert [n["phase"] for n in nodes.values() if n["displayName"] == "double"] == ["Succeeded", "Succeeded"]


def test_a_cel_condition_picks_the_branch_and_the_other_is_skipped(client: FlaskClient) -> None:
    pick = ir.sh_component("pick", WRITE_OUT, ["7", "{{$.outputs.parameters['out'].output_file}}"],
                           outputs={"parameters": ir.parameters(out="NUMBER_INTEGER")})
    yes = ir.sh_component("yes", "echo taken", [])
    no = ir.sh_component("no", "echo must not run; exit 1", [])
    channel = "pipelinechannel--pick-out"
    branch_inputs = {"parameters": {channel: {"parameterType": "NUMBER_INTEGER"}}}
    high = ir.dag_component("condition-1", {"yes": ir.task("comp-yes")}, inputs=branch_inputs)
    low = ir.dag_component("condition-2", {"no": ir.task("comp-no")}, inputs=branch_inputs)

    def branch(component: str, condition: str) -> dict:
        return ir.task(component, after=["pick"], parameters={channel: ir.output_of("pick", "out")},
                       triggerPolicy={"condition": condition})

    spec = ir.pipeline("branches", [pick, yes, no, high, low], {"dag": {"tasks": {
        "pick": ir.task("comp-pick"),
        "condition-1": branch("comp-condition-1", f"int(inputs.parameter_values['{channel}']) > 5"),
        "condition-2": branch("comp-condition-2", f"!(int(inputs.parameter_values['{channel}']) > 5)"),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    assert phases(nodes) == {"pick": "Succeeded", "yes": "Succeeded", "condition-2": "Skipped"}
    assert "evaluated false" in by_display(nodes)["condition-2"]["message"]


def test_the_exit_handler_runs_after_a_failed_body_and_sees_its_final_status(client: FlaskClient) -> None:
    fail = ir.sh_component("fail", "echo boom; exit 1", [])
    final = ir.sh_component(
        "final", 'echo "$0"; case "$0" in *\'"state":"FAILED"\'*) ;; *) exit 1;; esac',
        ["{{$.inputs.parameters['status']}}"],
        inputs={"parameters": {"status": {"parameterType": "TASK_FINAL_STATUS"}}})
    body = ir.dag_component("exit-handler-1", {"fail": ir.task("comp-fail")})
    spec = ir.pipeline("exit-handler", [fail, final, body], {"dag": {"tasks": {
        "exit-handler-1": ir.task("comp-exit-handler-1"),
        "final": ir.task("comp-final", after=["exit-handler-1"],
                         parameters={"status": {"taskFinalStatus": {"producerTask": "exit-handler-1"}}},
                         triggerPolicy={"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Failed", json.dumps(nodes, indent=1)
    assert phases(nodes) == {"fail": "Failed", "final": "Succeeded"}
    given = json.loads(by_display(nodes)["final"]["inputs"]["parameters"][0]["value"])
    assert given["state"] == "FAILED" and given["pipelineTaskName"] == "exit-handler-1"
    assert given["error"]["message"].startswith("child ")


def test_a_retried_task_succeeds_on_its_third_attempt(client: FlaskClient) -> None:
    flaky = ir.sh_component(
        "flaky", 'f=/var/tmp/kfp-backend-ir-retry-$0; n=$(( $(cat "$f" 2>/dev/null || echo 0) + 1 )); '
                 'echo $n > "$f"; [ $n -ge 3 ] || exit 1; rm -f "$f"; mkdir -p "$(dirname "$1")"; printf $n > "$1"',
        ["{{$.pipeline_job_uuid}}", "{{$.outputs.parameters['n'].output_file}}"],
        outputs={"parameters": ir.parameters(n="NUMBER_INTEGER")})
    spec = ir.pipeline("retry", [flaky, _check("NUMBER_INTEGER")], {"dag": {"tasks": {
        "flaky": ir.task("comp-flaky", retryPolicy={"maxRetryCount": 3, "backoffDuration": "0s",
                                                    "backoffFactor": 2.0}),
        "check": ir.task("comp-check-number_integer", display="check", parameters={"got": ir.output_of("flaky", "n"),
                                                                  "want": ir.const("3")}),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    retry = by_display(nodes)["flaky"]
    assert retry["type"] == "Retry" and retry["phase"] == "Succeeded"
    attempts = [nodes[child]["phase"] for child in retry["children"]]
    assert attempts == ["Failed", "Failed", "Succeeded"]
    assert by_display(nodes)["check"]["phase"] == "Succeeded"


def test_a_retried_task_fails_once_its_retries_are_spent(client: FlaskClient, tmp_path: Path) -> None:
    always = ir.sh_component("always", "exit 2", [])
    spec = ir.pipeline("retry-fail", [always], {"dag": {"tasks": {
        "always": ir.task("comp-always", retryPolicy={"maxRetryCount": 1}),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Failed"
    retry = by_display(nodes)["always"]
    assert [nodes[child]["phase"] for child in retry["children"]] == ["Failed", "Failed"]


def _loop_pipeline(items: dict, limit: int) -> dict:
    """make-list -> ParallelFor(items) { square } -> total over the collected squares."""
    make = ir.sh_component("make-list", WRITE_OUT, ["[1, 2, 3]", "{{$.outputs.parameters['out'].output_file}}"],
                           outputs={"parameters": ir.parameters(out="LIST")})
    square = ir.sh_component(
        "square", 'sleep 0.2; mkdir -p "$(dirname "$1")"; printf "%s" $(( $0 * $0 )) > "$1"',
        ["{{$.inputs.parameters['x']}}", "{{$.outputs.parameters['out'].output_file}}"],
        inputs={"parameters": ir.parameters(x="NUMBER_INTEGER")},
        outputs={"parameters": ir.parameters(out="NUMBER_INTEGER")})
    item = "pipelinechannel--loop-item"
    loop = ir.dag_component(
        "for-loop-1",
        {"square": ir.task("comp-square", parameters={"x": {"componentInputParameter": item, **items.get(
            "selector", {})}})},
        inputs={"parameters": {item: {"parameterType": "STRING"},
                               "pipelinechannel--make-list-out": {"parameterType": "LIST"}}},
        outputs={"parameters": {"pipelinechannel--square-out": {"valueFromParameter": {
            "producerSubtask": "square", "outputParameterKey": "out"}}}},
        output_definitions={"parameters": {"pipelinechannel--square-out": {"parameterType": "LIST"}}})
    return ir.pipeline("loop", [make, square, loop, _check("LIST")], {"dag": {"tasks": {
        "make-list": ir.task("comp-make-list"),
        "for-loop-1": ir.task(
            "comp-for-loop-1", after=["make-list"],
            parameters={"pipelinechannel--make-list-out": ir.output_of("make-list", "out")},
            parameterIterator={"itemInput": item, "items": items["items"]},
            iteratorPolicy={"parallelismLimit": limit}),
        "total": ir.task("comp-check-list", display="total", parameters={
            "got": ir.output_of("for-loop-1", "pipelinechannel--square-out"), "want": ir.const(items["want"])}),
    }}})


@pytest.mark.parametrize("items", [
    {"items": {"inputParameter": "pipelinechannel--make-list-out"}, "want": "[1,4,9]"},
    {"items": {"raw": '[{"v": 4}, {"v": 5}]'}, "want": "[16,25]",
     "selector": {"parameterExpressionSelector": 'parseJson(string_value)["v"]'}},
], ids=["upstream-list", "static-list-with-selector"])
def test_parallel_for_fans_out_and_collects(client: FlaskClient, items: dict) -> None:
    status, nodes = run_to_the_end(client, _loop_pipeline(items, limit=0))
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    group = next(n for n in nodes.values() if n["type"] == "TaskGroup")
    iterations = [nodes[child] for child in group["children"] if nodes[child]["type"] == "DAG"]
    assert [n["displayName"] for n in iterations] == [f"for-loop-1({i})" for i in range(len(json.loads(items["want"])))]
    assert by_display(nodes)["total"]["phase"] == "Succeeded"


def test_parallel_for_keeps_to_its_parallelism_limit(client: FlaskClient) -> None:
    status, nodes = run_to_the_end(client, _loop_pipeline(
        {"items": {"inputParameter": "pipelinechannel--make-list-out"}, "want": "[1,4,9]"}, limit=1))
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    squares = sorted((n["startedAt"], n["finishedAt"]) for n in nodes.values() if n["displayName"] == "square")
    assert len(squares) == 3
    # One at a time: each starts once the one before has finished.
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(squares))


def test_one_of_takes_the_output_of_the_branch_that_ran(client: FlaskClient) -> None:
    pick = ir.sh_component("pick", WRITE_OUT, ["7", "{{$.outputs.parameters['out'].output_file}}"],
                           outputs={"parameters": ir.parameters(out="NUMBER_INTEGER")})
    big = ir.sh_component("big", WRITE_OUT, ["big", "{{$.outputs.parameters['out'].output_file}}"],
                          outputs={"parameters": ir.parameters(out="STRING")})
    small = ir.sh_component("small", WRITE_OUT, ["small", "{{$.outputs.parameters['out'].output_file}}"],
                            outputs={"parameters": ir.parameters(out="STRING")})
    channel = "pipelinechannel--pick-out"
    inputs = {"parameters": {channel: {"parameterType": "NUMBER_INTEGER"}}}

    def branch(name: str, task: str) -> tuple[str, dict, None]:
        return ir.dag_component(
            name, {task: ir.task(f"comp-{task}")}, inputs=inputs,
            outputs={"parameters": {f"pipelinechannel--{task}-out": {"valueFromParameter": {
                "producerSubtask": task, "outputParameterKey": "out"}}}},
            output_definitions={"parameters": ir.parameters(**{f"pipelinechannel--{task}-out": "STRING"})})

    def conditional(component: str, condition: str) -> dict:
        return ir.task(component, parameters={channel: ir.pipeline_input(channel)},
                       triggerPolicy={"condition": condition})

    branches = ir.dag_component(
        "condition-branches-1",
        {"condition-2": conditional("comp-condition-2", f"int(inputs.parameter_values['{channel}']) > 5"),
         "condition-3": conditional("comp-condition-3", f"!(int(inputs.parameter_values['{channel}']) > 5)")},
        inputs=inputs,
        outputs={"parameters": {"pipelinechannel--size": {"valueFromOneof": {"parameterSelectors": [
            {"producerSubtask": "condition-2", "outputParameterKey": "pipelinechannel--big-out"},
            {"producerSubtask": "condition-3", "outputParameterKey": "pipelinechannel--small-out"}]}}}},
        output_definitions={"parameters": ir.parameters(**{"pipelinechannel--size": "STRING"})})
    spec = ir.pipeline("one-of", [pick, big, small, branch("condition-2", "big"), branch("condition-3", "small"),
                                  branches, _check()], {"dag": {"tasks": {
        "pick": ir.task("comp-pick"),
        "condition-branches-1": ir.task("comp-condition-branches-1",
                                        parameters={channel: ir.output_of("pick", "out")}),
        "check": ir.task("comp-check-string", display="check", parameters={
            "got": ir.output_of("condition-branches-1", "pipelinechannel--size"), "want": ir.const("big")}),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    assert phases(nodes) == {"pick": "Succeeded", "big": "Succeeded", "condition-3": "Skipped",
                             "check": "Succeeded"}


def test_artifacts_go_under_the_pipeline_root_the_spec_names(client: FlaskClient) -> None:
    write = ir.sh_component("write", 'mkdir -p "$(dirname "$0")"; echo hi > "$0"',
                            ["{{$.outputs.artifacts['data'].path}}"], outputs={"artifacts": ir.artifacts("data")})
    read = ir.sh_component("read", 'test "$(cat "$0")" = hi && case "$0" in /s3/bucket/root/*) ;; *) exit 1;; esac',
                           ["{{$.inputs.artifacts['data'].path}}"], inputs={"artifacts": ir.artifacts("data")})
    spec = ir.pipeline("rooted", [write, read], {"dag": {"tasks": {
        "write": ir.task("comp-write"),
        "read": ir.task("comp-read", artifacts={"data": ir.artifact_of("write", "data")})}}})
    spec["defaultPipelineRoot"] = "s3://bucket/root"
    status, nodes = run_to_the_end(client, spec)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    assert by_display(nodes)["write"]["outputs"]["artifacts"][0]["uri"].startswith("s3://bucket/root/")


def test_a_loop_item_of_the_wrong_type_fails_its_iteration_only(client: FlaskClient) -> None:
    echo = ir.sh_component("echo", 'echo "$0"', ["{{$.inputs.parameters['x']}}"],
                           inputs={"parameters": ir.parameters(x="NUMBER_INTEGER")})
    item = "pipelinechannel--loop-item"
    loop = ir.dag_component("for-loop-1", {"echo": ir.task("comp-echo", parameters={
        "x": ir.pipeline_input(item)})}, inputs={"parameters": {item: {"parameterType": "NUMBER_INTEGER"}}})
    spec = ir.pipeline("bad-item", [echo, loop], {"dag": {"tasks": {
        "for-loop-1": ir.task("comp-for-loop-1", parameterIterator={"itemInput": item,
                                                                    "items": {"raw": '[1, "x"]'}}),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Error", json.dumps(nodes, indent=1)
    iterations = {n["displayName"]: (n["type"], n["phase"]) for n in nodes.values()
                  if n["displayName"].startswith("for-loop-1(")}
    assert iterations == {"for-loop-1(0)": ("DAG", "Succeeded"), "for-loop-1(1)": ("Skipped", "Error")}
    failed = next(n for n in nodes.values() if n["displayName"] == "for-loop-1(1)")
    assert "is not a NUMBER_INTEGER" in failed["message"]


def test_an_f_string_of_pipeline_channels_takes_their_values(client: FlaskClient) -> None:
    """`f"{word}-{n}"` as the kfp compiler writes it: a constant naming extra task inputs (pipeline channels)
    that the component does not declare; the step gets the text with their values, and not the extras."""
    echo = ir.sh_component(
        "echo", 'printf "%s" "$0" > "$1"',  # no mkdir: the output file's directory exists, as under kfp
        ["{{$.inputs.parameters['text']}}", "{{$.outputs.parameters['out'].output_file}}"],
        inputs={"parameters": ir.parameters(text="STRING")}, outputs={"parameters": ir.parameters(out="STRING")})
    spec = ir.pipeline("f-string", [echo, _check()], {
        "inputDefinitions": {"parameters": ir.parameters(word=("STRING", "hey"), n=("NUMBER_INTEGER", 2))},
        "dag": {"tasks": {
            "echo": ir.task("comp-echo", parameters={
                "text": ir.const("{{$.inputs.parameters['pipelinechannel--word']}}-"
                                 "{{$.inputs.parameters['pipelinechannel--n']}}"),
                "pipelinechannel--word": ir.pipeline_input("word"),
                "pipelinechannel--n": ir.pipeline_input("n"),
            }),
            "check": ir.task("comp-check-string", display="check", parameters={
                "got": ir.output_of("echo", "out"), "want": ir.const("hey-2")}),
        }},
    })
    status, nodes = run_to_the_end(client, spec)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    assert phases(nodes)["check"] == "Succeeded"
