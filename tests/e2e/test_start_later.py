"""Runs created now and started later (`POST /runs?start=false`, `POST /runs/{id}:start`) and batch status, on the
session's live server next to the kfp 1.8.22 client. The client has no `start` flag: the held runs are created
over REST; the client then reads them as any run.

A held run must not execute while the executor runs others: a run created after it is waited for to finish (the
executor has claimed and driven a run since), and the held run's step has left no trace.
"""

from __future__ import annotations

import base64
import io
import tarfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kfp import compiler, dsl

from tests.e2e import semantics_pipelines as sp
from tests.e2e.run_checks import wait_for_run, workflow_nodes

RUN_TIMEOUT = 90.0


@pytest.fixture
def marker(unique: str) -> Iterator[str]:
    yield unique
    for path in sp.TRACE_DIR.glob(f"{unique}-*"):
        path.unlink(missing_ok=True)


def counting_pipeline(marker: str, name: str) -> Callable:
    """One step that counts its executions in a trace file and outputs a word."""

    @dsl.pipeline(name=f"start-later-{name}")
    def pipeline():
        sp.sh("count", f"echo ran >> {sp.trace_path(marker, name)}; echo done > /tmp/word",
              file_outputs={"word": "/tmp/word"})

    return pipeline


def workflow_text(pipeline: Callable, tmp_path: Path) -> str:
    path = tmp_path / "pipeline.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(pipeline, str(path))
    return path.read_text()


def create_held(api_url: str, name: str, manifest: str) -> str:
    body = {"name": name, "pipeline_spec": {"workflow_manifest": manifest}}
    response = requests.post(f"{api_url}/runs", params={"start": "false"}, json=body, timeout=30)
    assert response.status_code == 200, response.text
    run = response.json()["run"]
    assert run["status"] == "Pending"
    return run["id"]


def post(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(url, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def ran(marker: str, name: str) -> list[str]:
    path = sp.trace_path(marker, name)
    return path.read_text().splitlines() if path.exists() else []


def test_a_held_run_waits_while_others_run_then_starts_and_succeeds(
    api_url: str, kfp_client: Any, marker: str, tmp_path: Path
) -> None:
    held_id = create_held(api_url, f"{marker}-held", workflow_text(counting_pipeline(marker, "held"), tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = kfp_client.create_run_from_pipeline_func(counting_pipeline(marker, "other"), arguments={},
                                                         run_name=f"{marker}-other")
    assert wait_for_run(kfp_client, other.run_id, RUN_TIMEOUT).run.status == "Succeeded"
    assert ran(marker, "other") == ["ran"]
    # The executor has driven a run created after the held one: the held one it left alone.
    assert kfp_client.get_run(held_id).run.status == "Pending"
    assert ran(marker, "held") == []

    for _ in range(2):  # a second start is harmless
        assert post(f"{api_url}/runs/{held_id}:start") == {}
    detail = wait_for_run(kfp_client, held_id, RUN_TIMEOUT)
    assert detail.run.status == "Succeeded"
    assert ran(marker, "held") == ["ran"]

    # Batch status: both runs in one call, then the held run's step with its output.
    runs = post(f"{api_url}/runs:batchGetStatus", {"run_ids": [held_id, other.run_id]})["runs"]
    assert [(entry["run_id"], entry["status"]) for entry in runs] == [(held_id, "Succeeded"),
                                                                      (other.run_id, "Succeeded")]
    pods = [node for node in workflow_nodes(detail) if node.get("type") == "Pod"]
    assert len(pods) == 1
    (node,) = post(f"{api_url}/runs:batchGetStatus",
                   {"nodes": [{"run_id": held_id, "node_id": pods[0]["id"]}]})["nodes"]
    assert node["phase"] == "Succeeded" and node["display_name"] == "count"
    (artifact,) = node["outputs"]["artifacts"]
    assert artifact["name"] == "count-word"
    server = api_url.removesuffix("/apis/v1beta1")
    response = requests.get(server + artifact["read_path"], timeout=30)
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(response.json()["data"]))) as archive:
        (member,) = archive.getmembers()
        assert archive.extractfile(member).read() == b"done\n"  # type: ignore[union-attr]


def test_a_held_run_terminated_ends_without_executing(
    api_url: str, kfp_client: Any, marker: str, tmp_path: Path
) -> None:
    held_id = create_held(api_url, f"{marker}-stopped", workflow_text(counting_pipeline(marker, "stopped"), tmp_path))
    post(f"{api_url}/runs/{held_id}/terminate")
    detail = wait_for_run(kfp_client, held_id, RUN_TIMEOUT)
    assert detail.run.status == "Failed"
    post(f"{api_url}/runs/{held_id}:start")  # too late: nothing happens
    assert kfp_client.get_run(held_id).run.status == "Failed"
    assert ran(marker, "stopped") == []
