"""kill -9 of the server in the middle of a run; a new server on the same data finishes the run.

Succeeded steps are not run again and the step that was running when the server died is adopted,
not started twice: every step appends a line to its own counter file under /var/tmp.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import kfp
from kfp import dsl

from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import free_port, start_server, stop_server

COUNTER_DIR = Path("/var/tmp")


def _counted_step(name: str, marker: str, seconds: float) -> dsl.ContainerOp:
    counter = COUNTER_DIR / f"kfp-backend-restart-{marker}-{name}"
    return dsl.ContainerOp(
        name=name, image="alpine", command=["sh", "-c", f"echo ran >> {counter}; sleep {seconds}"]
    )


def _pipeline(marker: str):
    @dsl.pipeline(name="restart-chain")
    def restart_chain():
        first = _counted_step("first", marker, 0)
        slow = _counted_step("slow", marker, 4).after(first)
        _counted_step("last", marker, 0).after(slow)

    return restart_chain


def test_run_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex[:12]
    port = free_port()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"
    server = start_server(port, data_dir, log_path)
    try:
        client = kfp.Client(host=f"http://127.0.0.1:{port}")
        run_id = client.create_run_from_pipeline_func(_pipeline(marker), arguments={}, run_name="restart").run_id
        deadline = time.monotonic() + 60
        while not any(n.get("displayName") == "slow" and n.get("phase") == "Running"
                      for n in workflow_nodes(client.get_run(run_id))):
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.1)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        server = start_server(port, data_dir, log_path)
        detail = wait_for_run(client, run_id, timeout=90)
        nodes = {n["displayName"]: n for n in workflow_nodes(detail)}
        assert detail.run.status == "Succeeded", json.dumps(nodes, indent=1)
        assert {nodes[name]["phase"] for name in ("first", "slow", "last")} == {"Succeeded"}
        for name in ("first", "slow", "last"):
            runs = (COUNTER_DIR / f"kfp-backend-restart-{marker}-{name}").read_text().splitlines()
            assert len(runs) == 1, f"{name} ran {len(runs)} times"
    finally:
        stop_server(server)
        for path in COUNTER_DIR.glob(f"kfp-backend-restart-{marker}-*"):
            path.unlink()
