"""A finished run's step scratch (private /tmp and declared paths) goes after KFP_BACKEND_STEP_SCRATCH_TTL_SECONDS;
its logs, outputs and artifacts stay, and a running run keeps its scratch whatever its age."""

from __future__ import annotations

import time
from pathlib import Path

import kfp
from kfp import dsl

from tests.e2e.helpers import wait_for
from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import free_port, start_server, stop_server
from tests.e2e.test_run_semantics import read_artifact_file, read_node_log


@dsl.pipeline(name="scratch")
def _scratch_pipeline():
    writer = dsl.ContainerOp(
        name="writer", image="alpine",
        command=["sh", "-c", "mkdir -p /tmp/outputs/word && printf kept > /tmp/outputs/word/data; "
                 "echo scratch > /tmp/other; echo wrote"],
        file_outputs={"word": "/tmp/outputs/word/data"},
    )
    dsl.ContainerOp(name="slow", image="alpine", command=["sh", "-c", "echo x > /tmp/mine; sleep 4; echo slept"]).after(
        writer)


def _scratch(step_dir: Path) -> Path:
    return step_dir / "root"


def test_step_scratch_is_removed_after_its_ttl(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"
    server = start_server(port, data_dir, log_path, env={"KFP_BACKEND_STEP_SCRATCH_TTL_SECONDS": "1"})
    try:
        api_url = f"http://127.0.0.1:{port}/apis/v1beta1"
        client = kfp.Client(host=f"http://127.0.0.1:{port}")
        run_id = client.create_run_from_pipeline_func(_scratch_pipeline, arguments={}, run_name="scratch").run_id

        # While the run runs, its scratch stays, however long ago its first step finished.
        def node(display: str) -> dict | None:
            found = [n for n in workflow_nodes(client.get_run(run_id)) if n.get("displayName") == display]
            return found[0] if found else None

        wait_for(lambda: (node("slow") or {}).get("phase") == "Running", 30, "the slow step never started")
        writer = node("writer")
        assert writer is not None and writer["phase"] == "Succeeded"
        writer_dir = data_dir / "runs" / run_id / writer["id"]
        time.sleep(2.5)  # past the TTL, with sweeps due every 0.25 s
        assert (_scratch(writer_dir) / "tmp" / "other").read_text() == "scratch\n"

        detail = wait_for_run(client, run_id, timeout=60)
        assert detail.run.status == "Succeeded"
        steps = {n["displayName"]: data_dir / "runs" / run_id / n["id"] for n in workflow_nodes(detail)
                 if n.get("type") == "Pod"}
        wait_for(lambda: not any(_scratch(d).exists() for d in steps.values()), 30, "the scratch was never removed")
        # What a client reads of the run is still there.
        assert read_node_log(api_url, run_id, writer["id"]) == "wrote\n"
        assert read_artifact_file(api_url, run_id, writer["id"], "writer-word") == b"kept"
        assert (steps["writer"] / "log").is_file() and (steps["slow"] / "log").read_text() == "slept\n"
    finally:
        stop_server(server)
