"""Runs executed in-process (real step processes, the real executor) with KFP_BACKEND_ARTIFACT_STORE=s3://...
on moto's S3 server: artifacts pass between steps through the bucket, ReadArtifact serves them from it, a
finished step's log is stored there and served once the local file is gone, and a deleted run's objects go.
The local default store stays as it was: nothing of a run's logs is copied into it."""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests import ir_pipelines as ir
from tests.exit_retry_pipelines import nodes_by_display, workflow_manifest
from tests.s3_server import Bucket, passing_pipeline

RUNS = "/apis/v1beta1/runs"
FINISHED = {"Succeeded", "Failed", "Error"}
PREFIX = "kfp/"


@pytest.fixture
def s3_app(settings: Settings, s3_bucket: Bucket) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True, artifact_store=s3_bucket.url(PREFIX),
                                              s3_endpoint_url=s3_bucket.endpoint))
    yield application
    shutdown(application)


def _run_to_the_end(client: FlaskClient, manifest: str) -> tuple[str, str, dict]:
    response = client.post(RUNS, json={"name": "run", "pipeline_spec": {"workflow_manifest": manifest}})
    assert response.status_code == 200, response.get_data(as_text=True)
    run_id = response.get_json()["run"]["id"]
    deadline = time.monotonic() + 60
    while True:
        detail = client.get(f"{RUNS}/{run_id}").get_json()
        if detail["run"].get("status") in FINISHED:
            status = json.loads(detail["pipeline_runtime"]["workflow_manifest"])["status"]
            return run_id, detail["run"]["status"], status
        assert time.monotonic() < deadline, f"run not finished: {detail['run'].get('status')}"
        time.sleep(0.05)


def _keys(bucket: Bucket, prefix: str) -> list[str]:
    listed = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=prefix)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in listed.get("Contents") or ())


def _unpacked_file(data: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(data)), mode="r:gz") as tar:
        (member,) = tar.getmembers()
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read()


def test_a_v1_run_passes_artifacts_and_logs_through_s3(
    s3_app: Flask, s3_bucket: Bucket, settings: Settings
) -> None:
    client = s3_app.test_client()
    run_id, status, workflow = _run_to_the_end(client, workflow_manifest(passing_pipeline()))
    nodes = nodes_by_display(workflow["nodes"])
    assert status == "Succeeded", json.dumps(workflow, indent=1)
    produce, consume = nodes["produce"], nodes["consume"]
    (artifact,) = produce["outputs"]["artifacts"]
    key = f"artifacts/{run_id}/{produce['id']}/produce-data.tgz"
    assert artifact["s3"] == {"key": key}
    assert _keys(s3_bucket, f"{PREFIX}artifacts/{run_id}/") == sorted([
        PREFIX + key, f"{PREFIX}artifacts/{run_id}/{produce['id']}/main.log",
        f"{PREFIX}artifacts/{run_id}/{consume['id']}/main.log"])
    assert not (settings.data_dir / "artifacts").exists() or not any((settings.data_dir / "artifacts").iterdir())
    assert list((settings.data_dir / "tmp").iterdir()) == []  # archives are written there, then removed

    # ReadArtifact streams the .tgz from the bucket.
    response = client.get(f"{RUNS}/{run_id}/nodes/{produce['id']}/artifacts/produce-data:read")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert _unpacked_file(response.get_json()["data"]) == b"hello s3\n"

    # The log is served from this host's file, then from the bucket once that file is gone.
    log_url = f"{RUNS}/{run_id}/nodes/{consume['id']}/log"
    local = client.get(log_url)
    assert local.status_code == 200 and b"got\nhello s3\n" in local.data
    shutil.rmtree(settings.data_dir / "runs" / run_id)
    stored = client.get(log_url)
    assert stored.status_code == 200 and stored.data == local.data
    tail = client.get(log_url, headers={"Range": "bytes=-9"})
    assert (tail.status_code, tail.data) == (206, b"hello s3\n")
    assert tail.headers["Content-Range"] == f"bytes {len(local.data) - 9}-{len(local.data) - 1}/{len(local.data)}"

    # Deleting the run deletes its objects.
    assert client.delete(f"{RUNS}/{run_id}").status_code == 200
    deadline = time.monotonic() + 10
    while _keys(s3_bucket, f"{PREFIX}artifacts/{run_id}/"):
        assert time.monotonic() < deadline, "the run's objects are still there"
        time.sleep(0.05)


def test_a_kfp_v2_run_stores_its_artifacts_in_s3(s3_app: Flask, s3_bucket: Bucket) -> None:
    client = s3_app.test_client()
    run_id = ir.create_run(client, ir.artifact_passing())["run"]["id"]
    status, nodes = ir.wait_for(client, run_id)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    write = ir.by_display(nodes)["write"]
    (artifact,) = write["outputs"]["artifacts"]
    key = f"artifacts/{run_id}/{write['id']}/data.tgz"
    assert artifact["s3"] == {"key": key}
    assert PREFIX + key in _keys(s3_bucket, PREFIX)
    response = client.get(f"{RUNS}/{run_id}/nodes/{write['id']}/artifacts/data:read")
    assert response.status_code == 200
    assert _unpacked_file(response.get_json()["data"]) == b"line 1\nline 2\n"


def test_the_local_store_keeps_no_copy_of_logs(settings: Settings) -> None:
    application = create_app(settings.replace(executor_enabled=True))
    try:
        client = application.test_client()
        run_id, status, workflow = _run_to_the_end(client, workflow_manifest(passing_pipeline()))
        assert status == "Succeeded", json.dumps(workflow, indent=1)
        stored = sorted(str(path.relative_to(settings.data_dir)) for path in settings.data_dir.joinpath(
            "artifacts").rglob("*") if path.is_file())
        produce = nodes_by_display(workflow["nodes"])["produce"]
        assert stored == [f"artifacts/artifacts/{run_id}/{produce['id']}/produce-data.tgz"]
    finally:
        shutdown(application)


def test_an_unreachable_bucket_stops_the_start(settings: Settings, s3_bucket: Bucket) -> None:
    from kfp_backend.executor.artifacts import ArtifactStoreUnavailable

    with pytest.raises(ArtifactStoreUnavailable, match="s3://no-such-bucket/ cannot be reached"):
        create_app(settings.replace(artifact_store="s3://no-such-bucket", s3_endpoint_url=s3_bucket.endpoint))
