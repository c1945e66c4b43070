"""Pipelines and pipeline versions through the unchanged kfp 1.8.22 client against a live server.

Uploads are our own DSL pipelines compiled at test time (YAML, JSON, zip and tar.gz packages) and the
upstream test resources (good ones must be accepted, broken ones refused with a 4xx).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_server_api.exceptions import ApiException

from tests.e2e.helpers import api_exception, collect_pages, error_text, name_contains
from tests.e2e.pipelines import (
    EXPECTED_PARAMETERS,
    PIPELINES,
    compile_pipeline,
    tar_gz_package,
    zip_package,
)

pytestmark = pytest.mark.e2e

MISSING_ID = "00000000-0000-4000-8000-000000000000"
ARGUMENTS_PARAMETERS = [{"name": "param1", "value": "hello"}, {"name": "param2"}]


def parameters_of(api_object: Any) -> list[dict[str, str]]:
    """The object's parameters as plain dicts without the unset `value` keys."""
    return [
        {key: value for key, value in parameter.to_dict().items() if value is not None}
        for parameter in api_object.parameters or []
    ]


def references_of(api_object: Any) -> list[tuple[str, str, str]]:
    return sorted(
        (reference.key.type, reference.key.id, reference.relationship)
        for reference in api_object.resource_references or []
    )


def workflow_in(package: Path) -> dict:
    """The workflow a package holds, picked the way the server documents: pipeline.yaml, else the only YAML."""
    name = package.name
    if name.endswith((".zip", ".tar.gz", ".tgz")):
        if name.endswith(".zip"):
            with zipfile.ZipFile(package) as archive:
                names = archive.namelist()
                chosen = "pipeline.yaml" if "pipeline.yaml" in names else names[0]
                return yaml.safe_load(archive.read(chosen))
        with tarfile.open(package, "r:gz") as archive:
            files: dict[str, bytes] = {}
            try:
                for member in archive:  # some upstream tarballs end in a header Python cannot read
                    extracted = archive.extractfile(member) if member.isfile() else None
                    if extracted is not None:
                        files[member.name] = extracted.read()
            except tarfile.ReadError:
                pass
            return yaml.safe_load(files.get("pipeline.yaml") or next(iter(files.values())))
    return yaml.safe_load(package.read_text())


def assert_template(template_response: Any, package: Path) -> None:
    assert template_response.template, "the template response is empty"
    assert yaml.safe_load(template_response.template) == workflow_in(package)


def assert_fresh_pipeline(pipeline: Any, name: str, parameters: list[dict[str, str]], description: str | None = None):
    """A just-uploaded pipeline: its implicit first version shares id, name, created_at and parameters."""
    assert pipeline.id
    assert pipeline.name == name
    assert pipeline.description == description
    assert isinstance(pipeline.created_at, datetime)
    assert parameters_of(pipeline) == parameters
    assert pipeline.url is None
    assert pipeline.error is None
    assert pipeline.resource_references is None
    version = pipeline.default_version
    assert version is not None
    assert version.id == pipeline.id
    assert version.name == name
    assert version.created_at == pipeline.created_at
    assert parameters_of(version) == parameters
    assert references_of(version) == [("PIPELINE", pipeline.id, "OWNER")]


# --- uploads of our own compiled pipelines ---------------------------------------------------------------


@pytest.mark.parametrize("key", list(PIPELINES))
def test_upload_compiled_pipeline(kfp_client, unique, tmp_path, key):
    package = compile_pipeline(key, tmp_path / f"{key}.yaml")
    name = f"{unique}-{key}"
    uploaded = kfp_client.upload_pipeline(str(package), pipeline_name=name, description=f"compiled {key}")
    assert_fresh_pipeline(uploaded, name, EXPECTED_PARAMETERS[key], description=f"compiled {key}")

    assert kfp_client.get_pipeline(uploaded.id).to_dict() == uploaded.to_dict()
    assert kfp_client.get_pipeline_id(name) == uploaded.id
    assert_template(kfp_client.pipelines.get_template(id=uploaded.id), package)
    assert_template(kfp_client.pipelines.get_pipeline_version_template(version_id=uploaded.id), package)
    version = kfp_client.pipelines.get_pipeline_version(version_id=uploaded.id)
    assert version.to_dict() == uploaded.default_version.to_dict()


@pytest.mark.parametrize(
    "package_kind",
    ["compiler.zip", "compiler.tar.gz", "compiler.tgz", "yml", "json", "zip-other-entry-name",
     "zip-pipeline-yaml-among-others", "tar.gz-pipeline-yaml-after-component"],
)
def test_upload_compiled_package(kfp_client, unique, tmp_path, package_kind):
    source = compile_pipeline("arithmetic", tmp_path / "source.yaml")
    component = "name: whalesay\nimplementation:\n  container:\n    image: alpine\n"
    if package_kind.startswith("compiler."):
        package = compile_pipeline("arithmetic", tmp_path / f"arithmetic.{package_kind.removeprefix('compiler.')}")
    elif package_kind == "yml":
        package = tmp_path / "arithmetic.yml"
        shutil.copy(source, package)
    elif package_kind == "json":
        package = tmp_path / "arithmetic.json"
        package.write_text(json.dumps(yaml.safe_load(source.read_text()), indent=1))
    elif package_kind == "zip-other-entry-name":
        package = zip_package(source, tmp_path / "arithmetic.zip", entry_name="my-arithmetic.yaml")
    elif package_kind == "zip-pipeline-yaml-among-others":
        package = zip_package(source, tmp_path / "arithmetic.zip", extra={"component.yaml": component})
    else:
        package = tar_gz_package(source, tmp_path / "arithmetic.tar.gz", extra={"component.yaml": component})

    name = f"{unique}-{package_kind}"
    uploaded = kfp_client.upload_pipeline(str(package), pipeline_name=name)
    assert_fresh_pipeline(uploaded, name, EXPECTED_PARAMETERS["arithmetic"])
    # (Each compilation stamps its own time in an annotation: compare with the package's own workflow.)
    assert_template(kfp_client.pipelines.get_template(id=uploaded.id), package)
    if not package_kind.startswith("compiler."):
        assert workflow_in(package) == yaml.safe_load(source.read_text())


def test_upload_without_name_takes_the_file_name(kfp_client, unique, tmp_path):
    package = compile_pipeline("container-op", tmp_path / f"{unique}.yaml")
    uploaded = kfp_client.upload_pipeline(str(package))
    assert uploaded.name == f"{unique}.yaml"  # the file name, extension included
    assert uploaded.description is None
    assert kfp_client.get_pipeline_id(f"{unique}.yaml") == uploaded.id

    archive = compile_pipeline("container-op", tmp_path / f"{unique}.tar.gz")
    assert kfp_client.upload_pipeline(str(archive)).name == f"{unique}.tar.gz"


# --- the upstream test resources -------------------------------------------------------------------------

GOOD_UPSTREAM_FILES = {
    "backend-test-resources/hello-world.yaml": [],
    "backend-test-resources/arguments-parameters.yaml": ARGUMENTS_PARAMETERS,
    "backend-test-resources/long-running.yaml": [],
    "backend-test-resources/loops.yaml": [],
    "backend-test-resources/arguments.pipeline.zip": ARGUMENTS_PARAMETERS,
    "upload-fixtures/arguments-parameters.yaml": ARGUMENTS_PARAMETERS,
    "upload-fixtures/patched-arguments-parameters.yaml": [{"name": "param1", "value": "new-hello"},
                                                         {"name": "param2"}],
    "upload-fixtures/arguments_tarball/arguments.tar.gz": ARGUMENTS_PARAMETERS,
    "upload-fixtures/arguments_tarball/arguments-version.tar.gz": ARGUMENTS_PARAMETERS,
    "upload-fixtures/arguments_zip/arguments-parameters.zip": ARGUMENTS_PARAMETERS,
    "upload-fixtures/pipeline_plus_component/pipeline.yaml": ARGUMENTS_PARAMETERS,
    "upload-fixtures/pipeline_plus_component/pipeline_plus_component.zip": ARGUMENTS_PARAMETERS,
    "upload-fixtures/pipeline_plus_component/pipeline_plus_component.tar.gz": ARGUMENTS_PARAMETERS,
    # No pipeline.yaml inside: the first entry, "arguments-parameters 2.yaml", is the pipeline (as upstream decides;
    # the "__MACOSX/._arguments-parameters 2.yaml" resource fork after it is never looked at).
    "backend-test-resources/arguments.pipeline.broken_file.zip": ARGUMENTS_PARAMETERS,
}

BROKEN_UPSTREAM_FILES = [
    "upload-fixtures/invalid-workflow.yaml",
    "upload-fixtures/empty_tarball/empty.tar.gz",
    "upload-fixtures/empty_zip/empty.zip",
    "upload-fixtures/malformated_tarball.tar.gz",
    "upload-fixtures/malformated_zip.zip",
    "upload-fixtures/malformed_zip2.zip",
    "upload-fixtures/non_yaml_tarball/non_yaml_tarball.tar.gz",
    "upload-fixtures/non_yaml_zip/non_yaml_file.zip",
    "upload-fixtures/unknown_format.foo",
]


@pytest.fixture(scope="session")
def upstream_resources(shared_dir: Path) -> Path:
    return shared_dir / "reference" / "upstream-test-resources"


@pytest.mark.parametrize("relative", list(GOOD_UPSTREAM_FILES))
def test_upload_upstream_resource(kfp_client, unique, upstream_resources, relative):
    package = upstream_resources / relative
    name = f"{unique}-{package.name}"
    uploaded = kfp_client.upload_pipeline(str(package), pipeline_name=name)
    assert_fresh_pipeline(uploaded, name, GOOD_UPSTREAM_FILES[relative])
    assert kfp_client.get_pipeline(uploaded.id).to_dict() == uploaded.to_dict()
    assert_template(kfp_client.pipelines.get_template(id=uploaded.id), package)

    # The same file is as good as a version of another pipeline.
    version = kfp_client.upload_pipeline_version(str(package), f"{unique}-version", pipeline_id=uploaded.id)
    assert parameters_of(version) == GOOD_UPSTREAM_FILES[relative]
    assert_template(kfp_client.pipelines.get_pipeline_version_template(version_id=version.id), package)


@pytest.mark.parametrize("relative", BROKEN_UPSTREAM_FILES)
def test_broken_upstream_resource_is_refused(kfp_client, unique, upstream_resources, relative):
    package = upstream_resources / relative
    name = f"{unique}-broken"
    body = api_exception(lambda: kfp_client.upload_pipeline(str(package), pipeline_name=name), 400)
    assert set(body) <= {"error_message", "error_details"} and body["error_message"], body
    assert kfp_client.get_pipeline_id(name) is None

    parent = kfp_client.upload_pipeline(
        str(upstream_resources / "backend-test-resources/hello-world.yaml"), pipeline_name=f"{unique}-parent"
    )
    body = api_exception(
        lambda: kfp_client.upload_pipeline_version(str(package), f"{unique}-v", pipeline_id=parent.id), 400
    )
    assert body["error_message"], body
    assert kfp_client.list_pipeline_versions(parent.id).total_size == 1


@pytest.mark.parametrize("relative", ["backend-test-resources/v2-hello-world.json"])
def test_v2_ir_upload_is_listed_and_its_template_returned_as_uploaded(kfp_client, unique, upstream_resources,
                                                                     shared_dir, relative):
    """KFP v2 pipeline specs (IR) are accepted on v1beta1, as KFP 2.x servers accept them: the pipeline is listed,
    reports no parameters, and its template is the uploaded text (JSON here, YAML from the kfp 2.x compiler)."""
    for package in (upstream_resources / relative, shared_dir / "pipelines-v2" / "container_component.yaml"):
        name = f"{unique}-{package.name}"
        uploaded = kfp_client.upload_pipeline(str(package), pipeline_name=name)
        assert parameters_of(uploaded) == []
        assert kfp_client.get_pipeline_id(name) == uploaded.id
        listed = kfp_client.list_pipelines(page_size=200, filter=name_contains(name)).pipelines
        assert [pipeline.id for pipeline in listed] == [uploaded.id]
        uploaded_text = package.read_text()
        assert kfp_client.pipelines.get_template(id=uploaded.id).template == uploaded_text
        version = kfp_client.upload_pipeline_version(str(package), f"{unique}-ir-version", pipeline_id=uploaded.id)
        assert kfp_client.pipelines.get_pipeline_version_template(version_id=version.id).template == uploaded_text


def test_broken_v2_ir_refusal_says_why(kfp_client, unique, tmp_path):
    package = tmp_path / "broken-ir.yaml"
    package.write_text("pipelineInfo: {name: broken}\nroot: {dag: {tasks: {}}}\n")
    body = api_exception(lambda: kfp_client.upload_pipeline(str(package), pipeline_name=unique), 400)
    assert "Invalid pipeline spec" in error_text(body), body


# --- versions ----------------------------------------------------------------------------------------------


def test_pipeline_versions_lifecycle(kfp_client, unique, tmp_path):
    first = compile_pipeline("arithmetic", tmp_path / "arithmetic.yaml")
    second = compile_pipeline("required-parameter", tmp_path / "required.yaml")
    third = compile_pipeline("loop-and-condition", tmp_path / "loop.zip")

    name = f"{unique}-versioned"
    pipeline = kfp_client.upload_pipeline(str(first), pipeline_name=name)
    # created_at has whole seconds, and the fallback default below is "the most recent remaining version".
    time.sleep(1.05)

    v2 = kfp_client.upload_pipeline_version(str(second), f"{unique}-v2", pipeline_id=pipeline.id,
                                            description="second version")
    assert v2.id != pipeline.id
    assert v2.name == f"{unique}-v2"
    assert v2.description == "second version"
    assert isinstance(v2.created_at, datetime)
    assert parameters_of(v2) == EXPECTED_PARAMETERS["required-parameter"]
    assert references_of(v2) == [("PIPELINE", pipeline.id, "OWNER")]
    assert kfp_client.pipelines.get_pipeline_version(version_id=v2.id).to_dict() == v2.to_dict()

    # By pipeline name: the client resolves the id with get_pipeline_id().
    v3 = kfp_client.upload_pipeline_version(str(third), f"{unique}-v3", pipeline_name=name)
    assert references_of(v3) == [("PIPELINE", pipeline.id, "OWNER")]
    assert parameters_of(v3) == EXPECTED_PARAMETERS["loop-and-condition"]

    # Each new version becomes the default one; the pipeline's own fields stay as uploaded.
    current = kfp_client.get_pipeline(pipeline.id)
    assert current.default_version.id == v3.id
    assert current.name == name
    assert current.created_at == pipeline.created_at
    assert_template(kfp_client.pipelines.get_template(id=pipeline.id), third)
    assert_template(kfp_client.pipelines.get_pipeline_version_template(version_id=pipeline.id), first)
    assert_template(kfp_client.pipelines.get_pipeline_version_template(version_id=v2.id), second)
    assert_template(kfp_client.pipelines.get_pipeline_version_template(version_id=v3.id), third)

    listed = kfp_client.list_pipeline_versions(pipeline.id, page_size=10)
    assert listed.total_size == 3
    assert {version.id for version in listed.versions} == {pipeline.id, v2.id, v3.id}

    # Deleting the default version falls back to the most recent remaining one.
    assert kfp_client.delete_pipeline_version(v3.id) == {}
    api_exception(lambda: kfp_client.pipelines.get_pipeline_version(version_id=v3.id), 404)
    api_exception(lambda: kfp_client.pipelines.get_pipeline_version_template(version_id=v3.id), 404)
    api_exception(lambda: kfp_client.delete_pipeline_version(v3.id), 404)
    assert kfp_client.get_pipeline(pipeline.id).default_version.id == v2.id
    assert_template(kfp_client.pipelines.get_template(id=pipeline.id), second)

    # A non-default version goes without touching the default.
    kfp_client.delete_pipeline_version(pipeline.id)
    assert kfp_client.get_pipeline(pipeline.id).default_version.id == v2.id
    assert [v.id for v in kfp_client.list_pipeline_versions(pipeline.id).versions] == [v2.id]

    # The last version goes too: the pipeline stays, without default version or template.
    kfp_client.delete_pipeline_version(v2.id)
    orphan = kfp_client.get_pipeline(pipeline.id)
    assert orphan.default_version is None
    assert kfp_client.pipelines.get_template(id=pipeline.id).template is None
    empty = kfp_client.list_pipeline_versions(pipeline.id)
    assert empty.versions is None and not empty.total_size and empty.next_page_token is None

    # And the pipeline can get versions again.
    v4 = kfp_client.upload_pipeline_version(str(first), f"{unique}-v4", pipeline_id=pipeline.id)
    assert kfp_client.get_pipeline(pipeline.id).default_version.id == v4.id


def test_delete_pipeline_deletes_its_versions(kfp_client, unique, tmp_path):
    package = compile_pipeline("container-op", tmp_path / "p.yaml")
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-doomed")
    version = kfp_client.upload_pipeline_version(str(package), f"{unique}-v", pipeline_id=pipeline.id)
    survivor = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-survivor")

    assert kfp_client.delete_pipeline(pipeline.id) == {}
    body = api_exception(lambda: kfp_client.get_pipeline(pipeline.id), 404)
    assert error_text(body).endswith(f"Pipeline {pipeline.id} not found.")
    api_exception(lambda: kfp_client.pipelines.get_template(id=pipeline.id), 404)
    api_exception(lambda: kfp_client.pipelines.get_pipeline_version(version_id=version.id), 404)
    api_exception(lambda: kfp_client.pipelines.get_pipeline_version(version_id=pipeline.id), 404)
    api_exception(lambda: kfp_client.list_pipeline_versions(pipeline.id), 404)
    api_exception(lambda: kfp_client.delete_pipeline(pipeline.id), 404)
    with pytest.raises(ApiException) as late:  # upstream: 400; this server: 404 (an unknown id)
        kfp_client.upload_pipeline_version(str(package), f"{unique}-late", pipeline_id=pipeline.id)
    assert late.value.status in (400, 404)
    assert f"Pipeline {pipeline.id} not found." in json.loads(late.value.body)["error_message"]
    assert kfp_client.get_pipeline_id(f"{unique}-doomed") is None
    assert [p.id for p in kfp_client.list_pipelines(filter=name_contains(unique)).pipelines] == [survivor.id]

    # The name is free again.
    again = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-doomed")
    assert again.id != pipeline.id


def test_unknown_ids(kfp_client):
    body = api_exception(lambda: kfp_client.get_pipeline(MISSING_ID), 404)
    assert body["details"][0]["error_message"] == f"Pipeline {MISSING_ID} not found."
    api_exception(lambda: kfp_client.pipelines.get_pipeline_version(version_id=MISSING_ID), 404)
    api_exception(lambda: kfp_client.pipelines.get_template(id=MISSING_ID), 404)
    api_exception(lambda: kfp_client.pipelines.get_pipeline_version_template(version_id=MISSING_ID), 404)
    api_exception(lambda: kfp_client.delete_pipeline(MISSING_ID), 404)
    api_exception(lambda: kfp_client.delete_pipeline_version(MISSING_ID), 404)
    api_exception(lambda: kfp_client.list_pipeline_versions(MISSING_ID), 404)
    assert kfp_client.get_pipeline_id(f"no-such-pipeline-{MISSING_ID}") is None


# --- duplicates --------------------------------------------------------------------------------------------


def test_duplicate_names_are_409(kfp_client, unique, tmp_path):
    package = compile_pipeline("container-op", tmp_path / "p.yaml")
    name = f"{unique}-dup"
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name=name)

    body = api_exception(lambda: kfp_client.upload_pipeline(str(package), pipeline_name=name), 409)
    assert "already exist" in body["error_message"]
    assert kfp_client.get_pipeline_id(name) == pipeline.id

    kfp_client.upload_pipeline_version(str(package), f"{unique}-v", pipeline_id=pipeline.id)
    body = api_exception(
        lambda: kfp_client.upload_pipeline_version(str(package), f"{unique}-v", pipeline_id=pipeline.id), 409
    )
    assert "already exist" in body["error_message"]
    # The implicit first version carries the pipeline's name.
    api_exception(lambda: kfp_client.upload_pipeline_version(str(package), name, pipeline_id=pipeline.id), 409)
    assert kfp_client.list_pipeline_versions(pipeline.id).total_size == 2

    # Version names are unique per pipeline only.
    other = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-other")
    kfp_client.upload_pipeline_version(str(package), f"{unique}-v", pipeline_id=other.id)


def test_upload_version_to_unknown_pipeline_name(kfp_client, unique, tmp_path):
    package = compile_pipeline("container-op", tmp_path / "p.yaml")
    # get_pipeline_id() finds nothing, so the client sends no pipelineid at all.
    body = api_exception(
        lambda: kfp_client.upload_pipeline_version(str(package), "v", pipeline_name=f"{unique}-missing"), 400
    )
    assert "Please specify a pipeline id" in body["error_message"]


# --- listing -----------------------------------------------------------------------------------------------


def _sort_key(item: Any) -> tuple:
    return item.created_at, item.id


def test_list_pipelines_paging_and_sorting(kfp_client, unique, tmp_path):
    package = compile_pipeline("container-op", tmp_path / "p.yaml")
    names = [f"{unique}-training", f"{unique}-prediction", f"{unique}-moonshot", f"{unique}-analysis"]
    created = {}
    for description, name in zip("dcba", names, strict=True):
        created[name] = kfp_client.upload_pipeline(str(package), pipeline_name=name, description=description)
    only_mine = name_contains(unique)

    def pages(sort_by: str, page_size: int = 3) -> list[list[Any]]:
        found, totals = collect_pages(
            lambda token: kfp_client.list_pipelines(
                page_token=token, page_size=page_size, sort_by=sort_by, filter=only_mine
            ),
            "pipelines",
        )
        assert totals == [4] * len(found), totals
        return found

    def names_of(found: list[list[Any]]) -> list[list[str]]:
        return [[item.name for item in page] for page in found]

    training, prediction, moonshot, analysis = names
    assert names_of(pages("name")) == [[analysis, moonshot, prediction], [training]]
    assert names_of(pages("name desc")) == [[training, prediction, moonshot], [analysis]]
    assert names_of(pages("description")) == [[analysis, moonshot, prediction], [training]]
    assert names_of(pages("name", page_size=2)) == [[analysis, moonshot], [prediction, training]]
    assert names_of(pages("name", page_size=4)) == [[analysis, moonshot, prediction, training]]

    for sort_by, descending in (("created_at", False), ("", False), ("created_at desc", True)):
        found = pages(sort_by, page_size=3)
        assert [len(page) for page in found] == [3, 1]
        flat = [item for page in found for item in page]
        assert flat == sorted(flat, key=_sort_key, reverse=descending)
        assert {item.id for item in flat} == {p.id for p in created.values()}

    # Listed pipelines look exactly like fetched ones.
    listed = kfp_client.list_pipelines(filter=name_contains(prediction), page_size=10)
    assert [p.to_dict() for p in listed.pipelines] == [kfp_client.get_pipeline(created[prediction].id).to_dict()]

    body = api_exception(lambda: kfp_client.list_pipelines(sort_by="unknownfield"), 400)
    assert 'Invalid sorting field: "unknownfield"' in error_text(body)


def test_get_pipeline_id_requires_a_unique_exact_name(kfp_client, unique, tmp_path):
    package = compile_pipeline("container-op", tmp_path / "p.yaml")
    short = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}")
    longer = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-longer")
    assert kfp_client.get_pipeline_id(unique) == short.id
    assert kfp_client.get_pipeline_id(f"{unique}-longer") == longer.id
    assert kfp_client.get_pipeline_id(unique.upper() + "-absent") is None


def test_list_pipeline_versions_paging_and_sorting(kfp_client, unique, tmp_path):
    package = compile_pipeline("container-op", tmp_path / "p.yaml")
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-a-pipeline")
    suffixes = ["training", "prediction", "moonshot", "sequential"]
    versions = [pipeline] + [
        kfp_client.upload_pipeline_version(str(package), f"{unique}-{suffix}", pipeline_id=pipeline.id)
        for suffix in suffixes
    ]
    # A version of another pipeline never shows up here.
    other = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-other")
    kfp_client.upload_pipeline_version(str(package), f"{unique}-zzz", pipeline_id=other.id)

    def pages(sort_by: str, page_size: int = 3) -> list[list[Any]]:
        found, totals = collect_pages(
            lambda token: kfp_client.list_pipeline_versions(
                pipeline.id, page_token=token, page_size=page_size, sort_by=sort_by
            ),
            "versions",
        )
        assert totals == [5] * len(found), totals
        return found

    def names_of(found: list[list[Any]]) -> list[list[str]]:
        return [[item.name.removeprefix(f"{unique}-") for item in page] for page in found]

    assert names_of(pages("name")) == [["a-pipeline", "moonshot", "prediction"], ["sequential", "training"]]
    assert names_of(pages("name desc")) == [["training", "sequential", "prediction"], ["moonshot", "a-pipeline"]]
    assert names_of(pages("name", page_size=2)) == [
        ["a-pipeline", "moonshot"], ["prediction", "sequential"], ["training"]
    ]
    for sort_by, descending in (("created_at", False), ("", False), ("created_at desc", True)):
        found = pages(sort_by)
        assert [len(page) for page in found] == [3, 2]
        flat = [item for page in found for item in page]
        assert flat == sorted(flat, key=_sort_key, reverse=descending)
        assert {item.id for item in flat} == {v.id for v in versions}

    body = api_exception(lambda: kfp_client.list_pipeline_versions(pipeline.id, sort_by="unknownfield"), 400)
    assert 'Invalid sorting field: "unknownfield"' in error_text(body)
