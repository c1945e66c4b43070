"""PipelineService, versions: create from a URL, get, list, delete (the default moves), templates."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from kfp_backend.app import create_app
from kfp_backend.services import pipelines as pipeline_service
from tests.api.test_pipelines import names
from tests.api.test_upload import API, MISSING_ID, tar_gz_bytes, upload, uploaded, workflow_yaml
from tests.gateway_errors import gateway_error


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Creation times under the test's control: each creation takes now[0], then now[0] moves on by step[0]."""
    state = [1_700_000_000, 1]

    def tick() -> int:
        current = state[0]
        state[0] += state[1]
        return current

    monkeypatch.setattr(pipeline_service, "now_seconds", tick)
    return state


def owner(pipeline_id: str) -> list[dict]:
    return [{"key": {"type": "PIPELINE", "id": pipeline_id}, "relationship": "OWNER"}]


def create_version(client, url: str, pipeline_id: str | None, **fields: object):
    body: dict = {"package_url": {"pipeline_url": url}, **fields}
    if pipeline_id is not None:
        body.setdefault("resource_references", owner(pipeline_id))
    return client.post(f"{API}/pipeline_versions", json=body)


def add_version(client, pipeline_id: str, name: str, content: str | None = None) -> dict:
    response = upload(client, "v.yaml", content or workflow_yaml(name), endpoint="upload_version",
                      pipelineid=pipeline_id, name=name)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def versions_of(client, pipeline_id: str, **query: object):
    return client.get(f"{API}/pipeline_versions", query_string={
        "resource_key.type": "PIPELINE", "resource_key.id": pipeline_id, **query})


def default_of(client, pipeline_id: str) -> str | None:
    return client.get(f"{API}/pipelines/{pipeline_id}").get_json().get("default_version", {}).get("id")


# --- create from a URL -----------------------------------------------------------------------------------


def test_create_version_from_url(client, tmp_path: Path):
    pipeline = uploaded(client, "owner")
    package = tmp_path / "arguments.tar.gz"
    package.write_bytes(tar_gz_bytes({"pipeline.yaml": workflow_yaml("args", {"param1": "hello", "param2": None})}))

    response = create_version(client, package.as_uri(), pipeline["id"], name="sequential",
                              description="from a file", code_source_url="https://example.com/src")
    assert response.status_code == 200, response.get_json()
    version = response.get_json()
    assert version == {
        "id": version["id"],
        "name": "sequential",
        "created_at": version["created_at"],
        "parameters": [{"name": "param1", "value": "hello"}, {"name": "param2"}],
        "code_source_url": "https://example.com/src",
        "resource_references": owner(pipeline["id"]),
        "description": "from a file",
    }
    assert client.get(f"{API}/pipeline_versions/{version['id']}").get_json() == version
    assert default_of(client, pipeline["id"]) == version["id"]
    template = client.get(f"{API}/pipeline_versions/{version['id']}/templates").get_json()["template"]
    assert json.loads(template) == yaml.safe_load(workflow_yaml("args", {"param1": "hello", "param2": None}))

    unnamed = create_version(client, package.as_uri(), pipeline["id"])
    assert unnamed.status_code == 200, unnamed.get_json()
    assert unnamed.get_json()["name"] == "arguments.tar.gz"
    # camelCase keys and enum numbers are read too.
    camel = client.post(f"{API}/pipeline_versions", json={
        "name": "camel", "packageUrl": {"pipelineUrl": package.as_uri()},
        "resourceReferences": [{"key": {"type": 3, "id": pipeline["id"]}, "relationship": 1}]})
    assert camel.status_code == 200, camel.get_json()


def test_create_version_errors(client, tmp_path: Path):
    pipeline = uploaded(client, "owner")
    package = tmp_path / "v.yaml"
    package.write_text(workflow_yaml())
    url = package.as_uri()

    body = gateway_error(create_version(client, "", pipeline["id"]), 400)
    assert body["details"][0]["error_message"] == "Pipeline URL is empty. Please specify a valid URL."
    gateway_error(client.post(f"{API}/pipeline_versions", json={}), 400)
    for references in ([], [{"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "CREATOR"}],
                       [{"key": {"type": "EXPERIMENT", "id": pipeline["id"]}, "relationship": "OWNER"}],
                       [{"key": {"type": "PIPELINE", "id": ""}, "relationship": "OWNER"}]):
        body = gateway_error(create_version(client, url, None, resource_references=references), 400)
        assert body["details"][0]["error_message"] == "Create pipeline version failed due to missing pipeline id"
    body = gateway_error(create_version(client, url, MISSING_ID), 404)
    assert body["error"] == (
        f"Create pipeline version failed.: ResourceNotFoundError: Pipeline {MISSING_ID} not found.")
    assert "Failed to download the pipeline from" in gateway_error(
        create_version(client, (tmp_path / "missing.yaml").as_uri(), pipeline["id"]), 400)["error"]
    (tmp_path / "bad.yaml").write_text("kind: Workflow\n")
    assert "Unsupported argo version" in gateway_error(
        create_version(client, (tmp_path / "bad.yaml").as_uri(), pipeline["id"]), 400)["error"]
    assert "Pipeline name too long" in gateway_error(
        create_version(client, url, pipeline["id"], name="x" * 101), 400)["error"]
    gateway_error(create_version(client, url, pipeline["id"], resource_references="nope"), 400)

    body = gateway_error(create_version(client, url, pipeline["id"], name="owner"), 409)
    assert body["details"][0]["error_message"] == (
        "Failed to create a new pipeline version. The name owner already exist. Please specify a new name.")
    assert names(versions_of(client, pipeline["id"]).get_json(), "versions") == ["owner"]


# --- get, templates, 404s --------------------------------------------------------------------------------


def test_unknown_version_is_404_everywhere(client):
    cases = [
        ("get", f"/pipeline_versions/{MISSING_ID}", "Get pipeline version failed."),
        ("delete", f"/pipeline_versions/{MISSING_ID}", "Delete pipeline version failed."),
        ("get", f"/pipeline_versions/{MISSING_ID}/templates", "Get pipeline version template failed."),
    ]
    for method, path, context in cases:
        body = gateway_error(getattr(client, method)(API + path), 404)
        assert body["error"] == f"{context}: ResourceNotFoundError: Version {MISSING_ID} not found.", path
        assert body["details"][0]["error_message"] == f"Version {MISSING_ID} not found."


def test_first_version_is_the_pipeline(client):
    pipeline = uploaded(client, "first", workflow_yaml("first", {"a": "1"}))
    version = client.get(f"{API}/pipeline_versions/{pipeline['id']}").get_json()
    assert version == pipeline["default_version"]
    assert "description" not in version  # the pipeline's description is not the version's
    listed = versions_of(client, pipeline["id"]).get_json()
    assert listed == {"versions": [version], "total_size": 1}


# --- list ------------------------------------------------------------------------------------------------


def test_list_versions_requires_a_pipeline_key(client):
    pipeline = uploaded(client, "owner")
    for query in ({}, {"resource_key.type": "PIPELINE"}, {"resource_key.id": ""}):
        body = gateway_error(client.get(f"{API}/pipeline_versions", query_string=query), 400)
        assert body["error"] == "Invalid input error: ResourceKey must be set in the input"
    # The type is not required (upstream uses only the id), but another type is refused.
    assert client.get(f"{API}/pipeline_versions", query_string={"resource_key.id": pipeline["id"]}).status_code == 200
    assert client.get(f"{API}/pipeline_versions", query_string={"resourceKey.id": pipeline["id"]}).status_code == 200
    gateway_error(client.get(f"{API}/pipeline_versions", query_string={
        "resource_key.type": "EXPERIMENT", "resource_key.id": pipeline["id"]}), 400)
    body = gateway_error(versions_of(client, MISSING_ID), 404)
    assert body["error"] == f"List pipeline versions failed.: ResourceNotFoundError: Pipeline {MISSING_ID} not found."


def test_list_versions_paging_and_sorting(client, clock):
    pipeline = uploaded(client, "test_pipeline")  # the implicit first version is listed too
    for name in ("sequential", "arguments-parameters.yaml", "zip-arguments-parameters", "arguments"):
        add_version(client, pipeline["id"], name)
    other = uploaded(client, "other")
    add_version(client, other["id"], "not-mine")

    def pages(**query: object) -> list[list[str]]:
        result, token = [], ""
        while True:
            response = versions_of(client, pipeline["id"], page_size=3, **query,
                                   **({"page_token": token} if token else {}))
            body = response.get_json()
            assert response.status_code == 200, body
            assert body["total_size"] == 5
            result.append(names(body, "versions"))
            token = body.get("next_page_token", "")
            if not token:
                return result

    assert pages() == [["test_pipeline", "sequential", "arguments-parameters.yaml"],
                       ["zip-arguments-parameters", "arguments"]]
    assert pages(sort_by="name") == [["arguments", "arguments-parameters.yaml", "sequential"],
                                     ["test_pipeline", "zip-arguments-parameters"]]
    assert pages(sort_by="name desc") == [["zip-arguments-parameters", "test_pipeline", "sequential"],
                                          ["arguments-parameters.yaml", "arguments"]]
    assert pages(sort_by="created_at desc") == [["arguments", "zip-arguments-parameters", "arguments-parameters.yaml"],
                                                ["sequential", "test_pipeline"]]
    body = gateway_error(versions_of(client, pipeline["id"], sort_by="unknownfield"), 400)
    assert body["error"] == ('Failed to create list options: Invalid input error: Invalid sorting field: '
                             '"unknownfield" on listable type PipelineVersion')
    by_name = json.dumps({"predicates": [{"op": 1, "key": "name", "stringValue": "arguments"}]})
    assert names(versions_of(client, pipeline["id"], filter=by_name).get_json(), "versions") == ["arguments"]
    ready = json.dumps({"predicates": [{"op": "EQUALS", "key": "status", "string_value": "READY"}]})
    assert versions_of(client, pipeline["id"], filter=ready).get_json()["total_size"] == 5


# --- delete and the default version ----------------------------------------------------------------------


def test_deleting_the_default_moves_it_to_the_newest_remaining_version(client, clock):
    pipeline = uploaded(client, "moving")
    second = add_version(client, pipeline["id"], "second")
    third = add_version(client, pipeline["id"], "third")
    assert default_of(client, pipeline["id"]) == third["id"]

    response = client.delete(f"{API}/pipeline_versions/{third['id']}")
    assert response.status_code == 200 and response.get_json() == {}
    assert default_of(client, pipeline["id"]) == second["id"]
    template = client.get(f"{API}/pipelines/{pipeline['id']}/templates").get_json()["template"]
    assert json.loads(template)["metadata"]["generateName"] == "second-"

    # Deleting a version that is not the default leaves the default alone.
    assert client.post(f"{API}/pipelines/{pipeline['id']}/default_version/{pipeline['id']}").status_code == 200
    assert client.delete(f"{API}/pipeline_versions/{second['id']}").status_code == 200
    assert default_of(client, pipeline["id"]) == pipeline["id"]
    gateway_error(client.delete(f"{API}/pipeline_versions/{second['id']}"), 404)

    # Deleting the last version keeps the pipeline, without a default version or template.
    assert client.delete(f"{API}/pipeline_versions/{pipeline['id']}").status_code == 200
    fetched = client.get(f"{API}/pipelines/{pipeline['id']}").get_json()
    assert "default_version" not in fetched and fetched["name"] == "moving"
    assert client.get(f"{API}/pipelines/{pipeline['id']}/templates").get_json() == {}
    assert versions_of(client, pipeline["id"]).get_json() == {}
    listed = client.get(f"{API}/pipelines").get_json()["pipelines"]
    assert [p["id"] for p in listed] == [pipeline["id"]] and "default_version" not in listed[0]

    # A new version becomes the default again.
    fourth = add_version(client, pipeline["id"], "fourth")
    assert default_of(client, pipeline["id"]) == fourth["id"]


def test_default_move_breaks_creation_time_ties_by_id(client, clock):
    clock[1] = 0  # every creation in the same second
    pipeline = uploaded(client, "ties")
    created = [add_version(client, pipeline["id"], f"v{index}")["id"] for index in range(4)]
    remaining = sorted([pipeline["id"], *created])
    default = default_of(client, pipeline["id"])
    assert client.delete(f"{API}/pipeline_versions/{default}").status_code == 200
    remaining.remove(default)
    assert default_of(client, pipeline["id"]) == max(remaining)


def test_auto_update_default_version_off(settings):
    app = create_app(settings.replace(auto_update_default_version=False))
    try:
        client = app.test_client()
        pipeline = uploaded(client, "kept")
        second = add_version(client, pipeline["id"], "second")
        assert default_of(client, pipeline["id"]) == pipeline["id"]
        assert client.delete(f"{API}/pipeline_versions/{pipeline['id']}").status_code == 200
        assert default_of(client, pipeline["id"]) == second["id"]
    finally:
        app.extensions["kfp_backend.services"].db.dispose()


def test_concurrent_version_writes_keep_the_default_valid(app):
    """Version creates and deletes racing on one pipeline (the pipeline row lock serializes them)."""
    client = app.test_client()
    pipeline = uploaded(client, "racing")

    def add(index: int) -> int:
        response = upload(app.test_client(), "v.yaml", workflow_yaml(), endpoint="upload_version",
                          pipelineid=pipeline["id"], name=f"v{index}")
        return response.status_code

    def delete(version_id: str) -> int:
        return app.test_client().delete(f"{API}/pipeline_versions/{version_id}").status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(add, range(12))) == {200}
        ids = [v["id"] for v in versions_of(client, pipeline["id"], page_size=100).get_json()["versions"]]
        assert len(ids) == 13
        survivors = ids[-2:]
        assert set(pool.map(delete, ids[:-2])) == {200}
    assert default_of(client, pipeline["id"]) in survivors
