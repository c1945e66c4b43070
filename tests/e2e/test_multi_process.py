"""A team deployment on one machine (tests/e2e/topology.py): PostgreSQL, an S3 API (moto's server), two API
processes under gunicorn, two schedulers, one executor and, with the Celery step backend, two workers over
Redis (and RabbitMQ for a subset). Everything goes through the kfp 1.8.22 client, alternating the two APIs: a
run created on one is followed on the other.

- The shared corpus runs to its expected results (once, on Redis), long_running terminated.
- Terminate kills a running step where it runs (the executor's host, or a worker).
- A job fires exactly once per slot while two schedulers run.
- Celery only: a fan-out's steps land on both workers (hostNodeName) and its artifact, made on one worker, is
  read on the other; `kill -9` of the workers running two steps ends with the step that has retries retried
  and the one without failed, naming the lost worker, and the run Failed (not hanging Running).

Without Celery step workers in this checkout the topology runs its steps with the local backend in the
executor process, and the Celery-only tests (and the RabbitMQ topology) skip, saying so.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import SHARED_DIR
from tests.databases import DatabaseFactory
from tests.e2e.helpers import kfp_client_for, wait_for
from tests.e2e.run_checks import (
    check_run,
    corpus_names,
    expected_result,
    terminate_long_running,
    wait_for_run,
    workflow_nodes,
)
from tests.e2e.test_api_replicas import alive
from tests.e2e.test_run_semantics import read_artifact_file
from tests.e2e.topology import (
    CELERY_NOT_INSTALLED,
    CREDENTIALS,
    Topology,
    broker_url,
    celery_missing,
    start_topology,
    unavailable,
)

pytestmark = pytest.mark.e2e

MARKS = Path("/var/tmp")  # shared by every step, wherever it runs (each step's /tmp is its own)
JOB_INTERVAL_SECONDS = 2
JOB_SLOTS = 4


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> str:
    import boto3

    name = f"mpe2e-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
                 aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def topology(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             database_factories: dict[str, DatabaseFactory], s3_endpoint: str, bucket: str) -> Iterator[Topology]:
    """The processes, on a fresh PostgreSQL database; `request.param` names the Celery broker."""
    broker_kind = request.param
    missing = celery_missing()
    if missing and CELERY_NOT_INSTALLED in missing:
        unavailable(missing)  # the code is there, the package is not: CI must have it
    if missing and broker_kind != "redis":
        pytest.skip(f"{missing} (the {broker_kind} topology differs only by its step broker)")
    step_backend = "local" if missing else "celery"
    broker = broker_url(broker_kind) if step_backend == "celery" else ""
    with database_factories["postgres"].fresh() as database_url:
        root = tmp_path_factory.mktemp(f"topology-{broker_kind}")
        processes = start_topology(root, database_url, s3_endpoint, bucket, step_backend, broker)
        try:
            yield processes
        finally:
            processes.stop()


@pytest.fixture(scope="module")
def clients(topology: Topology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    """A kfp 1.8.22 client on each API process."""
    context = tmp_path_factory.mktemp("kfp-context")
    first_url, second_url = topology.api_urls
    with kfp_client_for(first_url, context) as first, kfp_client_for(second_url, context) as second:
        yield [first, second]


@pytest.fixture
def celery(topology: Topology) -> Topology:
    if topology.step_backend != "celery":
        pytest.skip(celery_missing())
    return topology


@pytest.fixture
def mark() -> Iterator[Path]:
    """A unique prefix for files that steps write under /var/tmp; they are removed after the test."""
    prefix = MARKS / f"kfp-mpe2e-{uuid.uuid4().hex[:12]}"
    yield prefix
    for path in MARKS.glob(prefix.name + "*"):
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- pipelines


def _op(name: str, script: str, **kwargs: object) -> Any:  # a kfp 1.8 ContainerOp
    from kfp import dsl

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return dsl.ContainerOp(name=name, image="alpine", command=["sh", "-c", script], **kwargs)


def _run(client: Any, pipeline: Callable, name: str) -> str:
    run_name = f"{name}-{uuid.uuid4().hex[:6]}"
    return client.create_run_from_pipeline_func(pipeline, arguments={}, run_name=run_name).run_id


def _pods(detail: Any) -> list[dict]:
    return [node for node in workflow_nodes(detail) if node.get("type") == "Pod"]


def _pid_of(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else None


def _finished(topology: Topology, client: Any, run_id: str, timeout: float = 90) -> Any:
    try:
        return wait_for_run(client, run_id, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{topology.logs()}") from None


# ------------------------------------------------------------------------------------------------- tests

# One class per broker, so that the tests of one topology are next to each other in collection order. `make test`
# hands whole files to each pytest-xdist worker (`--dist loadfile`), so each topology starts once; run with
# another distribution, a class split over workers starts one topology per worker (queues and worker names are
# unique to a topology, so they do not meet), at the cost of the start.


class _OnEveryBroker:
    """The tests that depend on the step broker."""

    def test_terminate_kills_a_running_step_where_it_runs(
        self, topology: Topology, clients: list[Any], mark: Path
    ) -> None:
        from kfp import dsl

        pid_file = Path(f"{mark}-pid")

        @dsl.pipeline(name="mpe2e-terminate")
        def pipeline():
            _op("sleep", f"echo $$ > {pid_file}; exec sleep 300")

        run_id = _run(clients[0], pipeline, "terminate")
        wait_for(lambda: _pid_of(pid_file), 60, f"the step never started\n{topology.logs()}")
        step = _pid_of(pid_file)
        assert step is not None and alive(step)
        clients[1].runs.terminate_run(run_id)
        detail = _finished(topology, clients[0], run_id, timeout=60)
        assert detail.run.status == "Failed", detail.run.error
        (node,) = _pods(detail)
        assert node["phase"] in ("Failed", "Error"), node
        wait_for(lambda: not alive(step), 15, f"the terminated step (pid {step}) still runs")
        if topology.step_backend == "celery":
            assert node.get("hostNodeName") in topology.worker_names, node

    def test_a_fan_out_lands_on_both_workers_and_artifacts_cross_them(
        self, celery: Topology, clients: list[Any]
    ) -> None:
        from kfp import dsl

        width = 8

        @dsl.pipeline(name="mpe2e-fan-out")
        def pipeline():
            produce = _op("produce", "mkdir -p /tmp/out; printf 'made on a worker' > /tmp/out/data",
                          file_outputs={"data": "/tmp/out/data"})
            with dsl.ParallelFor(list(range(width))) as item:
                # Each instance lasts a second, so the first worker's slots fill and the other takes its share.
                # A consumer fails unless it read the producer's artifact (made on whichever worker ran `produce`).
                _op("consume", f"sleep 1; [ \"$(cat /tmp/in/data)\" = 'made on a worker' ] || exit 3; "
                               f"mkdir -p /tmp/out; echo {item} read it > /tmp/out/got",
                    artifact_argument_paths=[dsl.InputArgumentPath(produce.outputs["data"], path="/tmp/in/data")],
                    file_outputs={"got": "/tmp/out/got"})

        run_id = _run(clients[0], pipeline, "fan-out")
        detail = _finished(celery, clients[1], run_id)
        pods = _pods(detail)
        assert detail.run.status == "Succeeded", json.dumps(pods, indent=1)
        (producer,) = [node for node in pods if node["displayName"] == "produce"]
        consumers = [node for node in pods if node["displayName"] == "consume"]
        assert len(consumers) == width
        hosts = [node.get("hostNodeName") for node in pods]
        assert set(hosts) == set(celery.worker_names), hosts
        across = [node for node in consumers if node["hostNodeName"] != producer["hostNodeName"]]
        assert across, "no consumer ran on the other worker"
        # What a consumer on the other worker made is served by either API, from the bucket.
        for url in celery.api_urls:
            got = read_artifact_file(url + "/apis/v1beta1", run_id, across[0]["id"], "consume-got")
            assert got.decode().endswith(" read it\n"), got

    def test_kill_9_of_a_worker_in_the_middle_of_a_step(self, celery: Topology, clients: list[Any], mark: Path) -> None:
        from kfp import dsl

        retried_file, lone_file = Path(f"{mark}-retried"), Path(f"{mark}-lone")

        @dsl.pipeline(name="mpe2e-worker-lost")
        def pipeline():
            # The first attempt waits to be killed; the next one (on a live worker) succeeds at once.
            _op("retried", f"if [ -s {retried_file} ]; then echo again; else echo $$ > {retried_file}; sleep 60; fi"
                ).set_retry(2)
            _op("lone", f"echo $$ > {lone_file}; sleep 60")  # no retries: it fails

        run_id = _run(clients[0], pipeline, "worker-lost")
        wait_for(lambda: _pid_of(retried_file) and _pid_of(lone_file), 60, f"the steps never started\n{celery.logs()}")
        orphans = [_pid_of(retried_file), _pid_of(lone_file)]

        def placed() -> set[str]:
            nodes = [n for n in _pods(clients[1].get_run(run_id)) if n.get("phase") == "Running"]
            return {n["hostNodeName"] for n in nodes if n.get("hostNodeName")} if len(nodes) == 2 else set()

        wait_for(placed, 30, "the running steps never named their workers")
        doomed = placed()
        for name in doomed:
            celery.kill(name)
        # Workers come back under the same names for the retry (if both were killed) and the next tests.
        celery.spawn_workers(*doomed)

        detail = _finished(celery, clients[1], run_id)
        pods = _pods(detail)
        assert detail.run.status == "Failed", json.dumps(pods, indent=1)  # the step without retries failed
        attempts = sorted((n for n in pods if n["displayName"].startswith("retried")), key=lambda n: n["startedAt"])
        assert [n["phase"] for n in attempts] == ["Failed", "Succeeded"], json.dumps(attempts, indent=1)
        assert "running the step was lost" in attempts[0].get("message", ""), attempts[0]
        assert attempts[0]["hostNodeName"] in doomed
        (lone,) = [n for n in pods if n["displayName"] == "lone"]
        assert lone["phase"] in ("Failed", "Error") and "running the step was lost" in lone.get("message", ""), lone
        assert f"the worker {lone['hostNodeName']}" in lone["message"]
        # The dead worker's steps did not run on beside the new attempt.
        for pid in orphans:
            wait_for(lambda pid=pid: not alive(pid), 15, f"the orphaned step (pid {pid}) still runs")
        celery.wait_ready(*doomed)
        celery.check_alive()


    def test_the_shared_corpus_runs_to_its_expected_results(self, topology: Topology, clients: list[Any]) -> None:
        corpus = SHARED_DIR / "pipelines"
        names = [name for name in corpus_names(corpus) if name != "long_running"]
        if not names:
            unavailable(f"the shared corpus is missing ({corpus})")
        unique = f"mpe2e-{uuid.uuid4().hex[:8]}"
        # All at once (a team's load): created on one API, each other pipeline from an upload, followed on the other.
        started: dict[str, tuple[str, Any]] = {}
        for index, name in enumerate(names):
            creating, following = clients[index % 2], clients[(index + 1) % 2]
            expected = expected_result(corpus, name)
            package, arguments = str(corpus / f"{name}.yaml"), expected.get("arguments", {})
            if index % 4 >= 2:
                pipeline = creating.upload_pipeline(package, pipeline_name=f"{unique}-{name}")
                experiment = creating.create_experiment(f"{unique}-exp")
                run_id = creating.run_pipeline(experiment.id, f"{unique}-{name}", pipeline_id=pipeline.id,
                                               params=arguments).id
            else:
                run_id = creating.create_run_from_pipeline_package(package, arguments=arguments,
                                                                   run_name=f"{unique}-{name}").run_id
            started[name] = (run_id, following)
        problems: dict[str, str] = {}
        try:
            if "long_running" in corpus_names(corpus):
                try:
                    detail = terminate_long_running(clients[1], corpus, unique)
                    check_run(detail, expected_result(corpus, "long_running"))
                except AssertionError as exc:
                    problems["long_running"] = str(exc)
            for name, (run_id, following) in started.items():
                try:
                    check_run(_finished(topology, following, run_id, timeout=150), expected_result(corpus, name))
                except AssertionError as exc:
                    problems[name] = str(exc)
        finally:
            for run_id, _client in started.values():
                for path in MARKS.glob(f"kfp-corpus-*{run_id}*"):
                    path.unlink(missing_ok=True)
        assert not problems, "\n\n".join(f"{name}: {problem}" for name, problem in problems.items())
        topology.check_alive()


@pytest.mark.parametrize("topology", ["redis"], indirect=True)
class TestOverRedis(_OnEveryBroker):
    def test_a_job_fires_exactly_once_per_slot_with_two_schedulers(
        self, topology: Topology, clients: list[Any]
    ) -> None:
        from kfp import compiler, dsl

        from kfp_backend.store.db import Database
        from kfp_backend.store.models import JobFire, Run
        from tests.e2e.test_scheduler_failover import lease_holder_pid

        @dsl.pipeline(name="mpe2e-tick")
        def pipeline():
            _op("tick", "echo tick")

        package = topology.root / "tick.yaml"
        compiler.Compiler().compile(pipeline, str(package))
        experiment = clients[0].create_experiment(f"mpe2e-jobs-{uuid.uuid4().hex[:8]}")
        job = clients[0].create_recurring_run(experiment.id, "every-2s", interval_second=JOB_INTERVAL_SECONDS,
                                              pipeline_package_path=str(package), max_concurrency=10)

        def fired() -> list[Any]:
            return clients[1].runs.list_runs(resource_reference_key_type="JOB", resource_reference_key_id=job.id,
                                             page_size=100).runs or []

        wait_for(lambda: len(fired()) >= JOB_SLOTS, JOB_SLOTS * JOB_INTERVAL_SECONDS + 30,
                 f"the job did not fire {JOB_SLOTS} times\n{topology.logs()}")
        clients[1].disable_job(job.id)
        time.sleep(1)  # a fire in flight as the job was disabled lands in the listing below
        runs = fired()
        for run in runs:
            assert _finished(topology, clients[0], run.id).run.status == "Succeeded"

        # Both schedulers ran throughout, one of them active.
        db = Database(topology.database_url, pool_size=1)
        try:
            assert lease_holder_pid(db) in topology.pids("scheduler-"), topology.logs()
            with db.transaction(write=False) as session:
                slots = list(session.scalars(select(JobFire.scheduled_at).where(JobFire.job_id == job.id)
                                             .order_by(JobFire.scheduled_at)))
                per_slot = Counter(session.scalars(select(Run.scheduled_at).where(Run.job_id == job.id)))
        finally:
            db.dispose()
        assert len(topology.pids("scheduler-")) == 2
        # Every slot once, none skipped; one run each, and the API shows those runs and no others.
        assert slots == list(range(slots[0], slots[-1] + 1, JOB_INTERVAL_SECONDS)), slots
        assert per_slot == Counter(slots), per_slot
        assert sorted(int(run.scheduled_at.timestamp()) for run in runs) == slots


@pytest.mark.parametrize("topology", ["amqp"], indirect=True)
class TestOverRabbitMQ(_OnEveryBroker):
    """The broker-dependent tests again, over RabbitMQ, the shared corpus included (the job runs once, over Redis)."""
