"""Bad input sent with plain `requests` to the live server: always a 4xx with a JSON error body, never a 5xx.

Gateway endpoints answer `{"error", "code", "message", "details": [api.Error]}`; the two upload endpoints
answer `{"error_message", "error_details"}` (the real server's two error shapes).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.e2e.helpers import E2E_DATABASE_ENV
from tests.gateway_errors import check_gateway_body

pytestmark = pytest.mark.e2e

UPLOAD_KEYS = {"error_message", "error_details"}
GRPC_TO_HTTP = {1: 408, 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 16: 401}
MAX_UPLOAD_BYTES = 32 << 20
MISSING_ID = "00000000-0000-4000-8000-000000000000"
ON_POSTGRES = os.environ.get(E2E_DATABASE_ENV, "").startswith("postgresql")

MINIMAL_WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: tiny-
spec:
  entrypoint: main
  arguments:
    parameters:
    - name: p
      value: v
  templates:
  - name: main
    container:
      image: alpine:3.19
      command: [echo, hi]
"""


def check_error(response: requests.Response, status: int | None = None, shape: str = "gateway") -> dict[str, Any]:
    """A 4xx (exactly `status` when given) with a JSON body of the endpoint's error shape; returns the body."""
    where = f"{response.request.method} {response.request.url} -> {response.status_code} {response.text[:500]!r}"
    assert 400 <= response.status_code < 500, where
    if status is not None:
        assert response.status_code == status, where
    assert response.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", where
    try:
        body = response.json()
    except ValueError:
        pytest.fail(f"not a JSON body: {where}")
    assert isinstance(body, dict), where
    if shape == "gateway":
        check_gateway_body(body)
        if body["code"] in GRPC_TO_HTTP and response.status_code not in (405, 413):
            assert GRPC_TO_HTTP[body["code"]] == response.status_code, where
    else:
        assert set(body) <= UPLOAD_KEYS and body.get("error_message"), where
        assert isinstance(body["error_message"], str), where
    return body


def token(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


@dataclass
class Case:
    id: str
    method: str
    path: str  # under /apis/v1beta1 unless it starts with "//"
    status: int | None  # None: any 4xx
    params: dict[str, str] = field(default_factory=dict)
    data: bytes | str | None = None
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""  # a fragment the error text must contain
    marks: tuple = ()


def _filter(*predicates: dict) -> dict[str, str]:
    return {"filter": json.dumps({"predicates": list(predicates)})}


LIST_PATHS = ["/experiments", "/pipelines"]

CASES: list[Case] = [
    # Malformed and wrongly typed JSON bodies.
    Case("malformed-json", "POST", "/experiments", 400, data="{bad", message="JSON"),
    Case("truncated-json", "POST", "/experiments", 400, data='{"name": "x"'),
    Case("json-array-body", "POST", "/experiments", 400, data="[1]"),
    Case("json-null-body", "POST", "/experiments", 400, data="null"),
    Case("json-string-body", "POST", "/experiments", 400, data='"name"'),
    Case("json-number-body", "POST", "/experiments", 400, data="42"),
    Case("invalid-utf8-body", "POST", "/experiments", 400, data=b'{"name": "\xff\xfe"}'),
    Case("name-is-number", "POST", "/experiments", 400, json_body={"name": 5}),
    Case("name-is-list", "POST", "/experiments", 400, json_body={"name": ["a"]}),
    Case("name-is-null", "POST", "/experiments", 400, json_body={"name": None}),
    Case("description-is-object", "POST", "/experiments", 400, json_body={"name": "x", "description": {}}),
    Case("references-not-a-list", "POST", "/experiments", 400,
         json_body={"name": "x", "resource_references": "no"}),
    Case("reference-not-an-object", "POST", "/experiments", 400,
         json_body={"name": "x", "resource_references": [1]}),
    Case("reference-unknown-enum", "POST", "/experiments", 400,
         json_body={"name": "x", "resource_references": [{"key": {"type": "BOGUS", "id": "n"}}]}),
    Case("number-overflow", "POST", "/experiments", 400, data='{"name": 1e999}'),
    Case("empty-body", "POST", "/experiments", 400, data="", message="Experiment name is empty"),
    Case("empty-name", "POST", "/experiments", 400, json_body={"name": ""}, message="Experiment name is empty"),
    Case("name-too-long", "POST", "/experiments", 400, json_body={"name": "n" * 300}),
    Case("namespace-reference-in-single-user", "POST", "/experiments", 400,
         json_body={"name": "x", "resource_references": [
             {"key": {"type": "NAMESPACE", "id": "ns"}, "relationship": "OWNER"}]},
         message="single-user"),
    Case("lone-surrogate-in-name", "POST", "/experiments", 400, data='{"name": "\\ud800"}'),
    Case("deeply-nested-json", "POST", "/experiments", 400, data="[" * 100_000 + "]" * 100_000),
    Case("deeply-nested-object", "POST", "/experiments", 400,
         data='{"name": "x", "description": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"),
    Case("nul-in-name", "POST", "/experiments", 400, json_body={"name": f"nul\u0000{uuid.uuid4().hex}"},
         message="experiment.name contains a NUL character"),
    Case("nul-in-run-parameter", "POST", "/runs", 400,
         json_body={"name": "r", "pipeline_spec": {"workflow_manifest": MINIMAL_WORKFLOW,
                                                   "parameters": [{"name": "p", "value": "a\u0000b"}]}},
         message="run.pipeline_spec.parameters[0].value contains a NUL character"),
    Case("nul-in-experiment-id", "GET", "/experiments/nul%00id", None),
    Case("nul-in-pipeline-id", "GET", "/pipelines/nul%00id", None),
    Case("nul-in-version-id", "GET", "/pipeline_versions/nul%00id", None),
    Case("nul-in-versions-resource-key", "GET", "/pipeline_versions", None,
         params={"resource_key.type": "PIPELINE", "resource_key.id": "nul\u0000id"}),
    Case("nul-in-filter", "GET", "/experiments", None,
         params=_filter({"op": "EQUALS", "key": "name", "string_value": "a\u0000b"}),
         marks=() if ON_POSTGRES else (pytest.mark.skip(reason="only PostgreSQL refuses NUL in text"),)),
    # Unknown ids.
    Case("get-unknown-experiment", "GET", f"/experiments/{MISSING_ID}", 404,
         message=f"Experiment {MISSING_ID} not found."),
    Case("delete-unknown-experiment", "DELETE", f"/experiments/{MISSING_ID}", 404, message="not found"),
    Case("archive-unknown-experiment", "POST", f"/experiments/{MISSING_ID}:archive", 404, message="not found"),
    Case("unarchive-unknown-experiment", "POST", f"/experiments/{MISSING_ID}:unarchive", 404, message="not found"),
    Case("get-experiment-odd-id", "GET", "/experiments/%E2%98%83%20x", 404),
    Case("get-experiment-huge-id", "GET", "/experiments/" + "x" * 4000, 404),
    Case("get-unknown-pipeline", "GET", f"/pipelines/{MISSING_ID}", 404, message=f"Pipeline {MISSING_ID} not found."),
    Case("delete-unknown-pipeline", "DELETE", f"/pipelines/{MISSING_ID}", 404, message="not found"),
    Case("template-of-unknown-pipeline", "GET", f"/pipelines/{MISSING_ID}/templates", 404, message="not found"),
    Case("get-unknown-version", "GET", f"/pipeline_versions/{MISSING_ID}", 404, message=f"{MISSING_ID} not found."),
    Case("delete-unknown-version", "DELETE", f"/pipeline_versions/{MISSING_ID}", 404, message="not found"),
    Case("template-of-unknown-version", "GET", f"/pipeline_versions/{MISSING_ID}/templates", 404,
         message="not found"),
    Case("versions-of-unknown-pipeline", "GET", "/pipeline_versions", 404,
         params={"resource_key.type": "PIPELINE", "resource_key.id": MISSING_ID}, message="not found"),
    Case("versions-without-resource-key", "GET", "/pipeline_versions", 400, message="ResourceKey must be set"),
    # Bad list parameters, for each listable resource.
    *[
        case
        for path in LIST_PATHS
        for case in [
            Case(f"{path[1:]}-token-not-base64", "GET", path, 400, params={"page_token": "%%%"},
                 message="Invalid package token."),
            Case(f"{path[1:]}-token-not-json", "GET", path, 400,
                 params={"page_token": base64.b64encode(b"garbage").decode()}, message="Invalid package token."),
            Case(f"{path[1:]}-token-wrong-shape", "GET", path, 400, params={"page_token": token({"v": 1})},
                 message="Invalid package token."),
            Case(f"{path[1:]}-token-upstream-go-format", "GET", path, 400, params={"page_token": token({
                "SortByFieldName": "CreatedAtInSec", "SortByFieldValue": 1622744523, "KeyFieldName": "UUID",
                "KeyFieldValue": MISSING_ID, "IsDesc": False, "ModelName": "experiments", "Filter": None})}),
            Case(f"{path[1:]}-token-huge-number", "GET", path, 400, params={"page_token": token(
                {"v": 1, "sort": "created_at", "desc": False, "filter": [], "start": [10**30, MISSING_ID]})},
                message="Invalid package token."),
            Case(f"{path[1:]}-token-very-long", "GET", path, 400, params={"page_token": "A" * 20_000}),
            Case(f"{path[1:]}-unknown-sort-field", "GET", path, 400, params={"sort_by": "unknownfield"},
                 message='Invalid sorting field: "unknownfield"'),
            Case(f"{path[1:]}-sort-three-words", "GET", path, 400, params={"sort_by": "name desc please"},
                 message="Received invalid sort by format"),
            Case(f"{path[1:]}-sort-bad-direction", "GET", path, 400, params={"sort_by": "name sideways"},
                 message="Received invalid sort by format"),
            Case(f"{path[1:]}-filter-not-json", "GET", path, 400, params={"filter": "name=x"},
                 message="failed to parse valid filter"),
            Case(f"{path[1:]}-filter-not-object", "GET", path, 400, params={"filter": "[1, 2]"}),
            Case(f"{path[1:]}-filter-unknown-key", "GET", path, 400,
                 params=_filter({"op": "EQUALS", "key": "colour", "string_value": "red"}),
                 message='unrecognized field "colour"'),
            Case(f"{path[1:]}-filter-unknown-op", "GET", path, 400,
                 params=_filter({"op": "RESEMBLES", "key": "name", "string_value": "x"})),
            Case(f"{path[1:]}-filter-op-zero", "GET", path, 400,
                 params=_filter({"op": 0, "key": "name", "string_value": "x"}),
                 message="invalid predicate operation"),
            Case(f"{path[1:]}-filter-no-value", "GET", path, 400, params=_filter({"op": "EQUALS", "key": "name"}),
                 message='no value set for predicate on key "name"'),
            Case(f"{path[1:]}-filter-in-with-scalar", "GET", path, 400,
                 params=_filter({"op": "IN", "key": "name", "string_value": "x"}), message="IN"),
            Case(f"{path[1:]}-filter-equals-with-array", "GET", path, 400,
                 params=_filter({"op": "EQUALS", "key": "name", "string_values": {"values": ["x"]}})),
            Case(f"{path[1:]}-filter-substring-on-time", "GET", path, 400,
                 params=_filter({"op": "IS_SUBSTRING", "key": "created_at", "string_value": "1"})),
            Case(f"{path[1:]}-filter-bad-timestamp", "GET", path, 400,
                 params=_filter({"op": "GREATER_THAN", "key": "created_at", "timestamp_value": "yesterday"})),
            Case(f"{path[1:]}-filter-value-is-object", "GET", path, 400,
                 params=_filter({"op": "EQUALS", "key": "name", "string_value": {"a": 1}})),
            Case(f"{path[1:]}-page-size-not-a-number", "GET", path, 400, params={"page_size": "ten"}),
            Case(f"{path[1:]}-page-size-negative", "GET", path, 400, params={"page_size": "-1"},
                 message="The page size should be greater than 0"),
            Case(f"{path[1:]}-page-size-fraction", "GET", path, 400, params={"page_size": "1.5"}),
            Case(f"{path[1:]}-page-size-over-int32", "GET", path, 400, params={"page_size": str(2**31)}),
            Case(f"{path[1:]}-unknown-reference-type", "GET", path, 400,
                 params={"resource_reference_key.type": "BOGUS", "resource_reference_key.id": "x"}),
        ]
    ],
    Case("experiments-namespace-filter-in-single-user", "GET", "/experiments", 400,
         params={"resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": "ns"},
         message="single-user"),
    Case("pipelines-by-experiment-reference", "GET", "/pipelines", 400,
         params={"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": MISSING_ID}),
    Case("versions-unknown-sort-field", "GET", "/pipeline_versions", 400,
         params={"resource_key.type": "PIPELINE", "resource_key.id": MISSING_ID, "sort_by": "unknownfield"}),
    # Unknown routes and wrong methods.
    Case("unknown-route", "GET", "/nothing-here", 404),
    Case("unknown-nested-route", "GET", f"/experiments/{MISSING_ID}/children", 404),
    Case("unknown-api-version", "GET", "//apis/v3beta1/experiments", 404),
    Case("outside-the-api", "GET", "//index.html", 404),
    Case("unknown-custom-method", "POST", f"/experiments/{MISSING_ID}:frobnicate", None),
    Case("put-collection", "PUT", "/experiments", 405),
    Case("delete-collection", "DELETE", "/experiments", 405),
    Case("patch-experiment", "PATCH", f"/experiments/{MISSING_ID}", 405),
    Case("post-to-experiment", "POST", f"/experiments/{MISSING_ID}", 405),
    Case("get-archive", "GET", f"/experiments/{MISSING_ID}:archive", None),
    Case("put-pipelines", "PUT", "/pipelines", 405),
    Case("patch-pipeline", "PATCH", f"/pipelines/{MISSING_ID}", 405),
    Case("post-to-pipeline-version", "POST", f"/pipeline_versions/{MISSING_ID}", 405),
    Case("trace", "TRACE", "/experiments", 405),
    # Create-from-URL bodies.
    Case("pipeline-malformed-json", "POST", "/pipelines", 400, data="{bad"),
    Case("pipeline-url-is-number", "POST", "/pipelines", 400, json_body={"name": "x", "url": {"pipeline_url": 5}}),
    Case("pipeline-without-url", "POST", "/pipelines", 400, json_body={"name": "x"}, message="Pipeline URL is empty"),
    Case("version-malformed-json", "POST", "/pipeline_versions", 400, data="{bad"),
    Case("version-without-url", "POST", "/pipeline_versions", 400, json_body={
        "name": "x", "resource_references": [
            {"key": {"type": "PIPELINE", "id": MISSING_ID}, "relationship": "OWNER"}]},
         message="Pipeline URL is empty"),
    Case("default-version-wrong-method", "GET", f"/pipelines/{MISSING_ID}/default_version/{MISSING_ID}", 405),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_request_is_a_json_4xx(api_url: str, server_url: str, case: Case):
    url = server_url + case.path[1:] if case.path.startswith("//") else api_url + case.path
    headers = dict(case.headers)
    if case.data is not None and "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    response = requests.request(case.method, url, params=case.params, data=case.data, json=case.json_body,
                                headers=headers, timeout=30)
    body = check_error(response, case.status)
    assert case.message in body["error"], body


def test_duplicate_experiment_name_is_409(api_url: str):
    name = f"dup-{uuid.uuid4().hex}"
    created = requests.post(f"{api_url}/experiments", json={"name": name}, timeout=10)
    assert created.status_code == 200, created.text
    body = check_error(requests.post(f"{api_url}/experiments", json={"name": name}, timeout=10), 409)
    assert body["code"] == 6
    assert body["details"][0]["error_message"] == (
        f"Failed to create a new experiment. The name {name} already exists. Please specify a new name."
    )


def test_page_token_with_other_sort_is_refused(api_url: str):
    prefix = f"tok-{uuid.uuid4().hex}"
    for suffix in "abc":
        assert requests.post(f"{api_url}/experiments", json={"name": f"{prefix}-{suffix}"}, timeout=10).ok
    name_filter = json.dumps({"predicates": [{"op": "IS_SUBSTRING", "key": "name", "string_value": prefix}]})
    first = requests.get(f"{api_url}/experiments", params={"page_size": 1, "sort_by": "name", "filter": name_filter},
                         timeout=10)
    assert first.status_code == 200, first.text
    next_token = first.json()["next_page_token"]
    for params in ({"sort_by": "name desc"}, {"sort_by": "created_at"},
                   {"filter": json.dumps({"predicates": [{"op": "EQUALS", "key": "name", "string_value": "x"}]})}):
        response = requests.get(f"{api_url}/experiments", params={"page_token": next_token, **params}, timeout=10)
        assert "page token does not match" in check_error(response, 400)["error"]


# The upload endpoints: multipart `uploadfile`, errors in the upload shape.


def upload(api_url: str, endpoint: str = "upload", files: dict | None = None, **params: str) -> requests.Response:
    return requests.post(f"{api_url}/pipelines/{endpoint}", params=params, files=files, timeout=60)


def uploaded_pipeline(api_url: str) -> dict:
    response = upload(api_url, files={"uploadfile": ("tiny.yaml", MINIMAL_WORKFLOW)}, name=f"up-{uuid.uuid4().hex}")
    assert response.status_code == 200, response.text
    return response.json()


def test_upload_without_file(api_url: str):
    check_error(upload(api_url, name=f"nofile-{uuid.uuid4().hex}"), 400, shape="upload")
    check_error(requests.post(f"{api_url}/pipelines/upload", data="not multipart", timeout=10), 415, shape="upload")
    check_error(upload(api_url, files={"wrongfield": ("p.yaml", MINIMAL_WORKFLOW)}), 400, shape="upload")


def test_upload_version_without_file(api_url: str):
    pipeline = uploaded_pipeline(api_url)
    check_error(upload(api_url, "upload_version", pipelineid=pipeline["id"], name="v"), 400, shape="upload")


def test_upload_version_without_or_with_unknown_pipeline(api_url: str):
    files = {"uploadfile": ("tiny.yaml", MINIMAL_WORKFLOW)}
    body = check_error(upload(api_url, "upload_version", files=files, name="v"), 400, shape="upload")
    assert "Please specify a pipeline id when creating versions." in body["error_message"]
    # Upstream answers 400 here, this server 404 (an unknown id); both name the missing pipeline.
    response = upload(api_url, "upload_version", files=files, name="v", pipelineid=MISSING_ID)
    assert response.status_code in (400, 404), response.text
    body = check_error(response, shape="upload")
    assert f"Pipeline {MISSING_ID} not found." in body["error_message"]


@pytest.mark.parametrize("endpoint", ["upload", "upload_version"])
@pytest.mark.parametrize("excess", [1, 3 << 19], ids=["1-byte-over", "1.5-MiB-over"])
def test_oversize_upload_is_400(api_url: str, endpoint: str, excess: int):
    params = {"name": f"big-{uuid.uuid4().hex}"}
    if endpoint == "upload_version":
        params["pipelineid"] = uploaded_pipeline(api_url)["id"]
    big = b"#" * (MAX_UPLOAD_BYTES + excess)
    body = check_error(upload(api_url, endpoint, files={"uploadfile": ("big.yaml", big)}, **params), 400,
                       shape="upload")
    assert "File size too large. Maximum supported size: 33554432" in body["error_message"]


@pytest.mark.parametrize("excess", [4 << 20, 32 << 20], ids=["4-MiB-over", "32-MiB-over"])
def test_far_oversize_upload_is_a_json_4xx(api_url: str, excess: int):
    # However large the body, the answer is a JSON error (400, or 413 if the server stops reading early).
    big = b"#" * (MAX_UPLOAD_BYTES + excess)
    response = upload(api_url, files={"uploadfile": ("big.yaml", big)}, name=f"huge-{uuid.uuid4().hex}")
    assert response.status_code in (400, 413), response.text[:300]
    check_error(response, shape="upload")


def test_oversize_json_body_is_a_json_4xx(api_url: str):
    response = requests.post(f"{api_url}/experiments", data=b'{"name": "' + b"a" * (40 << 20) + b'"}',
                             headers={"Content-Type": "application/json"}, timeout=60)
    check_error(response)


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("garbage.bin", b"\x00\x01 certainly not a pipeline", "Unexpected pipeline file format"),
        ("noext", b"plain text", "Unexpected pipeline file format"),
        ("bad.yaml", b"key: [unclosed", ""),
        ("list.yaml", b"- just\n- a list\n", ""),
        ("empty.yaml", b"", ""),
        ("not-argo.yaml", b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n", ""),
        ("wrong-kind.yaml", b"apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nspec: {}\n", ""),
        ("bad.json", b"{not json", ""),
        ("fake.zip", b"PK pretending to be a zip", "zip"),
        ("fake.tar.gz", b"\x1f\x8b pretending to be gzip", "tarball"),
        ("binary.yaml", bytes(range(256)) * 4, ""),
    ],
)
def test_unparsable_upload_is_400(api_url: str, filename: str, content: bytes, message: str):
    response = upload(api_url, files={"uploadfile": (filename, content)}, name=f"bad-{uuid.uuid4().hex}")
    body = check_error(response, 400, shape="upload")
    assert message in body["error_message"]


def test_bad_upload_names_are_400(api_url: str):
    files = {"uploadfile": ("tiny.yaml", MINIMAL_WORKFLOW)}
    response = upload(api_url, files=files, name="n" * 101)
    assert "Pipeline name too long" in check_error(response, 400, shape="upload")["error_message"]
    check_error(upload(api_url, files=files, name=f"nul\u0000{uuid.uuid4().hex}"), 400, shape="upload")
    check_error(upload(api_url, files=files, name=f"v-{uuid.uuid4().hex}", description="nul\u0000"), 400,
                shape="upload")
    pipeline = uploaded_pipeline(api_url)
    check_error(upload(api_url, "upload_version", files=files, pipelineid=pipeline["id"], name="n" * 101), 400,
                shape="upload")
    check_error(upload(api_url, "upload_version", files=files, pipelineid="nul\u0000id", name="v"), 400,
                shape="upload")


def test_duplicate_upload_names_are_409(api_url: str):
    pipeline = uploaded_pipeline(api_url)
    files = {"uploadfile": ("tiny.yaml", MINIMAL_WORKFLOW)}
    body = check_error(upload(api_url, files=files, name=pipeline["name"]), 409, shape="upload")
    assert "already exist" in body["error_message"]

    version_name = f"v-{uuid.uuid4().hex}"
    first = upload(api_url, "upload_version", files=files, name=version_name, pipelineid=pipeline["id"])
    assert first.status_code == 200, first.text
    body = check_error(upload(api_url, "upload_version", files=files, name=version_name, pipelineid=pipeline["id"]),
                       409, shape="upload")
    assert "already exist" in body["error_message"]


def test_upload_with_wrong_method_is_a_json_4xx(api_url: str):
    for method in ("GET", "PUT", "DELETE"):
        for endpoint in ("upload", "upload_version"):
            response = requests.request(method, f"{api_url}/pipelines/{endpoint}", timeout=10)
            assert 400 <= response.status_code < 500, (method, endpoint, response.status_code, response.text)
            assert response.headers.get("Content-Type", "").split(";")[0] == "application/json"
            assert response.json()
