"""`kfp-backend serve --workers N`, `kfp-backend executor` and `kfp-backend scheduler` as real processes.

- `serve --workers 2` (SQLite, and PostgreSQL when configured): the kfp 1.8.22 client runs a pipeline to
  success (the executor process ran it: the web workers never execute) and a recurring run fires (the
  scheduler process); /metrics, scraped from any web worker, adds up the requests answered by both web
  workers, the executor's step and claim metrics and the scheduler's fire lag; SIGTERM stops every child.
- The `auto` authentication decision under gunicorn: off on a loopback bind (above), required on 0.0.0.0
  in every worker, where a token made by `kfp-backend token create` works; a web worker killed with SIGKILL is
  replaced and its counts stay in the scrape; the executor killed with SIGKILL stops serve with status 1 and
  its other children; the private metrics dir is removed.
- `kfp-backend executor` and `kfp-backend scheduler` alone, beside an API-only `serve`: a recurring run fires
  and its run succeeds.
- SIGTERM in the middle of a run: the executor child releases it, the next `serve --workers` finishes it
  without running any step twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.databases import DatabaseFactory
from tests.e2e.helpers import kfp_client_for, name_equals, wait_for
from tests.e2e.pipelines import compile_pipeline
from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import REPO_ROOT, free_port, server_env, stop_server, wait_until_healthy

pytestmark = pytest.mark.e2e

API = "/apis/v1beta1"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Requests are spread over the web workers by the kernel's accept queue: ask until both have answered some.
MAX_SPREADING_REQUESTS = 400
STOP_TIMEOUT_SECONDS = 40.0


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline("arithmetic", tmp_path_factory.mktemp("replica-packages") / "arithmetic.yaml")


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kfp_backend", *args]


@contextmanager
def _process(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with log_path.open("ab") as log:
        process = subprocess.Popen(_command(*args), cwd=REPO_ROOT, env={**server_env(), **(env or {})},
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_server(process)


@contextmanager
def _serve(workdir: Path, *args: str, host: str = "127.0.0.1", database_url: str | None = None,
           env: dict[str, str] | None = None, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`serve` with `args` on `port` (default: a free one), healthy; yields its URL, process and log."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    command = ["serve", "--host", host, "--port", str(port), "--data-dir", str(workdir / "data"), *args]
    if database_url:
        command += ["--database-url", database_url]
    log_path = workdir / "server.log"
    with _process(command, log_path, env) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, url, log_path)
        yield url, process, log_path


def _parents() -> dict[int, int]:
    """Every live process's parent (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    return parents


def direct_children(pid: int) -> set[int]:
    return {child for child, parent in _parents().items() if parent == pid}


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`."""
    parents = _parents()
    found: set[int] = set()
    stack = [pid]
    while stack:
        current = stack.pop()
        below = [child for child, parent in parents.items() if parent == current]
        found.update(below)
        stack += below
    return found


def server_processes(pid: int) -> set[int]:
    """The processes of `serve --workers` below `pid`: gunicorn's, the executor, the scheduler (not steps)."""
    marks = ("kfp_backend.processes.web", "-m kfp_backend executor", "-m kfp_backend scheduler")
    return {child for child in descendants(pid) if any(mark in command_line(child) for mark in marks)}


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent's wait() counts as gone)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_and_check(process: subprocess.Popen, children: set[int], log_path: Path) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=STOP_TIMEOUT_SECONDS)
    log = log_path.read_text(errors="replace")
    assert process.returncode == 0, log
    wait_for(lambda: not any(alive(pid) for pid in children), 10, f"children left running: {children}")
    # Each child stopped its own way: the executor released its runs, the scheduler its lease.
    assert "kfp-backend executor: signal 15, shutting down" in log, log
    assert "kfp-backend scheduler: signal 15, shutting down" in log and "lease released" in log, log


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(url + "/metrics", timeout=10).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def spread_requests(url: str, metrics_dir: Path, headers: dict[str, str] | None = None,
                    status: int = 200) -> int:
    """GET `url` on new connections until two web workers have counted requests (one counter file each, in the
    multiprocess dir); returns how many requests were made."""
    made = 0
    while len(list(metrics_dir.glob("counter_*.db"))) < 2:
        assert made < MAX_SPREADING_REQUESTS, "one web worker answered every request"
        for _ in range(10):
            response = requests.get(url, headers=headers, timeout=10)
            assert response.status_code == status, response.text
            made += 1
    return made


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, database_factories: dict[str, DatabaseFactory]) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""  # serve's default: SQLite in its data dir
        return
    with database_factories["postgres"].empty() as url:
        yield url


def test_two_web_workers_run_a_pipeline_and_metrics_add_up(tmp_path: Path, database_url: str, package: Path) -> None:
    metrics_dir = tmp_path / "prometheus"
    env = {MULTIPROC_DIR: str(metrics_dir)}
    with _serve(tmp_path / "server", "--workers", "2", database_url=database_url or None, env=env) as (
        url, process, log_path,
    ):
        children = descendants(process.pid)
        names = [command_line(pid) for pid in children]
        assert sum("kfp_backend.processes.web" in name for name in names) == 3, names  # master + 2 workers
        assert sum(name.endswith("kfp_backend executor ") for name in names) == 1, names
        assert sum(name.endswith("kfp_backend scheduler ") for name in names) == 1, names
        assert requests.get(url + API + "/healthz", timeout=10).json()["multi_user"] is False  # loopback: auth off

        with kfp_client_for(url, tmp_path) as client:
            # Both workers made sure of the Default experiment at once, on an empty database: one was made.
            defaults = client.list_experiments(filter=name_equals("Default"))
            assert defaults.total_size == 1, defaults
            experiment = client.create_experiment(f"replicas-{tmp_path.name}")
            run = client.run_pipeline(experiment.id, "tiny", pipeline_package_path=str(package))
            detail = wait_for_run(client, run.id)
            assert detail.run.status == "Succeeded", detail.run.error
            # The scheduler process fires a job; its run is executed as well.
            job = client.create_recurring_run(experiment.id, "every-2s", interval_second=2,
                                              pipeline_package_path=str(package), max_concurrency=1)
            wait_for(lambda: _job_runs(client, job.id), 60, "the scheduler process did not fire the job")
            client.disable_job(job.id)
            fired = _job_runs(client, job.id)
            for job_run in fired:
                assert wait_for_run(client, job_run.id).run.status == "Succeeded"
        steps = sum(node.get("type") == "Pod" for node in _nodes(detail))
        assert steps >= 2
        runs = 1 + len(fired)

        route = API + "/experiments/<id>"
        made = spread_requests(f"{url}{API}/experiments/{experiment.id}", metrics_dir)
        samples = scrape(url)
        assert metric(samples, "kfp_backend_http_requests_total", method="GET", route=route, status="200") == made
        assert metric(samples, "kfp_backend_http_request_duration_seconds_count", method="GET", route=route) == made
        # Recorded by the executor and the scheduler processes only: their values reach a web worker's scrape.
        assert metric(samples, "kfp_backend_runs", state="Succeeded") == runs
        assert metric(samples, "kfp_backend_executor_claim_lag_seconds_count") == runs
        assert metric(samples, "kfp_backend_step_launch_seconds_count") == steps * runs
        assert metric(samples, "kfp_backend_scheduler_fire_lag_seconds_count") == len(fired)
        assert ("kfp_backend_steps_running", ()) in samples and metric(samples, "kfp_backend_steps_running") == 0
        assert ("kfp_backend_steps_queued", ()) in samples and metric(samples, "kfp_backend_steps_queued") == 0

        stop_and_check(process, children, log_path)


def _job_runs(client: Any, job_id: str) -> list[Any]:
    return client.runs.list_runs(resource_reference_key_type="JOB", resource_reference_key_id=job_id).runs or []


def _nodes(detail: Any) -> list[dict[str, Any]]:
    import json

    return list(json.loads(detail.pipeline_runtime.workflow_manifest)["status"]["nodes"].values())


def test_auth_is_required_on_a_public_bind_in_every_worker_and_a_dead_child_stops_serve(tmp_path: Path) -> None:
    data = tmp_path / "server" / "data"
    with _serve(tmp_path / "server", "--workers", "2", host="0.0.0.0",
                env={"KFP_BACKEND_SCHEDULER_ENABLED": "false"}) as (url, process, log_path):
        children = descendants(process.pid)
        web = next(pid for pid in children if command_line(pid).endswith("kfp_backend.processes.web "))
        environ = dict(item.split("=", 1) for item in
                       (Path("/proc") / str(web) / "environ").read_text().split("\0") if "=" in item)
        metrics_dir = Path(environ[MULTIPROC_DIR])  # made by serve, as none was given
        assert metrics_dir.is_dir()
        assert not any(command_line(pid).endswith("kfp_backend scheduler ") for pid in children)

        assert requests.get(url + API + "/healthz", timeout=10).json()["multi_user"] is True
        refused = spread_requests(url + API + "/experiments", metrics_dir, status=401)

        # A web worker killed: gunicorn replaces it, its live gauges leave the sums (child_exit), its counts stay.
        master = next(pid for pid in direct_children(process.pid) if "kfp_backend.processes.web" in command_line(pid))
        worker = min(direct_children(master))
        assert (metrics_dir / f"gauge_livesum_{worker}.db").exists()
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: not (metrics_dir / f"gauge_livesum_{worker}.db").exists(), 30, "the dead worker stays live")
        wait_for(lambda: len(direct_children(master)) == 2, 30, "gunicorn did not replace the dead worker")
        samples = scrape(url)
        assert metric(samples, "kfp_backend_http_requests_total", method="GET", route=API + "/experiments",
                      status="401") == refused

        token = subprocess.run(_command("token", "create", "--user", "alice", "--namespace", "team-a",
                                        "--data-dir", str(data)),
                               cwd=REPO_ROOT, env=server_env(), capture_output=True, text=True, timeout=120,
                               check=True).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(20):  # both workers have answered above: each reads the token from the database
            response = requests.get(url + API + "/experiments", params={
                "resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": "team-a"},
                headers=headers, timeout=10)
            assert response.status_code == 200, response.text

        executor = next(pid for pid in children if command_line(pid).endswith("kfp_backend executor "))
        os.kill(executor, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
        assert process.returncode == 1
        log = log_path.read_text(errors="replace")
        assert "the executor process" in log and "exited with status -9" in log, log
        wait_for(lambda: not any(alive(pid) for pid in children), 10, "children left running")
        assert not metrics_dir.exists()


def test_executor_and_scheduler_commands_run_alone(tmp_path: Path, package: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    database = f"sqlite:///{data}/alone.db"
    refused = subprocess.run(_command("executor", "--database-url", database, "--data-dir", str(data)),
                             cwd=REPO_ROOT, env=server_env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "kfp-backend db upgrade" in refused.stderr, refused.stderr

    api_only = {"KFP_BACKEND_EXECUTOR_ENABLED": "false", "KFP_BACKEND_SCHEDULER_ENABLED": "false"}
    flags = ["--database-url", database, "--data-dir", str(data)]
    with _serve(tmp_path, *flags, env=api_only) as (url, _server, _log), \
            _process(["executor", *flags], tmp_path / "executor.log") as executor, \
            _process(["scheduler", *flags], tmp_path / "scheduler.log") as scheduler, \
            kfp_client_for(url, tmp_path) as client:
        experiment = client.create_experiment("alone")
        job = client.create_recurring_run(experiment.id, "every-2s", interval_second=2,
                                          pipeline_package_path=str(package), max_concurrency=1)

        def first_run() -> Any:
            runs = client.runs.list_runs(resource_reference_key_type="JOB", resource_reference_key_id=job.id).runs
            return runs[0] if runs else None

        wait_for(first_run, 60, "the scheduler did not fire the job")
        client.disable_job(job.id)
        detail = wait_for_run(client, first_run().id)
        assert detail.run.status == "Succeeded", detail.run.error
        for process, name in ((executor, "executor"), (scheduler, "scheduler")):
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=STOP_TIMEOUT_SECONDS) == 0, (tmp_path / f"{name}.log").read_text()


def test_sigterm_in_the_middle_of_a_run_then_a_restart_finishes_it(tmp_path: Path) -> None:
    """The executor child releases its run at SIGTERM; the next `serve --workers` resumes it, no step run twice."""
    from tests.e2e.test_restart import COUNTER_DIR, _pipeline

    marker = uuid.uuid4().hex[:12]
    port = free_port()
    try:
        with _serve(tmp_path, "--workers", "1", port=port) as (url, process, log_path), \
                kfp_client_for(url, tmp_path) as client:
            run_id = client.create_run_from_pipeline_func(_pipeline(marker), arguments={}, run_name="stopped").run_id
            wait_for(lambda: any(n.get("displayName") == "slow" and n.get("phase") == "Running"
                                 for n in workflow_nodes(client.get_run(run_id))), 60, "the slow step never started")
            # Its steps are left running, to be adopted (as a one-process serve does); its own processes stop.
            stop_and_check(process, server_processes(process.pid), log_path)
        with _serve(tmp_path, "--workers", "1", port=port) as (url, _process, _log), \
                kfp_client_for(url, tmp_path) as client:
            detail = wait_for_run(client, run_id, timeout=90)
            assert detail.run.status == "Succeeded", detail.run.error
        for name in ("first", "slow", "last"):
            runs = (COUNTER_DIR / f"kfp-backend-restart-{marker}-{name}").read_text().splitlines()
            assert len(runs) == 1, f"{name} ran {len(runs)} times"
    finally:
        for path in COUNTER_DIR.glob(f"kfp-backend-restart-{marker}-*"):
            path.unlink()
