"""The KFP v2 cache key and fingerprint: the ingredients upstream KFP's driver uses, hashed over the same
bytes (the expected fingerprints are the ones upstream's own cache tests expect for these keys)."""

from __future__ import annotations

from typing import Any

import pytest

from kfp_backend.workflow.ir.cache_key import cache_key, fingerprint, go_json
from kfp_backend.workflow.ir.executor_input import RuntimeArtifact
from kfp_backend.workflow.ir.model import ArtifactSpec, ArtifactType, Interface, ParameterSpec

MODEL_SCHEMA = ("title: kfp.Model\ntype: object\nproperties:\n  framework:\n    type: string\n"
                "  framework_version:\n    type: string\n")


def test_fingerprints_are_upstreams_for_the_same_key() -> None:
    full = {
        "inputArtifactNames": {"dataset_one": {"artifactNames": ["1"]}, "dataset_two": {"artifactNames": ["2"]}},
        "inputParameterValues": {"message": "Some string value", "num_steps": 5},
        "outputArtifactsSpec": {
            "model": {"name": "model", "type": {"instanceSchema": MODEL_SCHEMA}, "metadata": {"name": "model"}},
            "metrics": {"name": "metrics", "type": {"schemaTitle": "kfp.Metrics"}, "metadata": {"name": "metrics"}},
        },
        "outputParametersSpec": {"output_parameter_one": "STRING", "output_parameter_two": "INT"},
        "containerSpec": {"cmdArgs": ["sh", "ec", "test"], "image": "python:3.11"},
    }
    small = {
        "inputArtifactNames": {"dataset": {"artifactNames": ["10"]}},
        "outputParametersSpec": {"output_parameter": "DOUBLE"},
        "containerSpec": {"cmdArgs": ["sh", "ec", "run"], "image": "python:3.11"},
    }
    assert fingerprint(full) == "b498530c9016917298999ec0b01f364a180f8a3862bea0fa672a383ca3f22e4e"
    assert fingerprint(small) == "3d9a2a778fa3174c6cfc6e639c507c265b5f21ef6e5b1dd70b236462cc6da464"


@pytest.mark.parametrize(("value", "text"), [
    (5, "5"), (5.0, "5"), (0.1, "0.1"), (-2.5, "-2.5"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
    (1.5e-7, "1.5e-7"), (0.000001, "0.000001"), (True, "true"), (None, "null"),
    ("a<b>&\u2028\x01\n\"", '"a\\u003cb\\u003e\\u0026\\u2028\\u0001\\n\\""'), ("é", '"é"'),
    ({"b": [1, {"z": 1, "a": 2}], "a": ""}, '{"a":"","b":[1,{"a":2,"z":1}]}'),
])
def test_json_is_written_as_go_writes_it(value: Any, text: str) -> None:
    assert go_json(value) == text


def _key(**changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "inputs": Interface(parameters={"n": ParameterSpec("n", "NUMBER_INTEGER"), "s": ParameterSpec("s", "STRING")}),
        "outputs": Interface(parameters={"out": ParameterSpec("out", "STRING")},
                             artifacts={"model": ArtifactSpec("model", ArtifactType("system.Model", "0.0.1"))}),
        "image": "python:3.11", "command": ["sh", "-c", "run"], "env": (),
        "parameter_values": {"n": 3, "s": "x"},
        "input_artifact_names": {"data": ["minio://b/run/node/data"]},
        "output_artifacts": {"model": RuntimeArtifact("model", "", "system.Model", "0.0.1")},
    }
    arguments.update(changes)
    inputs, outputs = arguments.pop("inputs"), arguments.pop("outputs")
    return cache_key(inputs, outputs, **arguments)


def test_the_key_holds_upstreams_ingredients() -> None:
    assert _key() == {
        "inputArtifactNames": {"data": {"artifactNames": ["minio://b/run/node/data"]}},
        "inputParameterValues": {"n": 3, "s": "x"},
        "outputArtifactsSpec": {"model": {"name": "model",
                                          "type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}}},
        "outputParametersSpec": {"out": "STRING"},
        "containerSpec": {"image": "python:3.11", "cmdArgs": ["sh", "-c", "run"]},
    }
    assert _key(env=(("A", "1"),))["containerSpec"]["env"] == [{"name": "A", "value": "1"}]


@pytest.mark.parametrize("change", [
    {"parameter_values": {"n": 4, "s": "x"}},
    {"image": "python:3.12"},
    {"command": ["sh", "-c", "run2"]},
    {"env": (("A", "1"),)},
    {"input_artifact_names": {"data": ["minio://b/other/node/data"]}},
    {"output_artifacts": {"model": RuntimeArtifact("model", "", "system.Dataset", "0.0.1")}},
    {"outputs": Interface(parameters={"out": ParameterSpec("out", "NUMBER_INTEGER")},
                          artifacts={"model": ArtifactSpec("model", ArtifactType("system.Model", "0.0.1"))})},
], ids=["parameter", "image", "command", "env", "input-artifact", "output-artifact-type", "output-parameter-type"])
def test_a_changed_ingredient_changes_the_fingerprint(change: dict[str, Any]) -> None:
    assert fingerprint(_key(**change)) != fingerprint(_key())


def test_a_number_is_the_same_whatever_form_it_arrives_in() -> None:
    assert fingerprint(_key(parameter_values={"n": 3.0, "s": "x"})) == fingerprint(_key())


def test_cache_entries_are_kept_per_pipeline_name_and_namespace(tmp_path: Any) -> None:
    from kfp_backend.executor.artifacts import LocalArtifactStore
    from kfp_backend.executor.step_cache import StepCache

    cache = StepCache(tmp_path / "cache", LocalArtifactStore(tmp_path / "store"))
    outputs = {"parameters": {"out": "x"}, "artifacts": {}}
    cache.put("f" * 64, "pipe", "team-a", outputs, "run-1", "node-1")
    assert cache.get("f" * 64, "pipe", "team-a") == {"outputs": outputs, "run_id": "run-1", "node_id": "node-1"}
    assert cache.get("f" * 64, "pipe", "team-b") is None
    assert cache.get("f" * 64, "other-pipe", "team-a") is None
    assert cache.get("e" * 64, "pipe", "team-a") is None
