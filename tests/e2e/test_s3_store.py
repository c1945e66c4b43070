"""Two `kfp-backend serve` processes on one database and one S3 bucket (moto's server): one executes, the other
is an API-only replica with a data dir of its own. Through the kfp 1.8.22 client on the replica, a run's
artifacts pass between its steps and its artifacts and finished steps' logs are served from the bucket."""

from __future__ import annotations

import json
from pathlib import Path

import kfp

from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import free_port, start_server, stop_server
from tests.e2e.test_run_semantics import read_artifact_file, read_node_log
from tests.s3_server import CREDENTIALS, Bucket, passing_pipeline


def test_an_api_replica_serves_artifacts_and_logs_from_the_bucket(tmp_path: Path, s3_bucket: Bucket) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = {**CREDENTIALS, "KFP_BACKEND_ARTIFACT_STORE": s3_bucket.url("team"),
             "KFP_BACKEND_S3_ENDPOINT_URL": s3_bucket.endpoint}
    executing_port, replica_port = free_port(), free_port()
    executing = start_server(executing_port, tmp_path / "executing", tmp_path / "executing.log",
                             database_url=database_url, env=store)
    try:
        replica = start_server(replica_port, tmp_path / "replica", tmp_path / "replica.log", database_url=database_url,
                               env={**store, "KFP_BACKEND_EXECUTOR_ENABLED": "false",
                                    "KFP_BACKEND_SCHEDULER_ENABLED": "false"})
        try:
            client = kfp.Client(host=f"http://127.0.0.1:{replica_port}")
            run_id = client.create_run_from_pipeline_func(passing_pipeline(), arguments={}, run_name="s3").run_id
            detail = wait_for_run(client, run_id, timeout=60)
            nodes = {node["displayName"]: node for node in workflow_nodes(detail)}
            assert detail.run.status == "Succeeded", json.dumps(nodes, indent=1)
            api_url = f"http://127.0.0.1:{replica_port}/apis/v1beta1"
            produce, consume = nodes["produce"], nodes["consume"]
            assert read_artifact_file(api_url, run_id, produce["id"], "produce-data") == b"hello s3\n"
            assert client.runs.read_artifact(run_id, produce["id"], "produce-data").data
            assert "got\nhello s3\n" in read_node_log(api_url, run_id, consume["id"])
            assert not (tmp_path / "replica" / "runs").exists()  # the replica has no step files of its own
            listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix="team/")  # type: ignore[attr-defined]
            assert f"team/artifacts/{run_id}/{consume['id']}/main.log" in {o["Key"] for o in listed["Contents"]}
        finally:
            stop_server(replica)
    finally:
        stop_server(executing)
