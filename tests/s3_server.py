"""A real S3 API for tests: moto's server mode in a subprocess on a free port (not mocked boto calls).

`s3_endpoint` starts one server per session; `s3_bucket` gives a test a fresh bucket on it, with
test credentials in the environment (boto3's usual chain reads them). Skipped, saying why, without moto.
`passing_pipeline` is a kfp 1.8 pipeline whose steps pass an artifact and write logs, to run over it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("boto3", reason="boto3 is not installed (pip install 'kfp-backend[s3]')")
    pytest.importorskip("moto.server", reason="moto's server mode is not installed (pip install 'moto[server]')")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@dataclass(frozen=True)
class Bucket:
    endpoint: str
    name: str
    client: object  # a boto3 S3 client on the server

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.name}/{prefix}"


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    import boto3

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = f"test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return Bucket(s3_endpoint, name, client)


def passing_pipeline() -> Callable:
    """`produce` writes a file and a log line; `consume` gets the file as an input artifact and prints it."""
    from kfp import dsl  # kfp 1.8's

    @dsl.pipeline(name="s3-artifacts")
    def pipeline():
        produce = dsl.ContainerOp(
            name="produce", image="alpine",
            command=["sh", "-c", "mkdir -p /tmp/out; printf 'hello s3\\n' > /tmp/out/data; echo produced"],
            file_outputs={"data": "/tmp/out/data"})
        dsl.ContainerOp(
            name="consume", image="alpine", command=["sh", "-c", "echo got; cat /tmp/in/data"],
            artifact_argument_paths=[dsl.InputArgumentPath(produce.outputs["data"], path="/tmp/in/data")])

    return pipeline
