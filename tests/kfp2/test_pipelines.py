"""Pipelines and versions through the unchanged kfp 2.x client (v2beta1) against a live server, from pipelines
compiled at test time by kfp 2.17.3's compiler, and the same rows seen through v1beta1 (plain HTTP)."""

# No `from __future__ import annotations`: the kfp compiler reads the components' annotations as types.
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kfp_server_api.exceptions import ApiException

pytestmark = pytest.mark.kfp2


def compile_container_pipeline(path: Path) -> Path:
    from kfp import compiler, dsl

    @dsl.container_component
    def say(word: str) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image="python:3.11", command=["echo"], args=[word])

    @dsl.pipeline(name="say-twice", description="two container steps")
    def say_twice(word: str = "hello") -> None:
        first = say(word=word)
        say(word="again").after(first)

    compiler.Compiler().compile(say_twice, str(path))
    return path


def compile_lightweight_pipeline(path: Path) -> Path:
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11")
    def add(a: float, b: float) -> float:
        return a + b

    @dsl.pipeline(name="arithmetic")
    def arithmetic(a: float = 1.0, b: float = 2.0) -> float:
        return add(a=add(a=a, b=b).output, b=b).output

    compiler.Compiler().compile(arithmetic, str(path))
    return path


def error_body(error: ApiException, status: int) -> dict[str, Any]:
    assert error.status == status, error.body
    return json.loads(error.body)


def test_upload_list_version_and_delete(client: Any, server_url: str, unique: str, tmp_path: Path) -> None:
    container = compile_container_pipeline(tmp_path / "container.yaml")
    lightweight = compile_lightweight_pipeline(tmp_path / "lightweight.yaml")
    name = f"{unique}-pipeline"

    pipeline = client.upload_pipeline(str(container), pipeline_name=name, description="uploaded by kfp 2")
    assert pipeline.pipeline_id and pipeline.display_name == name and pipeline.description == "uploaded by kfp 2"
    assert pipeline.created_at.tzinfo is not None
    assert client.get_pipeline_id(name) == pipeline.pipeline_id
    assert client.get_pipeline_id(f"{unique}-nowhere") is None
    assert client.get_pipeline(pipeline.pipeline_id).display_name == name

    listed = client.list_pipelines(page_size=100, filter=json.dumps(
        {"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name", "stringValue": unique}]}))
    assert [p.pipeline_id for p in listed.pipelines] == [pipeline.pipeline_id] and listed.total_size == 1

    version = client.upload_pipeline_version(str(lightweight), f"{unique}-v2", pipeline_id=pipeline.pipeline_id,
                                             description="lightweight")
    assert version.pipeline_id == pipeline.pipeline_id and version.display_name == f"{unique}-v2"
    assert version.description == "lightweight"
    assert version.pipeline_spec == yaml.safe_load(lightweight.read_text())
    by_name = client.upload_pipeline_version(str(container), f"{unique}-v3", pipeline_name=name)
    assert by_name.pipeline_id == pipeline.pipeline_id

    versions = client.list_pipeline_versions(pipeline.pipeline_id, page_size=2, sort_by="created_at desc")
    assert versions.total_size == 3 and len(versions.pipeline_versions) == 2 and versions.next_page_token
    rest = client.list_pipeline_versions(pipeline.pipeline_id, page_token=versions.next_page_token)
    ids = {v.pipeline_version_id for v in versions.pipeline_versions + rest.pipeline_versions}
    assert ids == {pipeline.pipeline_id, version.pipeline_version_id, by_name.pipeline_version_id}
    first = client.get_pipeline_version(pipeline.pipeline_id, pipeline.pipeline_id)
    assert first.pipeline_spec == yaml.safe_load(container.read_text())

    # The same rows through v1beta1: the template is the uploaded file, byte for byte.
    v1 = requests.get(f"{server_url}/apis/v1beta1/pipelines/{pipeline.pipeline_id}/templates", timeout=30).json()
    assert v1 == {"template": container.read_text()}
    v1_version = requests.get(f"{server_url}/apis/v1beta1/pipeline_versions/{version.pipeline_version_id}/templates",
                              timeout=30).json()
    assert v1_version == {"template": lightweight.read_text()}

    # A pipeline with versions is deleted after its versions (upstream's rule without cascade).
    with pytest.raises(ApiException) as refused:
        client.delete_pipeline(pipeline.pipeline_id)
    assert "has existing pipeline versions" in error_body(refused.value, 400)["message"]
    for version_id in ids:
        assert client.delete_pipeline_version(pipeline.pipeline_id, version_id) in ({}, None)
    assert client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions is None
    client.delete_pipeline(pipeline.pipeline_id)
    assert client.get_pipeline_id(name) is None
    with pytest.raises(ApiException) as missing:
        client.get_pipeline(pipeline.pipeline_id)
    assert error_body(missing.value, 404)["code"] == 5


def test_upload_from_pipeline_func_and_bad_uploads(client: Any, unique: str, tmp_path: Path) -> None:
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def hello(name: str) -> str:
        return f"hello {name}"

    @dsl.pipeline(name="hello")
    def hello_pipeline(name: str = "world") -> None:
        hello(name=name)

    uploaded = client.upload_pipeline_from_pipeline_func(hello_pipeline, pipeline_name=f"{unique}-func")
    assert client.get_pipeline_id(f"{unique}-func") == uploaded.pipeline_id

    with pytest.raises(ApiException) as taken:
        client.upload_pipeline_from_pipeline_func(hello_pipeline, pipeline_name=f"{unique}-func")
    assert "already exist" in error_body(taken.value, 409)["error_message"]

    broken = tmp_path / "broken.yaml"
    broken.write_text("pipelineInfo: {name: broken}\nroot: {dag: {tasks: {}}}\n")
    with pytest.raises(ApiException) as invalid:
        client.upload_pipeline(str(broken), pipeline_name=f"{unique}-broken")
    assert "Invalid pipeline spec" in error_body(invalid.value, 400)["error_message"]
    assert client.get_pipeline_id(f"{unique}-broken") is None
