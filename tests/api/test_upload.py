"""PipelineUploadService: /pipelines/upload and /pipelines/upload_version (multipart `uploadfile`).

Errors of these two endpoints have the upload body shape `{"error_message", "error_details"}`.
The helpers here are shared with test_pipelines.py and test_pipeline_versions.py.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from kfp_backend.app import create_app

API = "/apis/v1beta1"
MAX_UPLOAD_BYTES = 32 << 20
MISSING_ID = "00000000-0000-4000-8000-000000000000"
UPLOAD_ERROR_KEYS = {"error_message", "error_details"}


def workflow_yaml(
    prefix: str = "tiny",
    parameters: dict[str, str | None] | None = None,
    *,
    image: str = "alpine:3.19",
) -> str:
    """A small valid Argo Workflow; `parameters` maps names to defaults (None: no default)."""
    parameters = {"p": "v"} if parameters is None else parameters
    lines = [
        "apiVersion: argoproj.io/v1alpha1",
        "kind: Workflow",
        "metadata:",
        f"  generateName: {prefix}-",
        "spec:",
        "  entrypoint: main",
    ]
    if parameters:
        lines += ["  arguments:", "    parameters:"]
        for name, value in parameters.items():
            lines.append(f"    - name: {name}")
            if value is not None:
                lines.append(f"      value: {json.dumps(value)}")
    lines += [
        "  templates:",
        "  - name: main",
        "    container:",
        f"      image: {image}",
        "      command: [echo, hi]",
    ]
    return "\n".join(lines) + "\n"


def zip_bytes(entries: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def tar_gz_bytes(entries: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in entries.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload(client, filename: str | None, content: str | bytes = b"", endpoint: str = "upload", **query: str):
    """POST a package to an upload endpoint; filename None sends no `uploadfile` part."""
    data: dict[str, Any] = {}
    if filename is not None:
        raw = content.encode() if isinstance(content, str) else content
        data["uploadfile"] = (io.BytesIO(raw), filename)
    return client.post(f"{API}/pipelines/{endpoint}", query_string=query, data=data,
                       content_type="multipart/form-data")


def uploaded(client, name: str, content: str | None = None, **query: str) -> dict:
    """Upload a pipeline (a small workflow unless `content` is given) and return its JSON."""
    response = upload(client, "pipeline.yaml", workflow_yaml() if content is None else content, name=name, **query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def upload_error(response, status: int) -> str:
    """The response is an upload-shaped error with HTTP `status`; returns its error_message."""
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == UPLOAD_ERROR_KEYS, body
    assert body["error_message"], body
    return body["error_message"]


# --- successful uploads --------------------------------------------------------------------------------


def test_upload_yaml_returns_pipeline_with_its_first_version(client):
    response = upload(client, "hello.yaml", workflow_yaml(parameters={"param1": "hello", "param2": None}),
                      description="my pipeline")
    assert response.status_code == 200, response.get_json()
    pipeline = response.get_json()
    assert list(pipeline) == ["id", "created_at", "name", "description", "parameters", "default_version"]
    assert pipeline["name"] == "hello.yaml"  # the file name, extension included
    assert pipeline["description"] == "my pipeline"
    assert pipeline["parameters"] == [{"name": "param1", "value": "hello"}, {"name": "param2"}]
    assert pipeline["created_at"].endswith("Z")
    assert pipeline["default_version"] == {
        "id": pipeline["id"],
        "name": "hello.yaml",
        "created_at": pipeline["created_at"],
        "parameters": [{"name": "param1", "value": "hello"}, {"name": "param2"}],
        "resource_references": [{"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "OWNER"}],
    }
    assert client.get(f"{API}/pipelines/{pipeline['id']}").get_json() == pipeline


def test_parameters_omitted_when_absent_and_typed_values_become_strings(client):
    pipeline = uploaded(client, "plain", workflow_yaml(parameters={}))
    assert set(pipeline) == {"id", "created_at", "name", "default_version"}
    assert "parameters" not in pipeline["default_version"]

    # Anchors and merge keys reused in moderation are fine.
    anchored = workflow_yaml(parameters={}).replace(
        "  templates:\n  - name: main\n    container:\n",
        "  templates:\n  - name: main\n    container: &base\n",
    ) + "".join(f"  - name: copy{i}\n    container:\n      <<: *base\n      image: busybox\n" for i in range(200))
    copies = json.loads(client.get(f"{API}/pipelines/{uploaded(client, 'anchored', anchored)['id']}/templates")
                        .get_json()["template"])["spec"]["templates"]
    assert len(copies) == 201 and copies[-1]["container"] == {"image": "busybox", "command": ["echo", "hi"]}

    # Typed parameter defaults become strings; a date stays the text it was; null is no default.
    text = workflow_yaml(parameters={}).replace(
        "  templates:",
        "  arguments:\n    parameters:\n    - {name: i, value: 3}\n    - {name: f, value: 0.5}\n"
        "    - {name: b, value: true}\n    - {name: d, value: 2021-01-02}\n    - {name: n, value: null}\n  templates:",
    )
    pipeline = uploaded(client, "typed", text)
    assert pipeline["parameters"] == [
        {"name": "i", "value": "3"}, {"name": "f", "value": "0.5"}, {"name": "b", "value": "true"},
        {"name": "d", "value": "2021-01-02"}, {"name": "n"},
    ]


def test_template_is_the_parsed_workflow_as_compact_json(client):
    text = workflow_yaml(parameters={"n": "3"}) + "  # a comment that does not survive\n"
    pipeline = uploaded(client, "templated", text)
    for path in (f"/pipelines/{pipeline['id']}/templates", f"/pipeline_versions/{pipeline['id']}/templates"):
        body = client.get(API + path).get_json()
        assert set(body) == {"template"}
        assert json.loads(body["template"]) == yaml.safe_load(text)
        assert " " not in body["template"].replace("echo, hi", "").replace("- ", "")  # compact separators


PACKAGES = [
    ("p.yml", workflow_yaml()),
    ("p.JSON", json.dumps(yaml.safe_load(workflow_yaml()), indent=2)),
    ("p.zip", zip_bytes({"pipeline.yaml": workflow_yaml()})),
    ("p.zip", zip_bytes({"component.yaml": "name: c\n", "dir/": "", "pipeline.yaml": workflow_yaml()})),
    ("p.zip", zip_bytes({"other-name.yml": workflow_yaml()})),
    ("p.tar.gz", tar_gz_bytes({"pipeline.yaml": workflow_yaml()})),
    ("p.tgz", tar_gz_bytes({"component.yaml": "name: c\n", "./pipeline.yaml": workflow_yaml()})),
    ("p.tar.gz", tar_gz_bytes({"my-pipeline.yaml": workflow_yaml(), "README.md": "hi"})),
    ("no-extension", zip_bytes({"pipeline.yaml": workflow_yaml()})),  # by magic bytes
]


def test_upload_package_formats(client):
    # One database for all packages (a fresh database per case would dominate the run time).
    for index, (filename, content) in enumerate(PACKAGES):
        response = upload(client, filename, content, name=f"{index}-{filename}")
        assert response.status_code == 200, (index, filename, response.get_json())
        pipeline = response.get_json()
        assert pipeline["parameters"] == [{"name": "p", "value": "v"}], (index, filename)
        template = client.get(f"{API}/pipelines/{pipeline['id']}/templates").get_json()["template"]
        assert json.loads(template) == yaml.safe_load(workflow_yaml()), (index, filename)


def test_name_query_wins_over_file_name_and_namespace_is_kept(client):
    pipeline = uploaded(client, "my pipeline/with slash", namespace="team-a")
    assert pipeline["name"] == "my pipeline/with slash"
    # Namespaced pipelines are listed with a NAMESPACE key only, and found by namespace and name.
    assert client.get(f"{API}/pipelines").get_json() == {}
    listed = client.get(f"{API}/pipelines", query_string={
        "resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": "team-a"}).get_json()
    assert [p["id"] for p in listed["pipelines"]] == [pipeline["id"]]
    found = client.get(f"{API}/namespaces/team-a/pipelines/my pipeline/with slash")
    assert found.status_code == 200, found.get_json()
    assert found.get_json() == pipeline


def test_upstream_packages_are_accepted(client, shared_dir: Path):
    root = shared_dir / "reference" / "upstream-test-resources"
    fixtures = root / "upload-fixtures"
    resources = root / "backend-test-resources"
    arguments = [{"name": "param1", "value": "hello"}, {"name": "param2"}]
    cases = [
        (fixtures / "arguments-parameters.yaml", arguments),
        (fixtures / "patched-arguments-parameters.yaml", [{"name": "param1", "value": "new-hello"},
                                                          {"name": "param2"}]),
        (fixtures / "arguments_tarball" / "arguments.tar.gz", arguments),
        (fixtures / "arguments_zip" / "arguments-parameters.zip", arguments),
        (fixtures / "pipeline_plus_component" / "pipeline_plus_component.tar.gz", arguments),
        (fixtures / "pipeline_plus_component" / "pipeline_plus_component.zip", arguments),
        (resources / "hello-world.yaml", None),
        (resources / "loops.yaml", None),
        (resources / "long-running.yaml", None),
        (resources / "arguments.pipeline.zip", arguments),
    ]
    for path, parameters in cases:
        response = upload(client, path.name, path.read_bytes(), name=f"upstream {path.name}")
        assert response.status_code == 200, (path.name, response.get_json())
        pipeline = response.get_json()
        if parameters is not None:
            assert pipeline["parameters"] == parameters, path.name
    pipeline_yaml = fixtures / "pipeline_plus_component" / "pipeline.yaml"
    found = client.get(f"{API}/namespaces/-/pipelines/upstream pipeline_plus_component.zip").get_json()
    template = client.get(f"{API}/pipelines/{found['id']}/templates").get_json()["template"]
    assert json.loads(template) == yaml.safe_load(pipeline_yaml.read_text())


# --- refused uploads -----------------------------------------------------------------------------------


def test_upstream_malformed_packages_are_400(client, shared_dir: Path):
    fixtures = shared_dir / "reference" / "upstream-test-resources" / "upload-fixtures"
    unexpected = "Unexpected pipeline file format. Support .zip, .tar.gz, .json or YAML."
    cases = {
        "empty_tarball/empty.tar.gz": unexpected,
        "empty_zip/empty.zip": unexpected,
        "malformated_tarball.tar.gz": unexpected,
        "malformated_zip.zip": unexpected,
        "unknown_format.foo": unexpected,
        "malformed_zip2.zip": "Error extracting pipeline from the zip file. Not a valid zip file.",
        "non_yaml_tarball/non_yaml_tarball.tar.gz": "Error extracting pipeline from the tarball file. Expecting a "
                                                    "pipeline.yaml file inside the tarball. Got: non_yaml_file.foo",
        "non_yaml_zip/non_yaml_file.zip": "Error extracting pipeline from the zip file. Expecting a pipeline.yaml "
                                          "file inside the zip. Got: non_yaml_file.foo",
        "invalid-workflow.yaml": "Unexpected resource type. Expected: Workflow. Received: ",
    }
    for relative, message in cases.items():
        path = fixtures / relative
        response = upload(client, path.name, path.read_bytes())
        error = upload_error(response, 400)
        assert message in error, (relative, error)
    assert client.get(f"{API}/pipelines").get_json() == {}


def test_file_errors_carry_upstream_context(client):
    error = upload_error(upload(client, "x.bin", b"\x00\x01 not a package"), 400)
    assert error == ("Error read pipeline file.: Invalid input error: Unexpected pipeline file format. "
                     "Support .zip, .tar.gz, .json or YAML.")
    error = upload_error(upload(client, "x.yaml", "apiVersion: v1\nkind: Pod\n"), 400)
    assert error == ("Error creating pipeline: Create pipeline failed: Invalid input error: Unsupported argo version. "
                     "Expected: argoproj.io/v1alpha1. Received: v1")


INVALID_WORKFLOWS = [
    ("empty.yaml", b"", "unknown template format"),
    ("list.yaml", "- a\n- b\n", "unknown template format"),
    ("unclosed.yaml", "key: [unclosed", "Failed to parse the workflow template"),
    ("bad.json", "{not json", "Failed to parse the workflow template"),
    ("binary.yaml", bytes(range(256)) * 4, "Failed to parse the workflow template"),
    ("two-docs.yaml", workflow_yaml() + "---\n" + workflow_yaml(), "Failed to parse the workflow template"),
    ("bomb.yaml", "l0: &l0 [x, x]\n" + "".join(f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]\n" for i in range(1, 30)),
     "too many values"),
    ("cyclic.yaml", "&a [*a]", "too many values"),
    ("wrong-kind.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nspec: {}\n",
     "Unexpected resource type. Expected: Workflow. Received: CronWorkflow"),
    ("no-spec.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n", "spec is missing"),
    ("no-templates.yaml", workflow_yaml().split("  templates:")[0], "spec.templates must be a non-empty list"),
    ("unnamed-template.yaml", workflow_yaml().replace("- name: main", "- nam: main"),
     "spec.templates[0] must be an object with a non-empty name"),
    ("duplicate-template.yaml", workflow_yaml() + "  - name: main\n    container: {image: x}\n",
     'template name "main" is used more than once'),
    ("no-entrypoint.yaml", workflow_yaml().replace("  entrypoint: main\n", ""), "spec.entrypoint is missing"),
    ("bad-entrypoint.yaml", workflow_yaml().replace("entrypoint: main", "entrypoint: nowhere"),
     'spec.entrypoint "nowhere" is not the name of a template'),
    ("arguments-list.yaml", workflow_yaml(parameters={}).replace("  templates:", "  arguments: []\n  templates:"),
     "spec.arguments must be an object"),
    ("parameters-map.yaml", workflow_yaml(parameters={}).replace(
        "  templates:", "  arguments:\n    parameters: {a: b}\n  templates:"),
     "spec.arguments.parameters must be a list"),
    ("unnamed-parameter.yaml", workflow_yaml(parameters={}).replace(
        "  templates:", "  arguments:\n    parameters:\n    - value: x\n  templates:"),
     "spec.arguments.parameters[0] must be an object with a non-empty name"),
    ("duplicate-parameter.yaml", workflow_yaml(parameters={}).replace(
        "  templates:", "  arguments:\n    parameters:\n    - name: a\n    - name: a\n  templates:"),
     'parameter "a" is declared more than once'),
    ("object-value.yaml", workflow_yaml(parameters={}).replace(
        "  templates:", "  arguments:\n    parameters:\n    - name: a\n      value: {x: 1}\n  templates:"),
     'the value of parameter "a" must be a string, number or boolean'),
    ("nan.yaml", workflow_yaml(parameters={}).replace(
        "  templates:", "  arguments:\n    parameters:\n    - name: a\n      value: .nan\n  templates:"),
     "JSON cannot represent"),
    ("v2.yaml", "pipelineInfo: {name: x}\nroot: {dag: {}}\n", "Invalid pipeline spec: root: dag.tasks must name"),
    ("deep.json", "[" * 50000 + "]" * 50000, "Failed to parse the workflow template"),
]


def test_invalid_workflow_is_400_naming_the_problem(client):
    for filename, content, message in INVALID_WORKFLOWS:
        error = upload_error(upload(client, filename, content), 400)
        assert message in error, (filename, error)
        assert error.startswith("Error creating pipeline: Create pipeline failed: Invalid input error: "), error
    assert client.get(f"{API}/pipelines").get_json() == {}


BAD_ARCHIVES = [
    (zip_bytes({}), "Error extracting pipeline from the zip file. Empty zip file."),
    (zip_bytes({"notes.txt": "x"}), "Expecting a pipeline.yaml file inside the zip. Got: notes.txt"),
    (zip_bytes({"pipeline.yaml": workflow_yaml()})[:60], "Error extracting pipeline from the zip file. Not a "
                                                         "valid zip file."),
    (tar_gz_bytes({}), "Error extracting pipeline from the tarball file. Empty tarball file."),
    (tar_gz_bytes({"notes.txt": "x"}), "Expecting a pipeline.yaml file inside the tarball. Got: notes.txt"),
    (tar_gz_bytes({"pipeline.yaml": workflow_yaml()})[:30], "Error extracting pipeline from the tarball file. "
                                                            "Not a valid tarball file."),
    (b"\x1f\x8b" + b"\x00" * 40, "Not a valid tarball file."),
    (tar_gz_bytes({"pipeline.yaml": "- not\n- a workflow\n"}), "unknown template format"),
]


def test_bad_archives_are_400(client):
    for index, (content, message) in enumerate(BAD_ARCHIVES):
        error = upload_error(upload(client, "package", content), 400)
        assert message in error, (index, error)


def test_decompression_bomb_and_big_entries_are_refused(settings):
    app = create_app(settings.replace(max_upload_bytes=1 << 16))
    try:
        client = app.test_client()
        bomb = tar_gz_bytes({"zeros.bin": b"\x00" * (1 << 20), "pipeline.yaml": workflow_yaml()})
        assert len(bomb) < 1 << 16
        assert "decompresses to more than 524288 bytes" in upload_error(upload(client, "bomb.tar.gz", bomb), 400)
        big_entry = zip_bytes({"pipeline.yaml": "#" * (1 << 17)})
        assert "File size too large. Maximum supported size: 65536" in upload_error(
            upload(client, "big.zip", big_entry), 400)
        big_member = tar_gz_bytes({"pipeline.yaml": "#" * (1 << 17)})
        assert "File size too large. Maximum supported size: 65536" in upload_error(
            upload(client, "big.tar.gz", big_member), 400)
    finally:
        app.extensions["kfp_backend.services"].db.dispose()


def test_missing_or_malformed_upload_part_is_400(client):
    message = "Failed to read pipeline from file: http: no such file"
    assert upload_error(upload(client, None), 400) == message
    assert upload_error(client.post(f"{API}/pipelines/upload", data="not multipart"), 415) == (
        "Unsupported media type: a body without a Content-Type. This endpoint takes 'multipart/form-data'.")
    wrong_field = client.post(f"{API}/pipelines/upload", data={"other": (io.BytesIO(b"x"), "p.yaml")},
                              content_type="multipart/form-data")
    assert upload_error(wrong_field, 400) == message
    broken = client.post(f"{API}/pipelines/upload", data=b"--xyz\r\ngarbage",
                         content_type="multipart/form-data; boundary=xyz")
    assert 400 <= broken.status_code < 500
    assert set(broken.get_json()) <= UPLOAD_ERROR_KEYS


def test_oversize_file_is_400(client):
    expected = "Error read pipeline file.: Invalid input error: File size too large. Maximum supported size: 33554432"
    # Just over the limit, and over what the HTTP layer reads at all (limit + 1 MiB): the same 400.
    for excess in (1, 3 << 19):
        assert upload_error(upload(client, "big.yaml", b"#" * (MAX_UPLOAD_BYTES + excess)), 400) == expected


def test_name_rules(client):
    error = upload_error(upload(client, "p.yaml", workflow_yaml(), name="n" * 101), 400)
    assert error == "Invalid pipeline name.: Invalid input error: Pipeline name too long. Support maximum length of 100"
    assert uploaded(client, "n" * 100)["name"] == "n" * 100
    nameless = zip_bytes({"pipeline.yaml": workflow_yaml()})
    assert "Pipeline name is empty" in upload_error(upload(client, "", nameless), 400)
    assert "NUL" in upload_error(upload(client, "p.yaml", workflow_yaml(), name="a\x00b"), 400)
    assert "Namespace too long" in upload_error(upload(client, "p.yaml", workflow_yaml(), namespace="n" * 64), 400)
    assert "pipeline.description is longer than 65535 bytes" in upload_error(
        upload(client, "p.yaml", workflow_yaml(), name="d", description="d" * 70000), 400)


def test_too_many_parameters_is_400(client):
    parameters = {f"parameter_{i:04d}": "x" * 20 for i in range(300)}
    error = upload_error(upload(client, "p.yaml", workflow_yaml(parameters=parameters)), 400)
    assert "The input parameter length exceed maximum size of 10000." in error


def test_duplicate_name_is_409_in_upload_shape(client):
    first = uploaded(client, "twice")
    error = upload_error(upload(client, "p.yaml", workflow_yaml(), name="twice"), 409)
    assert error == ("Error creating pipeline: Create pipeline failed: Already exist error: Failed to create a new "
                     "pipeline. The name twice already exist. Please specify a new name.")
    assert upload(client, "p.yaml", workflow_yaml(), name="twice").mimetype == "application/json"
    # The same name is free in another namespace.
    assert uploaded(client, "twice", namespace="other")["id"] != first["id"]


# --- upload_version --------------------------------------------------------------------------------------


def test_upload_version(client):
    pipeline = uploaded(client, "versioned")
    response = upload(client, "second.yaml", workflow_yaml(parameters={"x": None}), endpoint="upload_version",
                      pipelineid=pipeline["id"], description="v2 description")
    assert response.status_code == 200, response.get_json()
    version = response.get_json()
    assert list(version) == ["id", "name", "created_at", "parameters", "resource_references", "description"]
    assert version["name"] == "second.yaml"
    assert version["parameters"] == [{"name": "x"}]
    assert version["description"] == "v2 description"
    assert version["resource_references"] == [
        {"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "OWNER"}]
    assert version["id"] != pipeline["id"]
    # The new version became the default; the pipeline keeps its first version's parameters.
    fetched = client.get(f"{API}/pipelines/{pipeline['id']}").get_json()
    assert fetched["default_version"] == version
    assert fetched["parameters"] == [{"name": "p", "value": "v"}]
    assert client.get(f"{API}/pipeline_versions/{version['id']}").get_json() == version
    template = client.get(f"{API}/pipelines/{pipeline['id']}/templates").get_json()["template"]
    assert json.loads(template) == yaml.safe_load(workflow_yaml(parameters={"x": None}))

    archive = tar_gz_bytes({"pipeline.yaml": workflow_yaml()})
    response = upload(client, "pkg.tar.gz", archive, endpoint="upload_version", pipelineid=pipeline["id"],
                      name="v-archive")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "v-archive"


def test_upload_version_errors(client):
    pipeline = uploaded(client, "versioned")
    package = ("v.yaml", workflow_yaml())
    assert upload_error(upload(client, *package, endpoint="upload_version"), 400) == (
        "Please specify a pipeline id when creating versions.")
    assert upload_error(upload(client, *package, endpoint="upload_version", pipelineid=MISSING_ID), 404) == (
        "Failed to get namespace from pipelineId.: Failed to get namespace from Pipeline ID: "
        f"ResourceNotFoundError: Pipeline {MISSING_ID} not found.")
    assert upload_error(upload(client, None, endpoint="upload_version", pipelineid=pipeline["id"]), 400) == (
        "Failed to read pipeline from file: http: no such file")
    assert "Unexpected pipeline file format" in upload_error(
        upload(client, "v.bin", b"nothing", endpoint="upload_version", pipelineid=pipeline["id"]), 400)
    assert "File size too large" in upload_error(
        upload(client, "v.yaml", b"#" * (MAX_UPLOAD_BYTES + 1), endpoint="upload_version", pipelineid=pipeline["id"]),
        400)
    assert upload_error(upload(client, *package, endpoint="upload_version", pipelineid=pipeline["id"],
                               name="v" * 101), 400).startswith("Invalid pipeline version name.: ")
    assert "spec.entrypoint is missing" in upload_error(
        upload(client, "v.yaml", workflow_yaml().replace("  entrypoint: main\n", ""), endpoint="upload_version",
               pipelineid=pipeline["id"]), 400)
    # Duplicate version names in one pipeline: 409; the first version holds the pipeline's name.
    assert upload_error(upload(client, *package, endpoint="upload_version", pipelineid=pipeline["id"],
                               name="versioned"), 409) == (
        "Error creating pipeline version: Create pipeline version failed: Already exist error: Failed to create a "
        "new pipeline version. The name versioned already exist. Please specify a new name.")
    assert upload(client, *package, endpoint="upload_version", pipelineid=pipeline["id"]).status_code == 200
    assert upload_error(upload(client, *package, endpoint="upload_version", pipelineid=pipeline["id"]), 409)


def test_upload_endpoints_answer_post_only(client):
    for method in ("get", "put", "delete"):
        for endpoint in ("upload", "upload_version"):
            response = getattr(client, method)(f"{API}/pipelines/{endpoint}")
            assert 400 <= response.status_code < 500, (method, endpoint)
            assert response.mimetype == "application/json"
