"""A step launched just before a kill -9, whose launch never reached the database, is not started twice.

The driver writes its progress behind its launches, so a server can die after spawning a step and
before the node row saying so is written. The test makes that happen for sure: it kills the server
while a step runs, then deletes the step's node row (the write that "never landed"), and starts a new
server on the same data. The new driver creates the node again, finds the launch record in the step's
directory and adopts the process (still running) or takes its recorded exit (ended meanwhile): the
step's counter file shows one execution, and the run succeeds.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import kfp
import pytest
from kfp import dsl

from kfp_backend.executor.launch_records import read_exit_code, read_launch_record
from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import free_port, start_server, stop_server

COUNTER_DIR = Path("/var/tmp")


def _counted_step(name: str, marker: str, seconds: float) -> dsl.ContainerOp:
    counter = COUNTER_DIR / f"kfp-backend-unrecorded-{marker}-{name}"
    return dsl.ContainerOp(
        name=name, image="alpine", command=["sh", "-c", f"echo ran >> {counter}; sleep {seconds}; echo done"]
    )


def _pipeline(marker: str, seconds: float):
    @dsl.pipeline(name="unrecorded-launch")
    def unrecorded_launch():
        first = _counted_step("first", marker, 0)
        slow = _counted_step("slow", marker, seconds).after(first)
        _counted_step("last", marker, 0).after(slow)

    return unrecorded_launch


@pytest.mark.parametrize("still_running", [True, False], ids=["adopted", "recorded-exit"])
def test_a_launch_the_database_never_heard_of_is_not_started_twice(tmp_path: Path, still_running: bool) -> None:
    marker = uuid.uuid4().hex[:12]
    port = free_port()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"
    server = start_server(port, data_dir, log_path)
    try:
        client = kfp.Client(host=f"http://127.0.0.1:{port}")
        seconds = 5 if still_running else 1.5
        run_id = client.create_run_from_pipeline_func(
            _pipeline(marker, seconds), arguments={}, run_name="unrecorded"
        ).run_id
        deadline = time.monotonic() + 60
        slow = None
        while slow is None:
            assert time.monotonic() < deadline, "the slow step never started"
            found = [n for n in workflow_nodes(client.get_run(run_id)) if n.get("displayName") == "slow"]
            slow = found[0] if found and found[0].get("phase") == "Running" else None
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        step_dir = data_dir / "runs" / run_id / slow["id"]
        record = read_launch_record(step_dir)
        assert record is not None
        if not still_running:  # the step ends while no server watches it
            while read_exit_code(step_dir) is None:
                assert time.monotonic() < deadline, "the slow step never ended"
                time.sleep(0.05)

        # The node row that would have recorded the launch never got written.
        with sqlite3.connect(data_dir / "kfp-backend.db") as db:
            deleted = db.execute("DELETE FROM run_nodes WHERE run_id = ? AND node_id = ?", (run_id, slow["id"]))
            assert deleted.rowcount == 1

        server = start_server(port, data_dir, log_path)
        detail = wait_for_run(client, run_id, timeout=90)
        nodes = {n["displayName"]: n for n in workflow_nodes(detail)}
        assert detail.run.status == "Succeeded", json.dumps(nodes, indent=1)
        assert {nodes[name]["phase"] for name in ("first", "slow", "last")} == {"Succeeded"}
        for name in ("first", "slow", "last"):
            runs = (COUNTER_DIR / f"kfp-backend-unrecorded-{marker}-{name}").read_text().splitlines()
            assert len(runs) == 1, f"{name} ran {len(runs)} times"
        # The same process: its launch record is the one the killed server's launch wrote.
        assert read_launch_record(step_dir) == record
        assert (step_dir / "log").read_text() == "done\n"
    finally:
        stop_server(server)
        for path in COUNTER_DIR.glob(f"kfp-backend-unrecorded-{marker}-*"):
            path.unlink()
