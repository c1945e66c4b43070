"""PipelineService: create from a URL (http and file), get, get by name, list, delete, templates, default version."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import event

from kfp_backend.app import create_app
from kfp_backend.services import pipelines as pipeline_service
from tests.api.test_upload import API, MISSING_ID, upload, uploaded, workflow_yaml, zip_bytes
from tests.gateway_errors import gateway_error
from tests.http_server import Route, RouteHandler, route_server, without_proxies

# What the test HTTP server answers: path -> (status, body, extra headers).
ROUTES: dict[str, Route] = {
    "/pipelines/hello.yaml": (200, workflow_yaml("hello", {"who": "world"}).encode(), {}),
    "/pipelines/query.yaml?x=1": (200, workflow_yaml("query").encode(), {}),
    "/packages/arguments.pipeline.zip": (200, zip_bytes({"pipeline.yaml": workflow_yaml("zipped")}), {}),
    "/pipelines/not-a-workflow.yaml": (200, b"just: a mapping\n", {}),
    "/pipelines/no-content.yaml": (204, b"", {}),
    "/pipelines/broken.yaml": (500, b"oops", {}),
    "/redirect/hello.yaml": (302, b"", {"Location": "/pipelines/hello.yaml"}),
    "/redirect/to-file.yaml": (302, b"", {"Location": "file:///etc/hostname"}),
    "/pipelines/big.yaml": (200, b"#" * 5000, {}),
}
SLOW_PATH = "/pipelines/slow.yaml"


class _Handler(RouteHandler):
    def do_GET(self) -> None:
        if self.path != SLOW_PATH:
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(20):  # a trickle that outlives the fetch deadline
            try:
                self.wfile.write(b"#" * 10)
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.05)


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    """A tiny HTTP server in a thread, serving ROUTES."""
    with route_server(ROUTES, _Handler) as server:
        yield server.base_url


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxies(monkeypatch)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pipeline/version creation happens one second after the previous one."""
    ticks = itertools.count(1_700_000_000)
    monkeypatch.setattr(pipeline_service, "now_seconds", lambda: next(ticks))


def create_from_url(client, url: str, **fields: object):
    return client.post(f"{API}/pipelines", json={"url": {"pipeline_url": url}, **fields})


def names(body: dict, key: str = "pipelines") -> list[str]:
    return [item["name"] for item in body.get(key, [])]


# --- create from a URL -----------------------------------------------------------------------------------


def test_create_from_http_url(client, http_base):
    response = create_from_url(client, f"{http_base}/pipelines/hello.yaml")
    assert response.status_code == 200, response.get_json()
    pipeline = response.get_json()
    assert pipeline["name"] == "hello.yaml"  # the last path segment of the URL
    assert pipeline["parameters"] == [{"name": "who", "value": "world"}]
    assert pipeline["default_version"]["id"] == pipeline["id"]
    assert pipeline["default_version"]["name"] == "hello.yaml"
    assert "url" not in pipeline and "description" not in pipeline
    template = client.get(f"{API}/pipelines/{pipeline['id']}/templates").get_json()["template"]
    assert json.loads(template) == yaml.safe_load(workflow_yaml("hello", {"who": "world"}))

    named = create_from_url(client, f"{http_base}/pipelines/hello.yaml", name="sequential", description="from http")
    assert named.status_code == 200, named.get_json()
    assert (named.get_json()["name"], named.get_json()["description"]) == ("sequential", "from http")

    zipped = create_from_url(client, f"{http_base}/packages/arguments.pipeline.zip")
    assert zipped.status_code == 200, zipped.get_json()
    assert zipped.get_json()["name"] == "arguments.pipeline.zip"

    redirected = create_from_url(client, f"{http_base}/redirect/hello.yaml", name="redirected")
    assert redirected.status_code == 200, redirected.get_json()

    with_query = create_from_url(client, f"{http_base}/pipelines/query.yaml?x=1")
    assert with_query.status_code == 200, with_query.get_json()
    assert with_query.get_json()["name"] == "query.yaml"

    # camelCase keys are read too, as jsonpb does.
    camel = client.post(f"{API}/pipelines", json={"url": {"pipelineUrl": f"{http_base}/pipelines/hello.yaml"},
                                                  "name": "camel"})
    assert camel.status_code == 200, camel.get_json()


def test_create_from_file_url(client, tmp_path: Path):
    package = tmp_path / "my pipeline.yaml"
    package.write_text(workflow_yaml("local", {"a": None}))
    response = create_from_url(client, package.as_uri())
    assert response.status_code == 200, response.get_json()
    pipeline = response.get_json()
    assert pipeline["name"] == "my pipeline.yaml"
    assert pipeline["parameters"] == [{"name": "a"}]

    archive = tmp_path / "pkg.zip"
    archive.write_bytes(zip_bytes({"pipeline.yaml": workflow_yaml("local")}))
    namespaced = create_from_url(client, archive.as_uri(), resource_references=[
        {"key": {"type": "NAMESPACE", "id": "team-b"}, "relationship": "OWNER"}])
    assert namespaced.status_code == 200, namespaced.get_json()
    found = client.get(f"{API}/namespaces/team-b/pipelines/pkg.zip")
    assert found.status_code == 200 and found.get_json()["id"] == namespaced.get_json()["id"]
    assert names(client.get(f"{API}/pipelines").get_json()) == ["my pipeline.yaml"]


def test_create_from_url_errors(client, http_base, tmp_path: Path):
    def refused(url: str, status: int = 400, **fields: object) -> str:
        return gateway_error(create_from_url(client, url, **fields), status)["error"]

    assert refused("") == (
        "Create pipeline failed.: Invalid input error: Pipeline URL is empty. Please specify a valid URL.")
    assert gateway_error(client.post(f"{API}/pipelines", json={"name": "x"}), 400)["details"][0]["error_message"] == (
        "Pipeline URL is empty. Please specify a valid URL.")
    assert "Invalid Pipeline URL not a url. Please specify a valid URL" in refused("not a url")
    assert "Invalid Pipeline URL http://. Please specify a valid URL" in refused("http://")
    assert "Invalid Pipeline URL ftp://host/p.yaml" in refused("ftp://host/p.yaml")
    assert "Invalid Pipeline URL http://[::1/p.yaml" in refused("http://[::1/p.yaml")
    download_failed = "Failed to download the pipeline from"
    for url in (
        f"{http_base}/missing.yaml",
        f"{http_base}/pipelines/broken.yaml",
        f"{http_base}/pipelines/no-content.yaml",
        f"{http_base}/redirect/to-file.yaml",
        "http://127.0.0.1:1/p.yaml",
        (tmp_path / "missing.yaml").as_uri(),
        tmp_path.as_uri(),
        "file://elsewhere/etc/hostname",
    ):
        body = gateway_error(create_from_url(client, url), 400)
        assert body["details"][0]["error_message"] == (
            f"{download_failed} {url} Please double check the URL is valid and can be accessed by the pipeline "
            "system."), url
    assert "Unsupported argo version" in refused(f"{http_base}/pipelines/not-a-workflow.yaml")
    (tmp_path / "data.bin").write_bytes(b"\x00binary")
    assert "The URL is valid but pipeline system failed to read the file.: Invalid input error: Unexpected pipeline " \
           "file format" in refused((tmp_path / "data.bin").as_uri())
    assert "Pipeline name too long" in refused(f"{http_base}/pipelines/hello.yaml", name="n" * 101)
    assert "pipeline.name contains a NUL character" in refused(f"{http_base}/pipelines/hello.yaml", name="a\x00b")
    assert gateway_error(client.post(f"{API}/pipelines", json={"url": "not an object"}), 400)
    assert gateway_error(client.post(f"{API}/pipelines", data="{bad", content_type="application/json"), 400)

    assert create_from_url(client, f"{http_base}/pipelines/hello.yaml", name="taken").status_code == 200
    body = gateway_error(create_from_url(client, f"{http_base}/pipelines/hello.yaml", name="taken"), 409)
    assert body["code"] == 6
    assert body["error"] == ("Create pipeline failed.: Already exist error: Failed to create a new pipeline. The name "
                             "taken already exist. Please specify a new name.")
    assert body["details"][0]["error_message"] == (
        "Failed to create a new pipeline. The name taken already exist. Please specify a new name.")


def test_download_size_and_time_limits(settings, http_base, tmp_path: Path):
    app = create_app(settings.replace(max_upload_bytes=4096, url_fetch_timeout_seconds=0.3))
    try:
        client = app.test_client()
        for url in (f"{http_base}/pipelines/big.yaml", _big_file(tmp_path).as_uri()):
            body = gateway_error(create_from_url(client, url), 400)
            assert body["details"][0]["error_message"] == "File size too large. Maximum supported size: 4096", url
        started = time.monotonic()
        body = gateway_error(create_from_url(client, f"{http_base}{SLOW_PATH}"), 400)
        assert "Failed to download the pipeline from" in body["error"]
        assert time.monotonic() - started < 0.9
    finally:
        app.extensions["kfp_backend.services"].db.dispose()


def _big_file(directory: Path) -> Path:
    path = directory / "big.yaml"
    path.write_bytes(b"#" * 5000)
    return path


# --- get, get by name, delete, templates -----------------------------------------------------------------


def test_unknown_pipeline_is_404_everywhere(client):
    cases = [
        ("get", f"/pipelines/{MISSING_ID}", f"Get pipeline failed.: ResourceNotFoundError: Pipeline {MISSING_ID} "
                                             "not found."),
        ("delete", f"/pipelines/{MISSING_ID}", f"Delete pipeline failed.: ResourceNotFoundError: Pipeline "
                                                f"{MISSING_ID} not found."),
        ("get", f"/pipelines/{MISSING_ID}/templates", f"Get pipeline template failed.: ResourceNotFoundError: "
                                                       f"Pipeline {MISSING_ID} not found."),
        ("post", f"/pipelines/{MISSING_ID}/default_version/{MISSING_ID}", "Update pipeline default version failed.: "
         f"ResourceNotFoundError: Pipeline {MISSING_ID} not found."),
        ("get", "/namespaces/-/pipelines/nothing", "Get pipeline by name failed.: ResourceNotFoundError: "
                                                   "Namespace/Pipeline -/nothing not found."),
    ]
    for method, path, message in cases:
        body = gateway_error(getattr(client, method)(API + path), 404)
        assert body["code"] == 5
        assert body["error"] == message, path
        assert body["details"][0]["error_message"] == message.split("ResourceNotFoundError: ")[1]


def test_get_by_namespace_and_name(client):
    shared = uploaded(client, "same-name")
    namespaced = uploaded(client, "same-name", namespace="ns1")
    assert client.get(f"{API}/namespaces/-/pipelines/same-name").get_json() == shared
    assert client.get(f"{API}/namespaces/ns1/pipelines/same-name").get_json() == namespaced
    gateway_error(client.get(f"{API}/namespaces/ns2/pipelines/same-name"), 404)
    gateway_error(client.get(f"{API}/namespaces/ns1/pipelines/other"), 404)


def test_delete_cascades_to_versions_and_templates(client):
    pipeline = uploaded(client, "doomed")
    second = upload(client, "v2.yaml", workflow_yaml(), endpoint="upload_version", pipelineid=pipeline["id"])
    assert second.status_code == 200
    survivor = uploaded(client, "survivor")

    response = client.delete(f"{API}/pipelines/{pipeline['id']}")
    assert response.status_code == 200 and response.get_json() == {}
    gateway_error(client.get(f"{API}/pipelines/{pipeline['id']}"), 404)
    for version_id in (pipeline["id"], second.get_json()["id"]):
        gateway_error(client.get(f"{API}/pipeline_versions/{version_id}"), 404)
        gateway_error(client.get(f"{API}/pipeline_versions/{version_id}/templates"), 404)
    gateway_error(client.get(f"{API}/pipeline_versions", query_string={
        "resource_key.type": "PIPELINE", "resource_key.id": pipeline["id"]}), 404)
    gateway_error(client.delete(f"{API}/pipelines/{pipeline['id']}"), 404)

    assert names(client.get(f"{API}/pipelines").get_json()) == ["survivor"]
    assert client.get(f"{API}/pipelines/{survivor['id']}/templates").status_code == 200
    # The name is free again.
    assert uploaded(client, "doomed")["id"] != pipeline["id"]


def test_update_default_version(client):
    pipeline = uploaded(client, "defaults", workflow_yaml("first"))
    other = uploaded(client, "other")
    second = upload(client, "v2.yaml", workflow_yaml("second"), endpoint="upload_version", pipelineid=pipeline["id"])
    second_id = second.get_json()["id"]
    assert client.get(f"{API}/pipelines/{pipeline['id']}").get_json()["default_version"]["id"] == second_id

    response = client.post(f"{API}/pipelines/{pipeline['id']}/default_version/{pipeline['id']}")
    assert response.status_code == 200 and response.get_json() == {}
    fetched = client.get(f"{API}/pipelines/{pipeline['id']}").get_json()
    assert fetched["default_version"]["id"] == pipeline["id"]
    template = client.get(f"{API}/pipelines/{pipeline['id']}/templates").get_json()["template"]
    assert json.loads(template)["metadata"]["generateName"] == "first-"

    body = gateway_error(client.post(f"{API}/pipelines/{pipeline['id']}/default_version/{MISSING_ID}"), 404)
    assert body["error"] == (
        f"Update pipeline default version failed.: ResourceNotFoundError: Version {MISSING_ID} not found.")
    body = gateway_error(client.post(f"{API}/pipelines/{pipeline['id']}/default_version/{other['id']}"), 400)
    assert body["details"][0]["error_message"] == f"Version {other['id']} does not belong to pipeline {pipeline['id']}."
    gateway_error(client.post(f"{API}/pipelines/{MISSING_ID}/default_version/{second_id}"), 404)
    assert client.get(f"{API}/pipelines/{pipeline['id']}").get_json()["default_version"]["id"] == pipeline["id"]
    gateway_error(client.get(f"{API}/pipelines/{pipeline['id']}/default_version/{second_id}"), 405)


# --- list ------------------------------------------------------------------------------------------------


def test_list_paging_and_sorting(client, clock):
    created = ["charlie", "alpha", "echo", "bravo", "delta"]
    for index, name in enumerate(created):
        uploaded(client, name, description=f"{5 - index} description")

    def pages(**query: object) -> list[list[str]]:
        result, token = [], ""
        while True:
            response = client.get(f"{API}/pipelines", query_string={"page_size": 2, **query,
                                                                    **({"page_token": token} if token else {})})
            body = response.get_json()
            assert response.status_code == 200, body
            assert body["total_size"] == 5
            result.append(names(body))
            token = body.get("next_page_token", "")
            if not token:
                return result

    assert pages() == [["charlie", "alpha"], ["echo", "bravo"], ["delta"]]
    assert pages(sort_by="created_at") == pages()
    assert pages(sort_by="name") == [["alpha", "bravo"], ["charlie", "delta"], ["echo"]]
    assert pages(sort_by="name desc") == [["echo", "delta"], ["charlie", "bravo"], ["alpha"]]
    assert pages(sort_by="created_at desc") == [["delta", "bravo"], ["echo", "alpha"], ["charlie"]]
    assert pages(sort_by="description") == [["delta", "bravo"], ["echo", "alpha"], ["charlie"]]

    first = client.get(f"{API}/pipelines", query_string={"page_size": 2, "sort_by": "name"}).get_json()
    body = gateway_error(client.get(f"{API}/pipelines", query_string={
        "page_token": first["next_page_token"], "sort_by": "name desc"}), 400)
    assert "page token does not match" in body["error"]
    body = gateway_error(client.get(f"{API}/pipelines", query_string={"sort_by": "unknownfield"}), 400)
    assert body["error"] == ('Failed to create list options: Invalid input error: Invalid sorting field: '
                             '"unknownfield" on listable type Pipeline')
    gateway_error(client.get(f"{API}/pipelines", query_string={"page_token": "garbage"}), 400)
    everything = client.get(f"{API}/pipelines", query_string={"page_size": 10}).get_json()
    assert len(everything["pipelines"]) == 5 and "next_page_token" not in everything
    assert all(p["default_version"]["id"] == p["id"] for p in everything["pipelines"])


def test_list_filter(client):
    assert client.get(f"{API}/pipelines").get_json() == {}  # nothing listed: no keys at all
    for name in ("train", "train-large", "serve"):
        uploaded(client, name)
    # As the kfp client sends it: op as a number and camelCase value key.
    by_name = json.dumps({"predicates": [{"op": 1, "key": "name", "stringValue": "train"}]})
    body = client.get(f"{API}/pipelines", query_string={"filter": by_name}).get_json()
    assert names(body) == ["train"] and body["total_size"] == 1
    substring = json.dumps({"predicates": [{"op": "IS_SUBSTRING", "key": "name", "string_value": "TRAIN"}]})
    assert sorted(names(client.get(f"{API}/pipelines", query_string={"filter": substring}).get_json())) == [
        "train", "train-large"]
    within = json.dumps({"predicates": [{"op": "IN", "key": "name", "string_values": {"values": ["serve", "x"]}}]})
    assert names(client.get(f"{API}/pipelines", query_string={"filter": within}).get_json()) == ["serve"]
    nothing = json.dumps({"predicates": [{"op": "EQUALS", "key": "name", "string_value": "nope"}]})
    assert client.get(f"{API}/pipelines", query_string={"filter": nothing}).get_json() == {}
    bad_key = json.dumps({"predicates": [{"op": "EQUALS", "key": "status", "string_value": "READY"}]})
    assert 'unrecognized field "status"' in gateway_error(
        client.get(f"{API}/pipelines", query_string={"filter": bad_key}), 400)["error"]


def test_list_by_namespace_key(client):
    uploaded(client, "shared")
    uploaded(client, "mine", namespace="ns-a")
    uploaded(client, "theirs", namespace="ns-b")

    def listed(**query: str) -> list[str]:
        return names(client.get(f"{API}/pipelines", query_string=query).get_json())

    assert listed() == ["shared"]
    assert listed(**{"resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": "ns-a"}) == ["mine"]
    assert listed(**{"resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": ""}) == ["shared"]
    for kind in ("EXPERIMENT", "PIPELINE", "JOB"):
        body = gateway_error(client.get(f"{API}/pipelines", query_string={
            "resource_reference_key.type": kind, "resource_reference_key.id": "x"}), 400)
        assert body["details"][0]["error_message"] == (
            "Invalid resource references for pipelines. ListPipelines requires filtering by namespace.")
    gateway_error(client.get(f"{API}/pipelines", query_string={"resource_reference_key.type": "BOGUS"}), 400)


def test_list_reads_default_versions_in_one_query_and_never_templates(app, client):
    engine = app.extensions["kfp_backend.services"].db.engine
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    def count_list_statements() -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", record)
        try:
            assert client.get(f"{API}/pipelines").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert not [s for s in statements if "pipeline_templates" in s]
        return len(statements)

    for index in range(2):
        uploaded(client, f"few-{index}")
    few = count_list_statements()
    for index in range(6):
        pipeline = uploaded(client, f"many-{index}")
        upload(client, "v.yaml", workflow_yaml(), endpoint="upload_version", pipelineid=pipeline["id"])
    assert count_list_statements() == few
    body = client.get(f"{API}/pipelines").get_json()
    defaults = {p["name"]: p["default_version"]["name"] for p in body["pipelines"]}
    assert defaults == {"few-0": "few-0", "few-1": "few-1", **{f"many-{i}": "v.yaml" for i in range(6)}}
