"""The workflows upstream's own integration tests run (backend/test/resources at 1.8.5: hello-world,
arguments-parameters, loops, long-running) run through the kfp 1.8.22 client and end as upstream expects.

Three of them call `cowsay` from the `docker/whalesay` image. Steps run on the host here, so this module's
server gets a stand-in `cowsay` (it prints its arguments) on its PATH, as the image would provide it.
The stand-in lives under /var/tmp: a step's /tmp is private and would hide it.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.helpers import kfp_client_for
from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import live_server

RESOURCES = "reference/upstream-test-resources/backend-test-resources"


@pytest.fixture(scope="module")
def resources(shared_dir: Path) -> Path:
    return shared_dir / RESOURCES


@pytest.fixture(scope="module")
def cowsay_server(resources: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bin_dir = Path("/var/tmp") / f"kfp-backend-e2e-{uuid.uuid4().hex[:12]}" / "bin"
    bin_dir.mkdir(parents=True)
    cowsay = bin_dir / "cowsay"
    cowsay.write_text('#!/bin/sh\necho " < $* >"\n')
    cowsay.chmod(0o755)
    path = f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    try:
        with live_server(tmp_path_factory.mktemp("kfp-backend-cowsay"), env={"PATH": path}) as base_url:
            yield base_url
    finally:
        shutil.rmtree(bin_dir.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def client(cowsay_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with kfp_client_for(cowsay_server, tmp_path_factory.mktemp("kfp-context-cowsay")) as kfp_client:
        yield kfp_client


def _run(client: Any, resources: Path, name: str, unique: str, arguments: dict[str, str] | None = None) -> str:
    return client.create_run_from_pipeline_package(
        str(resources / name), arguments=arguments or {}, run_name=f"{unique}-{name}"
    ).run_id


def _log(server: str, run_id: str, node_id: str) -> str:
    response = requests.get(f"{server}/apis/v1beta1/runs/{run_id}/nodes/{node_id}/log", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def _pods(detail: Any) -> list[dict]:
    return [n for n in workflow_nodes(detail) if n.get("type") == "Pod"]


def test_hello_world(client, cowsay_server: str, resources: Path, unique: str) -> None:
    run_id = _run(client, resources, "hello-world.yaml", unique)
    detail = wait_for_run(client, run_id, timeout=60)
    assert detail.run.status == "Succeeded", workflow_nodes(detail)
    (pod,) = _pods(detail)
    # The entrypoint is the container template itself: the root node is the Pod.
    assert pod["phase"] == "Succeeded" and pod["templateName"] == "whalesay"
    assert "< hello world >" in _log(cowsay_server, run_id, pod["id"])


def test_arguments_parameters(client, cowsay_server: str, resources: Path, unique: str) -> None:
    run_id = _run(client, resources, "arguments-parameters.yaml", unique, {"param1": "goodbye", "param2": "world"})
    detail = wait_for_run(client, run_id, timeout=60)
    assert detail.run.status == "Succeeded", workflow_nodes(detail)
    (pod,) = _pods(detail)
    assert "< goodbye-world >" in _log(cowsay_server, run_id, pod["id"])


def test_loops(client, cowsay_server: str, resources: Path, unique: str) -> None:
    run_id = _run(client, resources, "loops.yaml", unique)
    detail = wait_for_run(client, run_id, timeout=60)
    assert detail.run.status == "Succeeded", workflow_nodes(detail)
    pods = _pods(detail)
    assert sorted(p["displayName"] for p in pods) == ["print-message(0:hello world)", "print-message(1:goodbye world)"]
    assert all(p["phase"] == "Succeeded" for p in pods)
    logs = sorted(_log(cowsay_server, run_id, p["id"]).strip() for p in pods)
    assert logs == ["< goodbye world >", "< hello world >"]


def test_long_running_is_terminated(client, resources: Path, unique: str) -> None:
    run_id = _run(client, resources, "long-running.yaml", unique)
    deadline = time.monotonic() + 30
    while not any(
        n["displayName"] == "step-1" and n["phase"] == "Running" for n in workflow_nodes(client.get_run(run_id))
    ):
        assert time.monotonic() < deadline, "step-1 never started"
        time.sleep(0.1)
    client.runs.terminate_run(run_id)
    assert client.get_run(run_id).run.status in ("Terminating", "Failed")
    # step-1 sleeps 300 s: finishing within the wait means it was killed.
    detail = wait_for_run(client, run_id, timeout=60)
    assert detail.run.status == "Failed", workflow_nodes(detail)
    nodes = {n["displayName"]: n for n in workflow_nodes(detail)}
    assert nodes["step-1"]["phase"] == "Failed"
    assert nodes.get("step-2", {}).get("phase", "Omitted") == "Omitted", nodes.get("step-2")
