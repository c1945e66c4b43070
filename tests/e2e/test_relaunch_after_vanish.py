"""A step whose process vanished while no server watched it is started again, and says so.

The test kills the server (kill -9) while a step runs, then kills the step's whole process group, so
the step leaves no exit code (what a lost host or an OOM kill of the wrapper leaves). A new server on
the same data and database finds the node `Running` with its process gone and starts the step again:
the node's `message` says it was relaunched and why, and its log keeps the lost attempt's output,
then a line saying the step starts again, then the new attempt's output. With the node marked as
running on another host, the message names that host; with the node row never written (the server died
between the launch and that write), the launch record in the step's directory tells the same story.
Over SQLite, PostgreSQL and MariaDB (the node rows carry the note).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import kfp
import pytest
import requests
from kfp import dsl
from sqlalchemy import create_engine, delete, select, update

from kfp_backend.executor.launch_records import read_launch_record
from kfp_backend.store.models import RunNode
from tests.databases import DatabaseFactory
from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import free_port, start_server, stop_server

TRACE_DIR = Path("/var/tmp")
VANISHED = "vanished"  # the node says Running; its process is gone without an exit code
HOST_LOST = "host-lost"  # the node says Running on another host, whose executor is gone
UNRECORDED = "unrecorded"  # no node row says the step was launched; its launch record shows it vanished


def _step(name: str, script: str) -> dsl.ContainerOp:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return dsl.ContainerOp(name=name, image="alpine", command=["sh", "-c", script])


def _pipeline(marker: str):
    counter = TRACE_DIR / f"{marker}-slow"

    @dsl.pipeline(name="relaunch-after-vanish")
    def relaunch_after_vanish():
        first = _step("first", f"echo ran >> {TRACE_DIR}/{marker}-first")
        # The first execution sleeps (and is lost); the next one ends at once.
        slow = _step("slow", f"echo ran >> {counter}; n=$(wc -l < {counter}); echo execution $n; "
                             "[ $n -ge 2 ] || exec sleep 300").after(first)
        _step("last", f"echo ran >> {TRACE_DIR}/{marker}-last").after(slow)

    return relaunch_after_vanish


class Server:
    """A `kfp-backend serve` process on a data dir and database that outlive it."""

    def __init__(self, workdir: Path, database_url: str | None) -> None:
        self.port = free_port()
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        self.database_url = database_url
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_server(self.port, self.data_dir, self.log_path, database_url=self.database_url)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_server(self.process)


@pytest.fixture
def marker() -> Iterator[str]:
    marker = f"kfp-backend-relaunch-{uuid.uuid4().hex[:12]}"
    yield marker
    for path in TRACE_DIR.glob(f"{marker}-*"):
        path.unlink(missing_ok=True)


@pytest.fixture
def database_url(backend: str, database_factories: dict[str, DatabaseFactory]) -> Iterator[str | None]:
    """None (the server's own SQLite file) or an empty PostgreSQL/MariaDB database it migrates itself."""
    if backend == "sqlite":
        yield None
        return
    with database_factories[backend].empty() as url:
        yield url


def _kill_group_and_wait(step_dir: Path) -> None:
    record = read_launch_record(step_dir)
    assert record is not None, "the step has no launch record"
    os.killpg(record.pid, signal.SIGKILL)  # the wrapper goes too: nobody records an exit code
    deadline = time.monotonic() + 10
    while record.is_running():
        assert time.monotonic() < deadline, "the step's process survived SIGKILL"
        time.sleep(0.05)


def _forget_node(database_url: str, run_id: str, node_id: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            deleted = connection.execute(delete(RunNode).where(RunNode.run_id == run_id, RunNode.node_id == node_id))
            assert deleted.rowcount == 1
    finally:
        engine.dispose()


def _mark_as_run_elsewhere(database_url: str, run_id: str, node_id: str, host: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            data = json.loads(connection.scalar(
                select(RunNode.data).where(RunNode.run_id == run_id, RunNode.node_id == node_id)))
            data["hostNodeName"] = host
            connection.execute(update(RunNode).where(RunNode.run_id == run_id, RunNode.node_id == node_id)
                               .values(data=json.dumps(data)))
    finally:
        engine.dispose()


# The other cases take the same code over every database: SQLite is enough for them.
@pytest.mark.parametrize(("backend", "case"), [
    ("sqlite", VANISHED), ("postgres", VANISHED), ("mysql", VANISHED), ("sqlite", HOST_LOST), ("sqlite", UNRECORDED),
], ids=lambda value: value)
def test_a_step_relaunched_after_its_process_vanished_says_so(
    tmp_path: Path, marker: str, backend: str, database_url: str | None, case: str
) -> None:
    server = Server(tmp_path, database_url)
    server.start()
    try:
        client = kfp.Client(host=server.url)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
            run_id = client.create_run_from_pipeline_func(_pipeline(marker), arguments={}, run_name=marker).run_id
        counter = TRACE_DIR / f"{marker}-slow"
        deadline = time.monotonic() + 60
        slow = None
        while slow is None or not counter.exists():
            assert time.monotonic() < deadline, "the slow step never started"
            found = [n for n in workflow_nodes(client.get_run(run_id)) if n.get("displayName") == "slow"]
            slow = found[0] if found and found[0].get("phase") == "Running" else None
            time.sleep(0.05)
        server.kill()
        step_dir = server.data_dir / "runs" / run_id / slow["id"]
        _kill_group_and_wait(step_dir)
        url = database_url or f"sqlite:///{server.data_dir / 'kfp-backend.db'}"
        if case == HOST_LOST:
            _mark_as_run_elsewhere(url, run_id, slow["id"], "lost-host.example")
        elif case == UNRECORDED:  # the write saying the step was launched never landed
            _forget_node(url, run_id, slow["id"])

        server.start()
        detail = wait_for_run(client, run_id, timeout=90)
        nodes = {n["displayName"]: n for n in workflow_nodes(detail)}
        assert detail.run.status == "Succeeded", json.dumps(nodes, indent=1)
        assert {nodes[name]["phase"] for name in ("first", "slow", "last")} == {"Succeeded"}
        assert counter.read_text().splitlines() == ["ran", "ran"]
        for name in ("first", "last"):
            assert (TRACE_DIR / f"{marker}-{name}").read_text() == "ran\n", f"{name} ran again"

        message = nodes["slow"].get("message", "")
        assert message.startswith("relaunched: "), json.dumps(nodes["slow"], indent=1)
        if case == HOST_LOST:
            assert "lost-host.example" in message, message
        else:
            assert "vanished without an exit code" in message, message
        response = requests.get(f"{server.url}/apis/v1beta1/runs/{run_id}/nodes/{slow['id']}/log", timeout=10)
        assert response.status_code == 200, response.text
        lines = response.text.splitlines()
        assert len(lines) == 3 and lines[0] == "execution 1" and lines[2] == "execution 2", response.text
        assert lines[1].startswith("[kfp-backend ") and lines[1].endswith(f"] {message}; the step starts again")
    finally:
        server.stop()
