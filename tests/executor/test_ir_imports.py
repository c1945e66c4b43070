"""`dsl.importer` in KFP v2 runs executed in-process (real step processes, the real executor): the consuming
task finds the imported artifact's bytes at its path, read from the artifact store (an artifact of an
earlier run, by the URI that run gave it), from S3 (moto's server: s3:// and minio:// URIs, an object or a
directory) or from a host path (single-user mode); a URI the server cannot read fails the consuming task
saying why. Multi-user refusals are checked on the importer itself (`ArtifactImports`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.executor.artifact_imports import ArtifactImportError, ArtifactImports
from kfp_backend.executor.artifacts import LocalArtifactStore
from tests import ir_pipelines as ir
from tests.ir_pipelines import by_display, run_to_the_end
from tests.s3_server import Bucket


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


def _importing(uri: str, want: str, *, directory: bool = False) -> dict:
    """`importer` names `uri`; `read` checks the content at the artifact's path (`want`: a file's text, or
    with `directory` the text of `<path>/sub/file.txt`)."""
    path = "$0/sub/file.txt" if directory else "$0"
    return ir.pipeline("importing", [
        ("comp-importer", {"executorLabel": "exec-importer",
                           "inputDefinitions": {"parameters": ir.parameters(uri="STRING")},
                           "outputDefinitions": {"artifacts": ir.artifacts("artifact")}},
         {"importer": {"artifactUri": {"runtimeParameter": "uri"},
                       "typeSchema": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
                       "reimport": False}}),
        ir.sh_component("read", f'got="$(cat "{path}")"; test "$got" = "$1" || {{ echo "got [$got]"; exit 1; }}',
                        ["{{$.inputs.artifacts['data'].path}}", want], inputs={"artifacts": ir.artifacts("data")}),
    ], {"dag": {"tasks": {
        "importer": ir.task("comp-importer", parameters={"uri": ir.const(uri)}),
        "read": ir.task("comp-read", artifacts={"data": ir.artifact_of("importer", "artifact")}),
    }}})


def _succeeds(client: FlaskClient, spec: dict) -> dict:
    status, nodes = run_to_the_end(client, spec)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    return nodes


def test_a_host_file_or_directory_is_copied_for_the_consuming_task(client: FlaskClient, tmp_path: Path) -> None:
    source = tmp_path / "imports"
    (source / "dir" / "sub").mkdir(parents=True)
    (source / "data.txt").write_text("from the host")
    (source / "dir" / "sub" / "file.txt").write_text("in a directory")
    nodes = _succeeds(client, _importing(f"file://{source}/data.txt", "from the host"))
    # The SDK reads a local artifact's path from its URI: the importer gives file:// URIs as paths.
    assert by_display(nodes)["importer"]["outputs"] == {"artifacts": [{"name": "artifact",
                                                                       "uri": f"{source}/data.txt"}]}
    _succeeds(client, _importing(str(source / "dir"), "in a directory", directory=True))


def test_an_artifact_of_an_earlier_run_is_read_from_the_store_by_its_uri(client: FlaskClient) -> None:
    write = ir.sh_component("write", 'mkdir -p "$(dirname "$0")"; printf "made earlier" > "$0"',
                            ["{{$.outputs.artifacts['data'].path}}"], outputs={"artifacts": ir.artifacts("data")})
    nodes = _succeeds(client, ir.pipeline("producing", [write], {"dag": {"tasks": {"write": ir.task("comp-write")}}}))
    uri = by_display(nodes)["write"]["outputs"]["artifacts"][0]["uri"]
    assert uri.startswith("minio://mlpipeline/v2/artifacts/")
    _succeeds(client, _importing(uri, "made earlier"))


@pytest.mark.parametrize(("uri", "message"), [
    ("gs://bucket/data.csv", "this server reads s3:// and minio:// URIs and local paths, not gs ones"),
    ("https://example.com/data.csv", "not https ones"),
    ("/nonexistent/kfp-backend-import", "No such file or directory"),
], ids=["gs", "https", "missing-file"])
def test_a_uri_the_server_cannot_read_fails_the_consuming_task(client: FlaskClient, uri: str, message: str) -> None:
    status, nodes = run_to_the_end(client, _importing(uri, "anything"))
    assert status in ("Failed", "Error")
    found = by_display(nodes)
    assert found["importer"]["phase"] == "Succeeded"  # it only names the artifact, as upstream
    assert found["read"]["phase"] in ("Failed", "Error")
    assert message in found["read"]["message"], found["read"]["message"]


# -- S3 ------------------------------------------------------------------------------------------------


@pytest.fixture
def s3_app(settings: Settings, s3_bucket: Bucket) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True, artifact_store=s3_bucket.url("kfp/"),
                                              s3_endpoint_url=s3_bucket.endpoint))
    yield application
    shutdown(application)


def test_s3_and_minio_uris_are_read_through_the_s3_service(s3_app: Flask, s3_bucket: Bucket) -> None:
    client = s3_app.test_client()
    put = s3_bucket.client.put_object  # type: ignore[attr-defined]
    other = f"other-{uuid.uuid4().hex[:12]}"
    s3_bucket.client.create_bucket(Bucket=other)  # type: ignore[attr-defined]
    put(Bucket=other, Key="in/data.txt", Body=b"an object")
    put(Bucket=other, Key="tree/sub/file.txt", Body=b"under a prefix")
    put(Bucket=s3_bucket.name, Key="kfp/uploads/raw.txt", Body=b"beside the store's objects")
    _succeeds(client, _importing(f"s3://{other}/in/data.txt", "an object"))
    _succeeds(client, _importing(f"minio://{other}/in/data.txt", "an object"))
    _succeeds(client, _importing(f"s3://{other}/tree", "under a prefix", directory=True))
    _succeeds(client, _importing(f"s3://{s3_bucket.name}/kfp/uploads/raw.txt", "beside the store's objects"))
    status, nodes = run_to_the_end(client, _importing(f"s3://{other}/missing.txt", "x"))
    assert status in ("Failed", "Error")
    assert "does not exist" in by_display(nodes)["read"]["message"]


def test_an_earlier_runs_artifact_is_read_from_an_s3_store(s3_app: Flask) -> None:
    client = s3_app.test_client()
    write = ir.sh_component("write", 'mkdir -p "$(dirname "$0")"; printf "stored in s3" > "$0"',
                            ["{{$.outputs.artifacts['data'].path}}"], outputs={"artifacts": ir.artifacts("data")})
    nodes = _succeeds(client, ir.pipeline("producing", [write], {"dag": {"tasks": {"write": ir.task("comp-write")}}}))
    _succeeds(client, _importing(by_display(nodes)["write"]["outputs"]["artifacts"][0]["uri"], "stored in s3"))


# -- multi-user refusals -----------------------------------------------------------------------------


def test_multi_user_mode_reads_no_host_file_no_store_object_and_no_other_namespaces_artifact(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    produced = tmp_path / "produced"
    produced.write_text("tenant a's")
    run_a = str(uuid.uuid4())
    store.put(f"artifacts/{run_a}/node-1/data.tgz", produced)
    imports = ArtifactImports(store, multi_user=True, store_bucket="kfp-store", store_prefix="kfp/",
                              run_namespace=lambda run_id: "a" if run_id == run_a else None)
    uri = f"minio://mlpipeline/v2/artifacts/{run_a}/node-1/data"
    imports.fetch(uri, tmp_path / "mine", namespace="a")
    assert (tmp_path / "mine").read_text() == "tenant a's"
    refusals = {
        uri: "belongs to a run of another namespace",
        str(produced): "multi-user mode does not read host files",
        f"file://{produced}": "multi-user mode does not read host files",
        "s3://kfp-store/kfp/artifacts/x.tgz": "inside this server's artifact store",
        "minio://kfp-store/kfp/logs/x.log": "inside this server's artifact store",
    }
    for refused, message in refusals.items():
        with pytest.raises(ArtifactImportError, match=message):
            imports.fetch(refused, tmp_path / "theirs", namespace="b")
        assert not (tmp_path / "theirs").exists()
