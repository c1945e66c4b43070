"""Lightweight Python components (kfp 2.x `@dsl.component`) executed in-process: the pipeline is compiled at
test time by the kfp 2.x SDK (`tests.kfp2_python`), its steps run `python3 -m kfp.dsl.executor_main` with
the `{{$}}` ExecutorInput, and their outputs (return values, NamedTuples, artifacts with metadata,
metrics) come back from the executor output file as the kfp launcher reads them; collected artifacts reach
a `List[Dataset]` input."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests.ir_pipelines import RUNS, by_display, phases, wait_for
from tests.kfp2_python import require_kfp2_bin

PIPELINE = '''
from typing import List, NamedTuple
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output


@dsl.component(base_image="python:3.11")
def make(n: int, scale: float, flag: bool, tags: list, conf: dict, data: Output[Dataset],
         model: Output[Model], metrics: Output[Metrics]) -> NamedTuple("Made", [("total", int), ("label", str)]):
    assert isinstance(n, int) and isinstance(scale, float) and flag is True, (n, scale, flag)
    assert tags == ["a", 1] and conf == {"k": "v"}, (tags, conf)
    with open(data.path, "w") as f:
        f.write("\\n".join(str(i) for i in range(n)))
    data.metadata["rows"] = n
    with open(model.path, "w") as f:
        f.write("weights")
    model.metadata["framework"] = "none"
    metrics.log_metric("accuracy", 0.75)
    return NamedTuple("Made", [("total", int), ("label", str)])(n * 2, "made-%d" % n)


@dsl.component(base_image="python:3.11")
def use(total: int, label: str, data: Input[Dataset], model: Input[Model], metrics: Input[Metrics]) -> float:
    import sys
    assert "step-envs" in sys.prefix, sys.prefix  # the server's prepared environment, not another python3
    assert total == 8 and label == "made-4", (total, label)
    with open(data.path) as f:
        assert f.read().splitlines() == ["0", "1", "2", "3"]
    assert data.metadata["rows"] in (4, 4.0), data.metadata
    assert model.metadata["framework"] == "none" and open(model.path).read() == "weights"
    assert metrics.metadata["accuracy"] == 0.75, metrics.metadata
    assert data.uri.startswith("minio://mlpipeline/v2/artifacts/"), data.uri
    return total / 16


@dsl.component(base_image="python:3.11")
def square(x: int) -> int:
    return x * x


@dsl.component(base_image="python:3.11")
def add_up(values: list, half: float) -> str:
    assert sorted(values) == [1, 4, 9] and half == 0.5, (values, half)
    return "sum=%d" % sum(values)


@dsl.component(base_image="python:3.11")
def part(i: int, out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write("part %d" % i)
    out.metadata["i"] = i


@dsl.component(base_image="python:3.11")
def join(parts: Input[List[Dataset]]) -> str:
    texts = sorted(open(p.path).read() for p in parts)
    assert texts == ["part 1", "part 2"], texts
    assert sorted(p.metadata["i"] for p in parts) == [1, 2]
    return ",".join(texts)


@dsl.pipeline(name="python-components")
def pipeline(n: int = 4):
    made = make(n=n, scale=1.0, flag=True, tags=["a", 1], conf={"k": "v"})
    used = use(total=made.outputs["total"], label=made.outputs["label"], data=made.outputs["data"],
               model=made.outputs["model"], metrics=made.outputs["metrics"])
    with dsl.ParallelFor([1, 2, 3]) as x:
        squared = square(x=x)
    add_up(values=dsl.Collected(squared.output), half=used.output)
    with dsl.ParallelFor([1, 2], parallelism=1) as i:
        parted = part(i=i)
    join(parts=dsl.Collected(parted.outputs["out"]))


compiler.Compiler().compile(pipeline, OUT)
'''


# A ParallelFor over a list of artifacts (`artifactIterator`): a sub-pipeline's `Input[List[Dataset]]`,
# given the artifacts a first loop collected; each iteration reads one, with its metadata.
ARTIFACT_ITERATOR = '''
from typing import List
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11")
def part(i: int, out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write("part %d" % i)
    out.metadata["i"] = i


@dsl.component(base_image="python:3.11")
def read(data: Input[Dataset]) -> str:
    text = open(data.path).read()
    assert text == "part %d" % data.metadata["i"], (text, data.metadata)
    assert data.uri.startswith("minio://mlpipeline/v2/artifacts/"), data.uri
    return text


@dsl.pipeline(name="each")
def each(datasets: Input[List[Dataset]]) -> List[str]:
    with dsl.ParallelFor(datasets, parallelism=2) as dataset:
        r = read(data=dataset)
    return dsl.Collected(r.output)


@dsl.component(base_image="python:3.11")
def check(texts: list) -> str:
    assert sorted(texts) == ["part 1", "part 2", "part 3"], texts
    return ",".join(sorted(texts))


@dsl.pipeline(name="artifact-iterator")
def pipeline():
    with dsl.ParallelFor([1, 2, 3]) as i:
        parted = part(i=i)
    each_one = each(datasets=dsl.Collected(parted.outputs["out"]))
    check(texts=each_one.output)


compiler.Compiler().compile(pipeline, OUT)
'''


def _compile(tmp_path_factory: pytest.TempPathFactory, source: str) -> str:
    """`source` (a pipeline written to OUT) compiled by the kfp 2.x SDK."""
    python = require_kfp2_bin() / "python3"
    directory = tmp_path_factory.mktemp("compiled")
    out = directory / "pipeline.yaml"
    script = directory / "pipeline.py"  # a file: the SDK reads the components' source back
    script.write_text(f"OUT = {str(out)!r}\n" + textwrap.dedent(source))
    done = subprocess.run([str(python), str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out.read_text()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PIPELINE, compiled by the kfp 2.x SDK."""
    return _compile(tmp_path_factory, PIPELINE)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    # No kfp 2.x python3 on PATH: the steps must run with the environment the server prepares.
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


def test_python_components_pass_parameters_artifacts_and_metrics(client: FlaskClient, compiled: str) -> None:
    response = client.post(RUNS, json={"name": "python", "pipeline_spec": {"workflow_manifest": compiled}})
    assert response.status_code == 200, response.get_data(as_text=True)
    status, nodes = wait_for(client, response.get_json()["run"]["id"], timeout=120)
    summary = {n["displayName"]: (n["phase"], n.get("message", "")) for n in nodes.values()}
    assert status == "Succeeded", json.dumps(summary, indent=1)
    assert {name: phase for name, phase in phases(nodes).items() if not name.startswith("for-loop")} == {
        "make": "Succeeded", "use": "Succeeded", "square": "Succeeded", "add-up": "Succeeded",
        "part": "Succeeded", "join": "Succeeded"}
    made = by_display(nodes)["make"]["outputs"]
    assert {p["name"]: p["value"] for p in made["parameters"]} == {"total": "8", "label": "made-4"}
    assert sorted(a["name"] for a in made["artifacts"]) == ["data", "metrics", "model"]
    assert by_display(nodes)["use"]["outputs"]["parameters"] == [{"name": "Output", "value": "0.5"}]
    assert by_display(nodes)["add-up"]["outputs"]["parameters"] == [{"name": "Output", "value": "sum=14"}]
    assert by_display(nodes)["join"]["outputs"]["parameters"] == [{"name": "Output", "value": "part 1,part 2"}]
    # metrics.log_metric: the run's v1 metrics.
    run = client.get(f"{RUNS}/{response.get_json()['run']['id']}").get_json()["run"]
    assert run["metrics"] == [{"name": "accuracy", "node_id": by_display(nodes)["make"]["id"], "number_value": 0.75,
                               "format": "RAW"}]


def test_the_steps_need_an_environment_with_kfp(compiled: str) -> None:
    """The compiled steps begin with a pip install of kfp, which the prepared environment satisfies."""
    assert "python3 -m pip install" in compiled and "kfp.dsl.executor_main" in compiled


def test_a_parallel_for_over_a_list_of_artifacts(client: FlaskClient, tmp_path_factory: pytest.TempPathFactory) -> None:
    compiled = _compile(tmp_path_factory, ARTIFACT_ITERATOR)
    assert "artifactIterator" in compiled
    response = client.post(RUNS, json={"name": "artifact-iterator", "pipeline_spec": {"workflow_manifest": compiled}})
    assert response.status_code == 200, response.get_data(as_text=True)
    status, nodes = wait_for(client, response.get_json()["run"]["id"], timeout=120)
    summary = {n["displayName"]: (n["phase"], n.get("message", "")) for n in nodes.values()}
    assert status == "Succeeded", json.dumps(summary, indent=1)
    reads = [n for n in nodes.values() if n["displayName"] == "read"]
    assert len(reads) == 3 and all(n["phase"] == "Succeeded" for n in reads)
    loop = next(n for n in nodes.values() if n["type"] == "TaskGroup" and n["displayName"] == "for-loop-1"
                and "each" in n["name"])
    assert len(loop["children"]) == 3
    assert by_display(nodes)["check"]["outputs"]["parameters"] == [
        {"name": "Output", "value": "part 1,part 2,part 3"}]
