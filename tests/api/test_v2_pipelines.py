"""The v2beta1 PipelineService and PipelineUploadService over HTTP on every database, and KFP v2 pipeline specs
(IR) on v1beta1: uploads of YAML, JSON, multi-document YAML with a platform spec and archives; `pipeline_spec`
as a struct; names, filters, paging, cascade; bad input as 4xx JSON; one set of rows seen from both APIs."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from tests.api.test_v2_experiments import STATUS_TYPE, V2, WORKFLOW, multi_user, v2_error

__all__ = ["multi_user"]  # the fixture, shared with the experiments' tests

V1 = "/apis/v1beta1"
PIPELINES = f"{V2}/pipelines"
IR_YAML = """\
# A KFP v2 pipeline spec, as the kfp 2.x compiler writes it (comments kept: the template is the upload).
components:
  comp-say:
    executorLabel: exec-say
    inputDefinitions:
      parameters:
        word: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-say:
      container:
        image: python:3.11
        command: [echo]
        args: ['{{$.inputs.parameters[''word'']}}']
pipelineInfo:
  name: say-pipeline
root:
  dag:
    tasks:
      say:
        taskInfo: {name: say}
        componentRef: {name: comp-say}
        inputs:
          parameters:
            word: {componentInputParameter: word}
  inputDefinitions:
    parameters:
      word: {parameterType: STRING, defaultValue: hello, isOptional: true}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"""
PLATFORM_YAML = """\
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-say:
          nodeSelector: {labels: {disk: ssd}}
"""
IR = yaml.safe_load(IR_YAML)
PLATFORM = yaml.safe_load(PLATFORM_YAML.removeprefix("---\n"))


def upload(client: FlaskClient, filename: str, content: str | bytes, path: str = "upload", **query: str) -> Any:
    data = content.encode() if isinstance(content, str) else content
    return client.post(f"{PIPELINES}/{path}", query_string=query,
                       data={"uploadfile": (io.BytesIO(data), filename)}, content_type="multipart/form-data")


def ok(response: Any) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def upload_error(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error_message", "error_details"}, body
    return body["error_message"]


def versions(client: FlaskClient, pipeline_id: str, **query: Any) -> dict:
    return ok(client.get(f"{PIPELINES}/{pipeline_id}/versions", query_string=query))


def zip_of(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def tarball_of(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in entries.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def name_filter(operation: Any, key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": operation, "key": key, "string_value": value}]})


# -- uploads -------------------------------------------------------------------------------------------------


def test_upload_ir_yaml_and_read_it_through_both_apis(client: FlaskClient) -> None:
    pipeline = ok(upload(client, "say.yaml", IR_YAML, name="say", description="says a word"))
    assert set(pipeline) == {"pipeline_id", "display_name", "name", "description", "created_at"}
    assert pipeline["name"] == pipeline["display_name"] == "say" and pipeline["description"] == "says a word"
    pipeline_id = pipeline["pipeline_id"]
    assert ok(client.get(f"{PIPELINES}/{pipeline_id}")) == pipeline
    assert ok(client.get(f"{PIPELINES}/names/say")) == pipeline

    (version,) = versions(client, pipeline_id)["pipeline_versions"]
    assert version["pipeline_version_id"] == pipeline_id and version["pipeline_id"] == pipeline_id
    assert version["name"] == version["display_name"] == "say"
    assert version["description"] == "says a word"
    assert version["pipeline_spec"] == IR
    assert ok(client.get(f"{PIPELINES}/{pipeline_id}/versions/{pipeline_id}")) == version

    # v1beta1 sees the same rows: the template is the uploaded text, and an IR version has no parameters.
    v1 = ok(client.get(f"{V1}/pipelines/{pipeline_id}"))
    assert v1["name"] == "say" and "parameters" not in v1
    assert ok(client.get(f"{V1}/pipelines/{pipeline_id}/templates")) == {"template": IR_YAML}
    assert ok(client.get(f"{V1}/pipeline_versions/{pipeline_id}/templates")) == {"template": IR_YAML}


def test_platform_spec_is_a_second_document_and_the_v2_shape(client: FlaskClient) -> None:
    text = IR_YAML + PLATFORM_YAML
    pipeline = ok(upload(client, "with-platform.yaml", text))
    assert pipeline["name"] == "with-platform.yaml"  # no name: the file's, as upstream
    (version,) = versions(client, pipeline["pipeline_id"])["pipeline_versions"]
    assert version["pipeline_spec"] == {"pipeline_spec": IR, "platform_spec": PLATFORM}
    assert ok(client.get(f"{V1}/pipelines/{pipeline['pipeline_id']}/templates")) == {"template": text}


@pytest.mark.parametrize("filename, package", [
    ("say.json", json.dumps(IR).encode()),
    ("say.zip", zip_of({"pipeline.yaml": IR_YAML})),
    ("say.tar.gz", tarball_of({"pipeline.yaml": IR_YAML + PLATFORM_YAML})),
])
def test_ir_in_json_and_archives(client: FlaskClient, filename: str, package: bytes) -> None:
    pipeline_id = ok(upload(client, filename, package, name=filename))["pipeline_id"]
    (version,) = versions(client, pipeline_id)["pipeline_versions"]
    spec = version["pipeline_spec"]
    assert spec == IR or spec == {"pipeline_spec": IR, "platform_spec": PLATFORM}


def test_v1_upload_of_ir_and_argo_read_through_v2(client: FlaskClient) -> None:
    ir = ok(client.post(f"{V1}/pipelines/upload", query_string={"name": "v1-ir"},
                        data={"uploadfile": (io.BytesIO(IR_YAML.encode()), "x.yaml")}))
    assert ok(client.get(f"{PIPELINES}/{ir['id']}/versions/{ir['id']}"))["pipeline_spec"] == IR

    argo = ok(client.post(f"{V1}/pipelines/upload", query_string={"name": "v1-argo"},
                          data={"uploadfile": (io.BytesIO(WORKFLOW.encode()), "x.yaml")}))
    version = ok(client.get(f"{PIPELINES}/{argo['id']}/versions/{argo['id']}"))
    # As upstream: an Argo (v1) pipeline's pipeline_spec is its workflow, as a struct.
    assert version["pipeline_spec"] == yaml.safe_load(WORKFLOW)
    template = ok(client.get(f"{V1}/pipelines/{argo['id']}/templates"))["template"]
    assert template == json.dumps(yaml.safe_load(WORKFLOW), separators=(",", ":"))  # Argo: unchanged


def test_upload_version_and_names(client: FlaskClient) -> None:
    pipeline_id = ok(upload(client, "p.yaml", IR_YAML, display_name="shown"))["pipeline_id"]
    assert ok(client.get(f"{PIPELINES}/{pipeline_id}"))["name"] == "shown"
    version = ok(upload(client, "v.yaml", IR_YAML + PLATFORM_YAML, path="upload_version", pipelineid=pipeline_id,
                        name="second", description="two"))
    assert version["pipeline_id"] == pipeline_id and version["name"] == "second"
    assert version["description"] == "two"
    assert version["pipeline_spec"]["platform_spec"] == PLATFORM
    assert ok(client.get(f"{PIPELINES}/{pipeline_id}/versions/{version['pipeline_version_id']}")) == version
    same = ok(upload(client, "w.yaml", IR_YAML, path="upload_version", pipelineid=pipeline_id, name="third",
                     display_name="third"))
    assert same["display_name"] == "third"


@pytest.mark.parametrize("query, content, status, message", [
    ({}, "pipelineInfo: {name: x}\nroot: {dag: {tasks: {}}}\n", 400, "Invalid pipeline spec"),
    ({}, IR_YAML + "---\n{a: 1}\n", 400, "must be a platform spec"),
    ({}, IR_YAML.replace("comp-say}", "comp-nowhere}"), 400, "comp-nowhere"),
    ({"name": "a", "display_name": "b"}, IR_YAML, 400, "differ"),
    ({"tags": '{"team": "x"}'}, IR_YAML, 400, "tags are not supported"),
    ({}, "kind: Pod\n", 400, "Unsupported argo version"),
])
def test_bad_uploads_are_400(client: FlaskClient, query: dict, content: str, status: int, message: str) -> None:
    error = upload_error(upload(client, "bad.yaml", content, **query), status)
    assert message in error, error
    assert ok(client.get(PIPELINES)) == {}


def test_upload_refusals_are_upload_shaped(client: FlaskClient) -> None:
    assert "no such file" in upload_error(client.post(f"{PIPELINES}/upload", data={},
                                                      content_type="multipart/form-data"), 400)
    ok(upload(client, "p.yaml", IR_YAML, name="taken"))
    assert "already exist" in upload_error(upload(client, "p.yaml", IR_YAML, name="taken"), 409)
    assert "pipeline id" in upload_error(upload(client, "v.yaml", IR_YAML, path="upload_version"), 400)
    assert "not found" in upload_error(upload(client, "v.yaml", IR_YAML, path="upload_version",
                                              pipelineid="nowhere"), 404)


# -- create --------------------------------------------------------------------------------------------------


def test_create_pipeline_alone_then_versions_inline_and_by_url(client: FlaskClient, tmp_path) -> None:
    pipeline = ok(client.post(PIPELINES, json={"display_name": "empty", "description": "no versions yet"}))
    pipeline_id = pipeline["pipeline_id"]
    assert pipeline["name"] == "empty"
    assert versions(client, pipeline_id) == {}
    assert ok(client.get(f"{V1}/pipelines/{pipeline_id}/templates")) == {}  # no default version yet

    inline = ok(client.post(f"{PIPELINES}/{pipeline_id}/versions",
                            json={"name": "inline", "pipeline_spec": {"pipeline_spec": IR, "platform_spec": PLATFORM}}))
    assert inline["pipeline_spec"] == {"pipeline_spec": IR, "platform_spec": PLATFORM}
    assert ok(client.get(f"{V1}/pipelines/{pipeline_id}"))["default_version"]["id"] == inline["pipeline_version_id"]

    package = tmp_path / "by-url.yaml"
    package.write_text(IR_YAML)
    by_url = ok(client.post(f"{PIPELINES}/{pipeline_id}/versions",
                            json={"pipelineId": pipeline_id, "displayName": "by-url",
                                  "packageUrl": {"pipelineUrl": package.as_uri()}}))
    assert by_url["package_url"] == {"pipeline_url": package.as_uri()} and by_url["pipeline_spec"] == IR
    listed = versions(client, pipeline_id, sort_by="created_at desc", page_size=1)
    assert listed["total_size"] == 2 and len(listed["pipeline_versions"]) == 1 and listed["next_page_token"]


def test_create_pipeline_and_version(client: FlaskClient, tmp_path) -> None:
    package = tmp_path / "pkg.yaml"
    package.write_text(IR_YAML)
    by_url = ok(client.post(f"{PIPELINES}/create", json={
        "pipeline": {"name": "created", "description": "d"},
        "pipeline_version": {"package_url": {"pipeline_url": package.as_uri()}},
    }))
    (version,) = versions(client, by_url["pipeline_id"])["pipeline_versions"]
    assert version["name"] == "created" and version["description"] == "d" and version["pipeline_spec"] == IR

    inline = ok(client.post(f"{PIPELINES}/create", json={
        "pipeline": {"display_name": "inline"}, "pipeline_version": {"pipeline_spec": IR},
    }))
    (version,) = versions(client, inline["pipeline_id"])["pipeline_versions"]
    assert version["pipeline_spec"] == IR
    assert ok(client.get(f"{V1}/pipelines/{inline['pipeline_id']}/templates"))["template"] == json.dumps(IR)


@pytest.mark.parametrize("path, body, message", [
    ("", {"description": "no name"}, "name is required"),
    ("", {"name": "x", "unknown": 1}, "unknown"),
    ("", {"name": "x", "display_name": "y"}, "differ"),
    ("", {"name": "x", "tags": {"a": "b"}}, "tags are not supported"),
    ("", [], "must be a JSON object"),
    ("/create", {"pipeline": {"name": "x"}}, "pipeline_version is missing"),
    ("/create", {"pipeline_version": {"pipeline_spec": IR}}, "pipeline is missing"),
    ("/create", {"pipeline": {"name": "x"}, "pipeline_version": {}}, "Pipeline URL is empty"),
    ("/create", {"pipeline": {"name": "x"}, "pipeline_version": {"pipeline_spec": {"a": 1}}}, "pipelineInfo and root"),
    ("/create", {"pipeline": {"name": "x"}, "pipeline_version": {"pipeline_spec": IR,
                                                                 "package_url": {"pipeline_url": "http://h/x"}}},
     "not both"),
    ("/create", {"pipeline": {"name": "x"}, "pipeline_version": {"pipeline_spec": "text"}}, "Not a valid mapping"),
])
def test_bad_creates_are_400(client: FlaskClient, path: str, body: Any, message: str) -> None:
    error = v2_error(client.post(f"{PIPELINES}{path}", json=body), 400, 3)
    assert message in error["message"], error
    assert ok(client.get(PIPELINES)) == {}


def test_bad_version_creates(client: FlaskClient) -> None:
    pipeline_id = ok(client.post(PIPELINES, json={"name": "parent"}))["pipeline_id"]
    path = f"{PIPELINES}/{pipeline_id}/versions"
    assert "Pipeline name is empty" in v2_error(client.post(path, json={"pipeline_spec": IR}), 400, 3)["message"]
    assert "differs" in v2_error(client.post(path, json={"pipeline_id": "other", "name": "v", "pipeline_spec": IR}),
                                 400, 3)["message"]
    bad = {"pipelineInfo": {"name": "x"}, "root": {"dag": {"tasks": {}}}}
    assert "Invalid pipeline spec" in v2_error(client.post(path, json={"name": "v", "pipeline_spec": bad}),
                                               400, 3)["message"]
    v2_error(client.post(f"{PIPELINES}/nowhere/versions", json={"name": "v", "pipeline_spec": IR}), 404, 5)
    ok(client.post(path, json={"name": "v", "pipeline_spec": IR}))
    v2_error(client.post(path, json={"name": "v", "pipeline_spec": IR}), 409, 6)
    assert versions(client, pipeline_id)["total_size"] == 1


# -- get, list, delete ---------------------------------------------------------------------------------------


def test_list_filter_sort_and_page_with_v2_field_names(client: FlaskClient) -> None:
    ids = {name: ok(upload(client, "p.yaml", IR_YAML, name=name))["pipeline_id"] for name in ("b", "a", "c")}
    page = ok(client.get(PIPELINES, query_string={"sort_by": "display_name desc", "page_size": 2}))
    assert [p["name"] for p in page["pipelines"]] == ["c", "b"] and page["total_size"] == 3
    rest = ok(client.get(PIPELINES, query_string={"page_token": page["next_page_token"]}))
    assert [p["name"] for p in rest["pipelines"]] == ["a"]
    # The kfp 2.x client's get_pipeline_id: EQUALS (1) on display_name.
    found = ok(client.get(PIPELINES, query_string={"filter": name_filter(1, "display_name", "a")}))
    assert [p["pipeline_id"] for p in found["pipelines"]] == [ids["a"]]
    found = ok(client.get(PIPELINES, query_string={"filter": name_filter("EQUALS", "pipeline_id", ids["b"])}))
    assert [p["name"] for p in found["pipelines"]] == ["b"]
    assert ok(client.get(PIPELINES, query_string={"filter": name_filter("IS_SUBSTRING", "name", "z")})) == {}
    by_name = ok(client.get(PIPELINES, query_string={"sort_by": "name"}))
    assert [p["name"] for p in by_name["pipelines"]] == ["a", "b", "c"]
    for bad in ({"filter": "{"}, {"sort_by": "nothing"}, {"page_token": "garbage"},
                {"filter": json.dumps({"predicates": [{"op": 1, "key": "name", "string_value": "a"}]})}):
        v2_error(client.get(PIPELINES, query_string=bad), 400, 3)
    version_page = versions(client, ids["a"], filter=name_filter(1, "display_name", "a"))
    assert [v["pipeline_version_id"] for v in version_page["pipeline_versions"]] == [ids["a"]]
    v2_error(client.get(f"{PIPELINES}/{ids['a']}/versions", query_string={"sort_by": "nothing"}), 400, 3)


def test_not_found_is_404(client: FlaskClient) -> None:
    pipeline_id = ok(upload(client, "p.yaml", IR_YAML, name="here"))["pipeline_id"]
    for path in (f"{PIPELINES}/nowhere", f"{PIPELINES}/names/nowhere", f"{PIPELINES}/nowhere/versions",
                 f"{PIPELINES}/{pipeline_id}/versions/nowhere", f"{PIPELINES}/nowhere/versions/{pipeline_id}"):
        body = v2_error(client.get(path), 404, 5)
        assert body["details"][0]["@type"] == STATUS_TYPE
    v2_error(client.delete(f"{PIPELINES}/nowhere"), 404, 5)
    v2_error(client.delete(f"{PIPELINES}/nowhere/versions/{pipeline_id}"), 404, 5)
    v2_error(client.delete(f"{PIPELINES}/{pipeline_id}/versions/nowhere"), 404, 5)
    v2_error(client.put(f"{PIPELINES}/{pipeline_id}"), 501, 12, detail=False)


def test_delete_refuses_a_pipeline_with_versions_unless_cascade(client: FlaskClient) -> None:
    pipeline_id = ok(upload(client, "p.yaml", IR_YAML, name="kept"))["pipeline_id"]
    second = ok(upload(client, "v.yaml", IR_YAML, path="upload_version", pipelineid=pipeline_id, name="v2"))
    body = v2_error(client.delete(f"{PIPELINES}/{pipeline_id}"), 400, 3)
    assert "has existing pipeline versions" in body["message"]
    v2_error(client.delete(f"{PIPELINES}/{pipeline_id}", query_string={"cascade": "maybe"}), 400, 3)
    assert ok(client.delete(f"{PIPELINES}/{pipeline_id}/versions/{second['pipeline_version_id']}")) == {}
    assert ok(client.delete(f"{PIPELINES}/{pipeline_id}/versions/{pipeline_id}")) == {}
    assert ok(client.delete(f"{PIPELINES}/{pipeline_id}")) == {}
    v2_error(client.get(f"{PIPELINES}/{pipeline_id}"), 404, 5)

    cascaded = ok(upload(client, "p.yaml", IR_YAML, name="cascaded"))["pipeline_id"]
    assert ok(client.delete(f"{PIPELINES}/{cascaded}", query_string={"cascade": "true"})) == {}
    assert ok(client.get(PIPELINES)) == {}


def test_v1_delete_still_cascades(client: FlaskClient) -> None:
    pipeline_id = ok(upload(client, "p.yaml", IR_YAML, name="v1-delete"))["pipeline_id"]
    assert ok(client.delete(f"{V1}/pipelines/{pipeline_id}")) == {}
    assert ok(client.get(PIPELINES)) == {}


def test_v1_create_by_url_of_ir(client: FlaskClient, tmp_path) -> None:
    package = tmp_path / "by-url.yaml"
    package.write_text(IR_YAML + PLATFORM_YAML)
    pipeline = ok(client.post(f"{V1}/pipelines", json={"name": "v1-url", "url": {"pipeline_url": package.as_uri()}}))
    assert ok(client.get(f"{V1}/pipelines/{pipeline['id']}/templates")) == {"template": IR_YAML + PLATFORM_YAML}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"pipelineInfo": {"name": "x"}, "root": {}}))
    version = client.post(f"{V1}/pipeline_versions", json={
        "name": "broken", "package_url": {"pipeline_url": broken.as_uri()},
        "resource_references": [{"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "OWNER"}]})
    assert version.status_code == 400 and "Invalid pipeline spec" in version.get_json()["error"]
    zipped = tmp_path / "ir.zip"
    zipped.write_bytes(zip_of({"pipeline.yaml": IR_YAML}))
    version = ok(client.post(f"{V1}/pipeline_versions", json={
        "name": "zipped", "package_url": {"pipeline_url": zipped.as_uri()},
        "resource_references": [{"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "OWNER"}]}))
    assert ok(client.get(f"{V1}/pipeline_versions/{version['id']}/templates")) == {"template": IR_YAML}
    assert ok(client.get(f"{PIPELINES}/{pipeline['id']}/versions/{version['id']}"))["pipeline_spec"] == IR


def test_multi_user_namespaces(multi_user: tuple[FlaskClient, dict[str, dict[str, str]]]) -> None:
    client, headers = multi_user
    alice, bob = headers["alice"], headers["bob"]
    form = {"uploadfile": (io.BytesIO(IR_YAML.encode()), "p.yaml")}
    response = client.post(f"{PIPELINES}/upload", query_string={"name": "ours", "namespace": "team-a"}, data=form,
                           headers=alice, content_type="multipart/form-data")
    pipeline = ok(response)
    assert pipeline["namespace"] == "team-a"
    one = f"{PIPELINES}/{pipeline['pipeline_id']}"
    listed = ok(client.get(PIPELINES, query_string={"namespace": "team-a"}, headers=alice))
    assert [p["name"] for p in listed["pipelines"]] == ["ours"]
    assert ok(client.get(f"{PIPELINES}/names/ours", query_string={"namespace": "team-a"}, headers=alice)) == pipeline
    v2_error(client.get(PIPELINES, query_string={"namespace": "team-a"}), 401, 16)
    v2_error(client.get(PIPELINES, query_string={"namespace": "team-a"}, headers=bob), 403, 7)
    for method, path in (("GET", one), ("GET", f"{one}/versions"), ("GET", f"{one}/versions/{pipeline['pipeline_id']}"),
                         ("DELETE", one)):
        v2_error(client.open(path, method=method, headers=bob), 403, 7)
    v2_error(client.post(PIPELINES, json={"name": "theirs", "namespace": "team-b"}, headers=alice), 403, 7)
    assert ok(client.delete(one, query_string={"cascade": "true"}, headers=alice)) == {}


def test_argo_upload_through_v2_is_a_v1_pipeline(client: FlaskClient) -> None:
    """As upstream's server: an Argo Workflow (kfp 1.x) is accepted on v2beta1 too, and reads back the same."""
    pipeline = ok(upload(client, "argo.yaml", WORKFLOW, name="argo"))
    (version,) = versions(client, pipeline["pipeline_id"])["pipeline_versions"]
    assert version["pipeline_spec"] == yaml.safe_load(WORKFLOW)
    template = ok(client.get(f"{V1}/pipelines/{pipeline['pipeline_id']}/templates"))["template"]
    assert json.loads(template) == yaml.safe_load(WORKFLOW)


def test_multi_user_refusals_are_worded_as_upstreams_v2_server_words_them(
        multi_user: tuple[FlaskClient, dict[str, dict[str, str]]]) -> None:
    """Every refusal of a namespace keeps 403 and the PermissionDenied message, inside the context chain of
    upstream's v2 handler; the error body is grpc-gateway v2's (the uploads: the upload server's shape)."""
    client, headers = multi_user
    alice, bob = headers["alice"], headers["bob"]

    def refused(response: Any) -> tuple[str, str]:
        body = v2_error(response, 403, 7)
        external = body["details"][0]["message"]
        assert external.startswith("User 'bob' is not authorized with reason: ") and "Namespace:team-a," in external
        return body["message"], f"PermissionDenied: {external}: Unauthorized access"

    def check(ns: str, pipeline: str = "") -> str:
        return f"Failed to access pipeline {pipeline}. Check if you have access to namespace {ns}"

    form = {"uploadfile": (io.BytesIO(IR_YAML.encode()), "p.yaml")}
    pipeline = ok(client.post(f"{PIPELINES}/upload", query_string={"name": "ours", "namespace": "team-a"}, data=form,
                              headers=alice, content_type="multipart/form-data"))
    pid = pipeline["pipeline_id"]
    (version,) = ok(client.get(f"{PIPELINES}/{pid}/versions", headers=alice))["pipeline_versions"]
    vid = version["pipeline_version_id"]

    message, leaf = refused(client.post(PIPELINES, json={"display_name": "x", "namespace": "team-a"}, headers=bob))
    assert message == ("Failed to create a pipeline due to server error: Failed to create a pipeline due to "
                       "authorization error. Check if you have write permissions to namespace team-a: "
                       f"{check('team-a')}: {leaf}")
    message, leaf = refused(client.post(f"{PIPELINES}/create", headers=bob, json={
        "pipeline": {"display_name": "x", "namespace": "team-a"},
        "pipeline_version": {"display_name": "x", "pipeline_spec": IR}}))
    assert message == f"Failed to create a pipeline: {check('team-a')}: {leaf}"
    message, leaf = refused(client.get(f"{PIPELINES}/names/ours", query_string={"namespace": "team-a"}, headers=bob))
    assert message == ("Failed to get a pipeline with name ours and namespace team-a. Check error stack.: Failed to "
                       "fetch a pipeline due to authorization error. Check if you have read permission to namespace "
                       f"team-a: {check('team-a')}: {leaf}")
    message, leaf = refused(client.post(f"{PIPELINES}/{pid}/versions", headers=bob,
                                        json={"display_name": "v2", "pipeline_spec": IR}))
    assert message == ("Failed to create a pipeline version. Check error stack: Failed to create a pipeline version "
                       f"due authorization error for pipeline id {pid}: {check('team-a', pid)}: {leaf}")
    message, leaf = refused(client.get(f"{PIPELINES}/{pid}/versions/{vid}", headers=bob))
    assert message == (f"Failed to get a pipeline version {vid}: Failed to get a pipeline version due to "
                       f"authorization error for pipeline version id {vid}: {check('team-a', pid)}: {leaf}")
    message, leaf = refused(client.get(f"{PIPELINES}/{pid}/versions", headers=bob))
    assert message == (f"Failed to list pipeline versions for pipeline {pid}: Failed to list pipeline versions due "
                       "to authorization error. Check if you have read permission to namespace team-a: "
                       f"{check('team-a')}: {leaf}")
    message, leaf = refused(client.delete(f"{PIPELINES}/{pid}/versions/{vid}", headers=bob))
    assert message == (f"Failed to delete a pipeline version id {vid} under pipeline id {pid}. Check error stack: "
                       f"Failed to delete a pipeline version id {vid} due to authorization error for pipeline id "
                       f"{pid}: {check('team-a', pid)}: {leaf}")

    # The uploads answer in the upload server's shape, with its contexts (a 403, see docs/compatibility.md).
    message = upload_error(client.post(f"{PIPELINES}/upload", query_string={"name": "x", "namespace": "team-a"},
                                       data={"uploadfile": (io.BytesIO(IR_YAML.encode()), "p.yaml")}, headers=bob,
                                       content_type="multipart/form-data"), 403)
    assert message.startswith("Failed to create a pipeline due to authorization error: Authorization Failure: "
                              "PermissionDenied: User 'bob' is not authorized"), message
    message = upload_error(client.post(f"{PIPELINES}/upload_version", query_string={"pipelineid": pid, "name": "x"},
                                       data={"uploadfile": (io.BytesIO(IR_YAML.encode()), "p.yaml")}, headers=bob,
                                       content_type="multipart/form-data"), 403)
    assert message.startswith("Failed to create a pipeline version due to authorization error: Authorization "
                              "Failure: PermissionDenied: User 'bob' is not authorized"), message
    # Nothing of team-a changed; an unknown version is still the usual 404 in grpc-gateway v2's body.
    assert [v["pipeline_version_id"] for v in versions_of(client, pid, alice)] == [vid]
    v2_error(client.get(f"{PIPELINES}/{pid}/versions/no-such-version", headers=bob), 404, 5)


def test_multi_user_calls_naming_no_namespace_use_the_shared_pipelines(
        multi_user: tuple[FlaskClient, dict[str, dict[str, str]]]) -> None:
    """A pipeline call that names no namespace acts on the shared pipelines, which every caller may use in
    multi-user mode: no 400, as upstream's v2 server by default (it can be configured to require one)."""
    client, headers = multi_user
    alice, bob = headers["alice"], headers["bob"]
    shared = ok(client.post(f"{PIPELINES}/upload", query_string={"name": "shared"}, headers=alice,
                            data={"uploadfile": (io.BytesIO(IR_YAML.encode()), "p.yaml")},
                            content_type="multipart/form-data"))
    assert shared.get("namespace", "") == ""  # protojson leaves an empty string out
    created = ok(client.post(PIPELINES, json={"display_name": "empty"}, headers=bob))
    assert created.get("namespace", "") == ""
    listed = ok(client.get(PIPELINES, headers=bob))
    assert sorted(p["display_name"] for p in listed["pipelines"]) == ["empty", "shared"]
    assert ok(client.get(f"{PIPELINES}/names/shared", headers=bob))["pipeline_id"] == shared["pipeline_id"]
    version = ok(client.post(f"{PIPELINES}/{shared['pipeline_id']}/versions", headers=bob,
                             json={"display_name": "v2", "pipeline_spec": IR}))
    assert len(versions_of(client, shared["pipeline_id"], bob)) == 2
    assert ok(client.delete(f"{PIPELINES}/{shared['pipeline_id']}/versions/{version['pipeline_version_id']}",
                            headers=alice)) == {}
    assert ok(client.delete(f"{PIPELINES}/{created['pipeline_id']}", headers=alice)) == {}


def versions_of(client: FlaskClient, pipeline_id: str, caller: dict[str, str]) -> list[dict]:
    return ok(client.get(f"{PIPELINES}/{pipeline_id}/versions", headers=caller))["pipeline_versions"]
