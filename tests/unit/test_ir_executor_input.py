"""The ExecutorInput of a KFP v2 task and its placeholders, typed parameters, and the outputs a step left."""

from __future__ import annotations

import json

import pytest

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.executor_input import (
    EXECUTOR_OUTPUT_FILE,
    PlaceholderError,
    RuntimeArtifact,
    TaskContext,
    build_executor_input,
    local_path,
    merge_outputs,
    resolve_command,
    substitute_context,
    substitute_inputs,
    typed_parameter,
)
from kfp_backend.workflow.ir.model import ArtifactSpec, ArtifactType, Interface, ParameterSpec

CONTEXT = TaskContext(job_name="job-abcde", job_uuid="run-1", task_name="train", task_uuid="node-1",
                      pipeline_root="minio://mlpipeline/v2/artifacts", create_time="2026-12-06T00:00:00Z")
INPUTS = Interface(
    parameters={"n": ParameterSpec("n", "NUMBER_INTEGER"), "word": ParameterSpec("word", "STRING"),
                "flag": ParameterSpec("flag", "BOOLEAN"), "items": ParameterSpec("items", "LIST"),
                "maybe": ParameterSpec("maybe", "STRING", optional=True)},
    artifacts={"data": ArtifactSpec("data", ArtifactType("system.Dataset"))},
)
OUTPUTS = Interface(
    parameters={"total": ParameterSpec("total", "NUMBER_INTEGER"), "text": ParameterSpec("text", "STRING")},
    artifacts={"model": ArtifactSpec("model", ArtifactType("system.Model", "0.0.1"))},
)
DATA = RuntimeArtifact("data", "minio://mlpipeline/v2/artifacts/run-1/node-0/data", "system.Dataset",
                       metadata={"rows": 3})
MODEL = RuntimeArtifact("model", "s3://bucket/run-1/node-1/model", "system.Model", "0.0.1")


def _executor_input() -> dict:
    return build_executor_input(INPUTS, OUTPUTS, {"n": 3, "word": "hi", "flag": True, "items": [1, "a"]},
                                {"data": [DATA]}, {"model": MODEL})


def test_the_executor_input_holds_typed_inputs_output_files_and_uris() -> None:
    executor_input = _executor_input()
    assert executor_input["inputs"]["parameterValues"] == {"n": 3, "word": "hi", "flag": True, "items": [1, "a"]}
    assert executor_input["inputs"]["artifacts"]["data"]["artifacts"][0] == {
        "name": "data", "type": {"schemaTitle": "system.Dataset"}, "uri": DATA.uri, "metadata": {"rows": 3}}
    assert executor_input["outputs"]["parameters"]["total"] == {"outputFile": "/tmp/kfp/outputs/parameters/total"}
    assert executor_input["outputs"]["artifacts"]["model"]["artifacts"][0]["uri"] == MODEL.uri
    assert executor_input["outputs"]["outputFile"] == EXECUTOR_OUTPUT_FILE


def test_every_placeholder_resolves() -> None:
    executor_input = _executor_input()
    argv = resolve_command([
        "{{$}}", "{{$.inputs.parameters['n']}}", "{{$.inputs.parameters['flag']}}",
        "{{$.inputs.parameters['items']}}", "--out={{$.outputs.parameters['total'].output_file}}",
        "{{$.inputs.artifacts['data'].path}}", "{{$.inputs.artifacts['data'].uri}}",
        "{{$.inputs.artifacts['data'].metadata}}", "{{$.inputs.artifacts['data'].metadata['rows']}}",
        "{{$.outputs.artifacts['model'].path}}", "{{$.pipeline_job_name}}/{{$.pipeline_job_uuid}}",
        "{{$.pipeline_task_name}}/{{$.pipeline_task_uuid}}",
    ], executor_input, CONTEXT)
    assert json.loads(argv[0]) == executor_input
    assert argv[1:] == [
        "3", "true", '[1,"a"]', "--out=/tmp/kfp/outputs/parameters/total",
        "/minio/mlpipeline/v2/artifacts/run-1/node-0/data", DATA.uri, '{"rows":3}', "3",
        "/s3/bucket/run-1/node-1/model", "job-abcde/run-1", "train/node-1",
    ]


def test_concat_and_if_present_expand() -> None:
    executor_input = _executor_input()
    parts = [
        '{"Concat": ["--n=", "{{$.inputs.parameters[\'n\']}}", "-", "{{$.inputs.parameters[\'word\']}}"]}',
        '{"IfPresent": {"InputName": "word", "Then": ["--word", "{{$.inputs.parameters[\'word\']}}"]}}',
        '{"IfPresent": {"InputName": "maybe", "Then": ["--maybe"], "Else": "--no-maybe"}}',
        '{"IfPresent": {"InputName": "maybe", "Then": ["--maybe"]}}',
    ]
    assert resolve_command(parts, executor_input, CONTEXT) == ["--n=3-hi", "--word", "hi", "--no-maybe"]


def test_a_placeholder_naming_nothing_is_an_error() -> None:
    with pytest.raises(PlaceholderError, match="no input parameter 'nope'"):
        resolve_command(["{{$.inputs.parameters['nope']}}"], _executor_input(), CONTEXT)
    with pytest.raises(PlaceholderError, match="unsupported placeholder"):
        resolve_command(["{{$.something_else}}"], _executor_input(), CONTEXT)


def test_constants_get_the_run_placeholders_only() -> None:
    assert substitute_context("/var/tmp/x-{{$.pipeline_job_uuid}}-{{$.pipeline_task_name}}", CONTEXT) == \
        "/var/tmp/x-run-1-train"
    assert substitute_context("{{$.inputs.parameters['n']}}", CONTEXT) == "{{$.inputs.parameters['n']}}"


def test_constants_take_the_values_of_the_inputs_they_name() -> None:
    values = {"pipelinechannel--root": "/var/tmp/g", "pipelinechannel--n": 3}
    text = "{{$.inputs.parameters['pipelinechannel--root']}}-{{$.inputs.parameters['pipelinechannel--n']}}"
    assert substitute_inputs(text, values) == "/var/tmp/g-3"
    assert substitute_inputs("{{$.inputs.parameters['other']}}", values) == "{{$.inputs.parameters['other']}}"


@pytest.mark.parametrize(("value", "declared", "expected"), [
    (3.0, "NUMBER_INTEGER", 3), ("3", "NUMBER_INTEGER", 3), (2, "NUMBER_DOUBLE", 2.0), ("True", "BOOLEAN", True),
    ("false", "BOOLEAN", False), ("[1, 2]", "LIST", [1, 2]), ('{"a": 1}', "STRUCT", {"a": 1}),
    ({"a": 1}, "STRING", {"a": 1}), ("x", "STRING", "x"),
])
def test_parameters_are_typed_as_declared(value: object, declared: str, expected: object) -> None:
    typed = typed_parameter(value, declared)
    assert typed == expected and type(typed) is type(expected)


@pytest.mark.parametrize(("value", "declared"), [(2.5, "NUMBER_INTEGER"), ("x", "NUMBER_DOUBLE"),
                                                 (1, "BOOLEAN"), ("{}", "LIST")])
def test_a_value_of_the_wrong_type_is_refused(value: object, declared: str) -> None:
    with pytest.raises(WorkflowError):
        typed_parameter(value, declared)


def test_outputs_merge_files_and_the_executor_output() -> None:
    merged = merge_outputs(
        OUTPUTS, {"total": "7", "text": "from file\n"},
        {"parameterValues": {"total": 8.0},
         "artifacts": {"model": {"artifacts": [{"name": "model", "uri": MODEL.uri, "metadata": {"acc": 0.5}}]}}},
        {"model": MODEL},
    )
    assert merged.parameters == {"total": 8, "text": "from file\n"}
    assert merged.artifacts["model"][0].metadata == {"acc": 0.5}
    with pytest.raises(WorkflowError, match="'total' was not written"):
        merge_outputs(OUTPUTS, {"text": "x"}, None, {"model": MODEL})


def test_uris_map_to_local_paths_as_kfp_does() -> None:
    assert local_path("gs://b/k") == "/gcs/b/k"
    assert local_path("s3://b/k") == "/s3/b/k"
    assert local_path("minio://b/k") == "/minio/b/k"
    assert local_path("/data/k") == "/data/k"
