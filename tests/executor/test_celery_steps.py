"""Steps run on real Celery workers (`python -m kfp_backend worker` subprocesses) over a real broker (Redis,
and RabbitMQ once), with the executor in-process (KFP_BACKEND_STEP_BACKEND=celery) and the artifact store a
directory that only the store shares: each worker has a data dir of its own. Results come back through the
store and the database: artifacts pass between steps, each node names the worker that ran it, logs are
served from the store while a step runs; kill -9 of a worker ends in a retried attempt (and the orphaned
step killed) or a failure naming the lost worker; terminate and deadlines reach steps on workers; a queue
annotation routes a step to the worker consuming that queue."""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests.executor.celery_workers import WorkerSet, broker_url
from tests.exit_retry_pipelines import nodes_by_display, workflow_manifest
from tests.s3_server import Bucket

RUNS = "/apis/v1beta1/runs"
FINISHED = {"Succeeded", "Failed", "Error"}
MARKS = Path("/var/tmp")  # the host's /var/tmp is shared by steps (each step's /tmp is its own)


def _op(name: str, script: str, **kwargs: object):  # -> a kfp 1.8 ContainerOp
    from kfp import dsl

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return dsl.ContainerOp(name=name, image="alpine", command=["sh", "-c", script], **kwargs)


def _artifact_pipeline() -> Callable:
    from kfp import dsl

    @dsl.pipeline(name="celery-artifacts")
    def pipeline():
        produce = _op("produce", "mkdir -p /tmp/out; printf 'hello worker\\n' > /tmp/out/data; echo 7 > /tmp/out/n; "
                                 "echo produced", file_outputs={"data": "/tmp/out/data", "n": "/tmp/out/n"})
        _op("consume", f"echo got; cat /tmp/in/data; echo n={produce.outputs['n']}",
            artifact_argument_paths=[dsl.InputArgumentPath(produce.outputs["data"], path="/tmp/in/data")])

    return pipeline


@pytest.fixture
def queue() -> str:
    return f"kfp-test-{uuid.uuid4().hex[:12]}"


def _app(settings: Settings, tmp_path: Path, broker: str, queue: str) -> Flask:
    return create_app(settings.replace(
        executor_enabled=True, step_backend="celery", celery_broker_url=broker, celery_queue=queue,
        artifact_store=f"file://{tmp_path / 'store'}", worker_heartbeat_seconds=0.5, worker_lost_seconds=4,
        dispatch_poll_seconds=0.05,
    ))


@pytest.fixture
def workers(settings: Settings, tmp_path: Path, queue: str, request: pytest.FixtureRequest) -> Iterator[WorkerSet]:
    broker = getattr(request, "param", "redis")
    workers = WorkerSet(settings.database_url, broker_url(broker), queue, f"file://{tmp_path / 'store'}",
                        tmp_path / "workers", extra_env={"KFP_BACKEND_STEP_ENVS_DIR": settings.step_envs_dir})
    yield workers
    workers.stop_all()


@pytest.fixture
def celery_app(settings: Settings, tmp_path: Path, workers: WorkerSet, queue: str) -> Iterator[Flask]:
    application = _app(settings, tmp_path, workers.broker, queue)
    yield application
    shutdown(application)


def _start(client: FlaskClient, manifest: str) -> str:
    response = client.post(RUNS, json={"name": "run", "pipeline_spec": {"workflow_manifest": manifest}})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["run"]["id"]


def _workflow(client: FlaskClient, run_id: str) -> tuple[str, dict]:
    detail = client.get(f"{RUNS}/{run_id}").get_json()
    return detail["run"].get("status", ""), json.loads(detail["pipeline_runtime"]["workflow_manifest"])["status"]


def _wait(what: str, predicate: Callable[[], object], workers: WorkerSet, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {name}\n{workers.log(name)[-3000:]}" for name in workers.processes)
            pytest.fail(f"{what}: not within {timeout:.0f} s; worker logs:\n{logs}", pytrace=False)
        time.sleep(0.05)


def _run_to_the_end(client: FlaskClient, run_id: str, workers: WorkerSet) -> tuple[str, dict]:
    _wait(f"run {run_id} finished", lambda: _workflow(client, run_id)[0] in FINISHED, workers)
    return _workflow(client, run_id)


@pytest.mark.parametrize("workers", ["redis", "amqp"], indirect=True)
def test_a_pipeline_runs_on_a_worker_and_passes_artifacts_through_the_store(
    celery_app: Flask, workers: WorkerSet, settings: Settings
) -> None:
    workers.start("worker-a")
    client = celery_app.test_client()
    run_id = _start(client, workflow_manifest(_artifact_pipeline()))
    status, workflow = _run_to_the_end(client, run_id, workers)
    nodes = nodes_by_display(workflow["nodes"])
    assert status == "Succeeded", json.dumps(workflow, indent=1)
    produce, consume = nodes["produce"], nodes["consume"]
    assert produce["hostNodeName"] == consume["hostNodeName"] == "worker-a"
    assert {p["name"]: p["value"] for p in produce["outputs"]["parameters"]}["produce-n"] == "7"
    assert produce["outputs"]["artifacts"][0]["s3"]["key"] == f"artifacts/{run_id}/{produce['id']}/produce-data.tgz"
    log = client.get(f"{RUNS}/{run_id}/nodes/{consume['id']}/log")
    assert log.status_code == 200
    assert log.get_data(as_text=True).splitlines() == ["got", "hello worker", "n=7"]
    # Nothing of the steps was on the server's side: no step directory in its data dir.
    assert not (settings.data_dir / "runs" / run_id).exists()
    # Each worker's step directories go once their results are written.
    assert not any((workers.root / "worker-a" / "worker-steps").rglob("log"))


def test_queue_annotation_routes_a_step_to_the_worker_of_that_queue(
    celery_app: Flask, workers: WorkerSet, queue: str
) -> None:
    from kfp import dsl

    special = f"{queue}-special"

    @dsl.pipeline(name="celery-queues")
    def pipeline():
        _op("plain", "echo plain")
        _op("routed", "echo routed").add_pod_annotation("kfp-backend.io/queue", special)

    workers.start("default-worker")
    workers.start("special-worker", queues=special)
    client = celery_app.test_client()
    run_id = _start(client, workflow_manifest(pipeline))
    status, workflow = _run_to_the_end(client, run_id, workers)
    nodes = nodes_by_display(workflow["nodes"])
    assert status == "Succeeded", json.dumps(workflow, indent=1)
    assert nodes["plain"]["hostNodeName"] == "default-worker"
    assert nodes["routed"]["hostNodeName"] == "special-worker"


def test_a_running_log_is_served_from_the_store_and_terminate_kills_the_step_on_its_worker(
    celery_app: Flask, workers: WorkerSet
) -> None:
    from kfp import dsl

    mark = MARKS / f"kfp-celery-{uuid.uuid4().hex}"

    @dsl.pipeline(name="celery-terminate")
    def pipeline():
        _op("long", f"echo $$ > {mark}; echo started; sleep 60; echo never")

    workers.start("worker-t")
    client = celery_app.test_client()
    run_id = _start(client, workflow_manifest(pipeline))
    _wait("the step started", mark.exists, workers)
    pid = int(mark.read_text() or "0") or None

    def log_so_far() -> str:
        nodes = _workflow(client, run_id)[1].get("nodes") or {}
        pods = [n for n in nodes.values() if n.get("type") == "Pod"]
        if not pods:
            return ""
        response = client.get(f"{RUNS}/{run_id}/nodes/{pods[0]['id']}/log")
        return response.get_data(as_text=True) if response.status_code == 200 else ""

    _wait("the running step's log served", lambda: "started" in log_so_far(), workers)

    def running_on() -> str:
        nodes = _workflow(client, run_id)[1].get("nodes") or {}
        return next((n.get("hostNodeName", "") for n in nodes.values() if n.get("type") == "Pod"), "")

    _wait("the running node names its worker", lambda: running_on() == "worker-t", workers)
    assert client.post(f"{RUNS}/{run_id}/terminate").status_code == 200
    status, workflow = _run_to_the_end(client, run_id, workers)
    assert status == "Failed"
    (pod,) = [n for n in workflow["nodes"].values() if n.get("type") == "Pod"]
    assert pod["phase"] == "Failed" and pod["hostNodeName"] == "worker-t"
    assert pid is not None and not _alive(pid)
    assert "never" not in log_so_far()
    mark.unlink(missing_ok=True)


def test_active_deadline_reaches_a_step_on_a_worker(celery_app: Flask, workers: WorkerSet) -> None:
    from kfp import dsl

    @dsl.pipeline(name="celery-deadline")
    def pipeline():
        _op("slow", "echo slow; sleep 60").set_timeout(1)

    workers.start("worker-d")
    client = celery_app.test_client()
    run_id = _start(client, workflow_manifest(pipeline))
    status, workflow = _run_to_the_end(client, run_id, workers)
    (pod,) = [n for n in workflow["nodes"].values() if n.get("type") == "Pod"]
    assert status == "Failed"
    assert pod["message"] == "Pod was active on the node longer than the specified deadline"
    assert pod["hostNodeName"] == "worker-d"


def test_kill_9_of_a_worker_mid_step_retries_the_step_on_another_and_kills_the_orphan(
    celery_app: Flask, workers: WorkerSet
) -> None:
    from kfp import dsl

    mark = MARKS / f"kfp-celery-{uuid.uuid4().hex}"

    @dsl.pipeline(name="celery-worker-lost")
    def pipeline():
        # The first attempt records its shell's pid and sleeps; the second one finds the mark and ends.
        _op("fragile", f"if [ -e {mark} ]; then echo second attempt; else echo $$ > {mark}; sleep 60; fi").set_retry(1)
        _op("lost", f"echo $$ > {mark}-lost; sleep 60")

    workers.start("doomed-worker", concurrency=2)
    client = celery_app.test_client()
    run_id = _start(client, workflow_manifest(pipeline))
    lost_mark = Path(f"{mark}-lost")
    _wait("both steps started", lambda: mark.exists() and lost_mark.exists() and mark.read_text().strip()
          and lost_mark.read_text().strip(), workers)
    orphans = [int(mark.read_text()), int(lost_mark.read_text())]
    workers.kill("doomed-worker")
    workers.start("rescue-worker")
    status, workflow = _run_to_the_end(client, run_id, workers)
    nodes = workflow["nodes"]
    attempts = sorted((n for n in nodes.values() if n.get("type") == "Pod" and n["displayName"].startswith("fragile")),
                      key=lambda n: n["name"])
    assert [a["phase"] for a in attempts] == ["Failed", "Succeeded"], json.dumps(workflow, indent=1)
    assert "the worker doomed-worker running the step was lost" in attempts[0]["message"]
    assert attempts[1]["hostNodeName"] == "rescue-worker"
    (lost,) = [n for n in nodes.values() if n.get("type") == "Pod" and n["displayName"] == "lost"]
    assert lost["phase"] == "Failed" and "the worker doomed-worker running the step was lost" in lost["message"]
    assert status == "Failed"  # honestly: one step had no retries left
    # The dead worker's steps did not run on beside the new attempt: its watchdog killed them.
    assert not any(_alive(pid) for pid in orphans)
    mark.unlink(missing_ok=True)
    lost_mark.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie is dead too
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except OSError:
            return False
        time.sleep(0.1)
    return True


def test_a_kfp_v2_pipeline_passes_artifacts_between_steps_on_workers(celery_app: Flask, workers: WorkerSet) -> None:
    from tests import ir_pipelines as ir

    workers.start("worker-v2")
    client = celery_app.test_client()
    run_id = ir.create_run(client, ir.artifact_passing())["run"]["id"]
    status, nodes = ir.wait_for(client, run_id, timeout=90)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    write, read = ir.by_display(nodes)["write"], ir.by_display(nodes)["read"]
    assert write["hostNodeName"] == read["hostNodeName"] == "worker-v2"
    (artifact,) = write["outputs"]["artifacts"]
    assert artifact["s3"] == {"key": f"artifacts/{run_id}/{write['id']}/data.tgz"}
    response = client.get(f"{RUNS}/{run_id}/nodes/{write['id']}/artifacts/data:read")
    assert response.status_code == 200 and response.get_json()["data"]


@pytest.fixture(scope="module")
def python_components(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The kfp 2.x lightweight components of test_ir_python_components, compiled by the kfp 2.x SDK."""
    import subprocess
    import textwrap

    from tests.executor.test_ir_python_components import PIPELINE
    from tests.kfp2_python import require_kfp2_bin

    python = require_kfp2_bin() / "python3"
    directory = tmp_path_factory.mktemp("compiled")
    out = directory / "pipeline.yaml"
    script = directory / "pipeline.py"
    script.write_text(f"OUT = {str(out)!r}\n" + textwrap.dedent(PIPELINE))
    done = subprocess.run([str(python), str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out.read_text()


def test_kfp_v2_python_components_run_in_environments_the_worker_prepares(
    celery_app: Flask, workers: WorkerSet, python_components: str
) -> None:
    """Output parameters, the executor output, artifacts with metadata, metrics and ParallelFor, with each
    step's Python environment prepared on the worker's side."""
    from tests import ir_pipelines as ir

    workers.start("worker-py", concurrency=3)
    client = celery_app.test_client()
    response = client.post(RUNS, json={"name": "python", "pipeline_spec": {"workflow_manifest": python_components}})
    assert response.status_code == 200, response.get_data(as_text=True)
    status, nodes = ir.wait_for(client, response.get_json()["run"]["id"], timeout=300)
    summary = {n["displayName"]: (n["phase"], n.get("message", "")) for n in nodes.values()}
    assert status == "Succeeded", json.dumps(summary, indent=1)
    made = ir.by_display(nodes)["make"]
    assert made["hostNodeName"] == "worker-py"
    assert {p["name"]: p["value"] for p in made["outputs"]["parameters"]} == {"total": "8", "label": "made-4"}
    assert ir.by_display(nodes)["add-up"]["outputs"]["parameters"] == [{"name": "Output", "value": "sum=14"}]
    assert ir.by_display(nodes)["join"]["outputs"]["parameters"] == [{"name": "Output", "value": "part 1,part 2"}]


def test_a_restarted_executor_takes_its_steps_on_workers_back_from_the_database(
    settings: Settings, tmp_path: Path, workers: WorkerSet, queue: str
) -> None:
    """The executor stops while a step runs on a worker; a new one resumes the run and collects the step's
    result from its dispatch: the step ran once, and the run goes on."""
    from kfp import dsl

    counter = MARKS / f"kfp-celery-{uuid.uuid4().hex}"

    @dsl.pipeline(name="celery-restart")
    def pipeline():
        first = _op("first", f"echo ran >> {counter}; sleep 3; echo 5 > /tmp/n", file_outputs={"n": "/tmp/n"})
        _op("second", f"echo n={first.outputs['n']}")

    workers.start("worker-r")
    first_app = _app(settings, tmp_path, workers.broker, queue)
    try:
        run_id = _start(first_app.test_client(), workflow_manifest(pipeline))
        _wait("the first step started", counter.exists, workers)
    finally:
        shutdown(first_app)
    second_app = _app(settings, tmp_path, workers.broker, queue)
    try:
        client = second_app.test_client()
        status, workflow = _run_to_the_end(client, run_id, workers)
    finally:
        shutdown(second_app)
    nodes = nodes_by_display(workflow["nodes"])
    assert status == "Succeeded", json.dumps(workflow, indent=1)
    assert counter.read_text() == "ran\n"
    assert nodes["first"]["hostNodeName"] == nodes["second"]["hostNodeName"] == "worker-r"
    assert nodes["second"]["inputs"]["parameters"][0]["value"] == "5"
    counter.unlink(missing_ok=True)


def test_steps_on_workers_share_an_s3_store_with_the_api(
    settings: Settings, tmp_path: Path, queue: str, s3_bucket: Bucket
) -> None:
    """With an S3 store (moto's server): the worker archives the outputs and uploads the log there, the next
    step's worker unpacks the input from there, and the API serves both from there."""
    store = s3_bucket.url("kfp/")
    workers = WorkerSet(settings.database_url, broker_url("redis"), queue, store, tmp_path / "workers",
                        extra_env={"KFP_BACKEND_S3_ENDPOINT_URL": s3_bucket.endpoint,
                                   "KFP_BACKEND_STEP_ENVS_DIR": settings.step_envs_dir})
    application = create_app(settings.replace(
        executor_enabled=True, step_backend="celery", celery_broker_url=workers.broker, celery_queue=queue,
        artifact_store=store, s3_endpoint_url=s3_bucket.endpoint))
    try:
        workers.start("worker-s3")
        client = application.test_client()
        run_id = _start(client, workflow_manifest(_artifact_pipeline()))
        status, workflow = _run_to_the_end(client, run_id, workers)
        nodes = nodes_by_display(workflow["nodes"])
        assert status == "Succeeded", json.dumps(workflow, indent=1)
        produce, consume = nodes["produce"], nodes["consume"]
        listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix=f"kfp/artifacts/{run_id}/")  # type: ignore[attr-defined]
        assert sorted(item["Key"] for item in listed["Contents"]) == sorted([
            f"kfp/artifacts/{run_id}/{produce['id']}/produce-data.tgz",
            f"kfp/artifacts/{run_id}/{produce['id']}/produce-n.tgz",
            f"kfp/artifacts/{run_id}/{produce['id']}/main.log", f"kfp/artifacts/{run_id}/{consume['id']}/main.log"])
        log = client.get(f"{RUNS}/{run_id}/nodes/{consume['id']}/log")
        assert log.get_data(as_text=True).splitlines() == ["got", "hello worker", "n=7"]
        read = client.get(f"{RUNS}/{run_id}/nodes/{produce['id']}/artifacts/produce-data:read")
        assert read.status_code == 200 and read.get_json()["data"]
    finally:
        shutdown(application)
        workers.stop_all()
