"""What a user sees in the log of `kfp-backend serve` at the default level (INFO): how steps are run, each run
created, started and finished (id, name, status, duration), each job fire (job, scheduled time, run), and no
library chatter (Alembic's plugin and migration-context lines)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.pipelines import compile_pipeline
from tests.e2e.run_checks import wait_for_run
from tests.e2e.test_scheduler_kfp_client import wait_for_runs

pytestmark = pytest.mark.e2e
LOG_WAIT_SECONDS = 10.0


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline("arithmetic", tmp_path_factory.mktemp("log-packages") / "arithmetic.yaml")


def wait_for_line(log: Path, pattern: str) -> str:
    """The first line of the server's log matching `pattern` (a regex), waiting a little: a line is written
    just after what a client can see (the run's final state is saved, then logged)."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        for line in log.read_text(errors="replace").splitlines():
            if re.search(pattern, line):
                return line
        assert time.monotonic() < deadline, f"no line matching {pattern!r} in the server log:\n{log.read_text()}"
        time.sleep(0.1)


def test_runs_and_job_fires_are_logged_and_libraries_keep_quiet(kfp_client, unique, package, server_log):
    experiment = kfp_client.create_experiment(f"{unique}-logged")
    run = kfp_client.run_pipeline(experiment.id, f"{unique}-run", pipeline_package_path=str(package))
    assert wait_for_run(kfp_client, run.id, timeout=90).run.status == "Succeeded"
    job = kfp_client.create_recurring_run(
        experiment.id, f"{unique}-job", interval_second=60, start_time="1970-01-01T10:00:00Z",
        end_time="1970-01-01T10:02:00Z", no_catchup=True, pipeline_package_path=str(package),
    )
    try:
        fired = wait_for_runs(kfp_client, job.id, 1)[0]
    finally:
        kfp_client.jobs.delete_job(job.id)

    name = re.escape(f"{unique}-run")
    wait_for_line(server_log, rf" INFO kfp_backend\.services\.runs: run {run.id} \({name}\) created in experiment "
                              rf"{experiment.id}$")
    wait_for_line(server_log, rf" INFO kfp_backend\.executor\.driver: run {run.id} \({name}\) started$")
    wait_for_line(server_log, rf" INFO kfp_backend\.executor\.driver: run {run.id} \({name}\) finished: Succeeded "
                              r"after \d+\.\d s$")
    wait_for_line(server_log, rf" INFO kfp_backend\.scheduler\.firing: job {job.id} \({unique}-job\) fired for "
                              rf"1970-01-01T10:02:00Z: run {fired.id} \({re.escape(fired.name)}\) created$")
    wait_for_line(server_log, rf"run {fired.id} \({re.escape(fired.name)}\) finished: ")

    text = server_log.read_text(errors="replace")
    started = re.findall(r" INFO kfp_backend\.executor\.factory: steps run as host processes: wrapper "
                         r"(kfp-step|python|shell) \(asked: auto\), isolation (namespace|rewrite) \(asked: auto\)",
                         text)
    assert len(started) == 1, text
    assert not re.search(r"^\S+ \S+ (DEBUG|INFO) (?!kfp_backend)", text, re.MULTILINE), text
