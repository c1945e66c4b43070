"""Recurring runs fire and execute: the kfp 1.8.22 client creates a periodic job of 2 s and a
seconds-first cron job `*/2 * * * * *` on the live server; their runs appear, named and referenced as
upstream's, with the job-run macros substituted, and succeed."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.pipelines import compile_pipeline
from tests.e2e.run_checks import wait_for_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline("arithmetic", tmp_path_factory.mktemp("scheduled-packages") / "arithmetic.yaml")


def job_runs(client: Any, job_id: str) -> list[Any]:
    response = client.runs.list_runs(resource_reference_key_type="JOB", resource_reference_key_id=job_id,
                                     page_size=100, sort_by="created_at")
    return sorted(response.runs or [], key=lambda run: run.scheduled_at)


def wait_for_runs(client: Any, job_id: str, count: int, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(runs := job_runs(client, job_id)) < count:
        assert time.monotonic() < deadline, f"job {job_id}: {len(runs)} runs after {timeout} s"
        time.sleep(0.2)
    return runs


def test_periodic_and_cron_jobs_fire_and_their_runs_succeed(kfp_client, unique, package):
    experiment = kfp_client.create_experiment(f"{unique}-scheduled")
    periodic = kfp_client.create_recurring_run(
        experiment.id, f"{unique}-Periodic", interval_second=2, pipeline_package_path=str(package),
        params={"greeting": "run [[Index]] at [[ScheduledTime.15:04:05]] id [[RunUUID]]"}, max_concurrency=3,
    )
    cron = kfp_client.create_recurring_run(
        experiment.id, f"{unique}-cron", cron_expression="*/2 * * * * *", pipeline_package_path=str(package),
        max_concurrency=3,
    )
    try:
        for job in (periodic, cron):
            runs = wait_for_runs(kfp_client, job.id, 2)[:2]
            swf = re.escape(re.sub(r"[^a-z0-9-]", "", job.name.lower())[:25])
            slots = []
            for index, run in enumerate(runs, start=1):
                assert re.fullmatch(rf"{swf}[a-z0-9]{{5}}-{index}-\d+", run.name), run.name
                references = {(r.key.type, r.key.id, r.relationship) for r in run.resource_references}
                assert references == {("EXPERIMENT", experiment.id, "OWNER"), ("JOB", job.id, "CREATOR")}
                scheduled = run.scheduled_at
                assert scheduled.second % 2 == 0 or job is periodic
                assert run.created_at >= scheduled
                slots.append(scheduled.timestamp())
                detail = wait_for_run(kfp_client, run.id, timeout=90)
                assert detail.run.status == "Succeeded", detail.run.status
                if job is periodic:
                    parameters = {p.name: p.value for p in detail.run.pipeline_spec.parameters}
                    stamp = scheduled.astimezone(timezone.utc).strftime("%H:%M:%S")
                    assert parameters["greeting"] == f"run {index} at {stamp} id {run.id}"
                    workflow = json.loads(detail.pipeline_runtime.workflow_manifest)
                    labels = workflow["metadata"]["labels"]
                    assert labels["scheduledworkflows.kubeflow.org/workflowIndex"] == str(index)
            assert slots[1] - slots[0] == 2
            # The job's status, as the client reads it: the schedule's condition (upstream's SWF).
            assert kfp_client.get_recurring_run(job.id).status == "Enabled"
        kfp_client.disable_job(cron.id)
        assert kfp_client.get_recurring_run(cron.id).status == "Disabled"
    finally:
        for job in (periodic, cron):
            kfp_client.jobs.delete_job(job.id)
    # Deleted jobs stop firing; their runs stay.
    counts = [len(job_runs(kfp_client, job.id)) for job in (periodic, cron)]
    time.sleep(2.5)
    assert [len(job_runs(kfp_client, job.id)) for job in (periodic, cron)] == counts
    assert all(count >= 2 for count in counts)


UPSTREAM_START = datetime(1970, 1, 1, 10, 0, 0, tzinfo=timezone.utc)
# The scheduler looks at the jobs at least this often: waiting several times as long after the expected runs
# gives an extra (wrong) fire every chance to show up.
SETTLE_SECONDS = 3.0


def test_start_and_end_in_1970_fire_two_runs_with_catchup_and_one_without(kfp_client, unique, package):
    """Upstream's own scenario (job_api_test): start 1970-01-01T10:00:00Z, end two minutes later, every 60 s
    or `0 * * * * ?`, the client's default max_concurrency of 1: shortly after creation, two runs (10:01 and
    10:02) with catch-up, one (10:02) with no_catchup, and no more after."""
    experiment = kfp_client.create_experiment(f"{unique}-in-1970")
    window = dict(start_time="1970-01-01T10:00:00Z", end_time="1970-01-01T10:02:00Z",
                  pipeline_package_path=str(package))
    jobs = {}
    for kind, schedule in (("periodic", dict(interval_second=60)), ("cron", dict(cron_expression="0 * * * * ?"))):
        for no_catchup in (False, True):
            name = f"{unique}-{kind}-{'latest' if no_catchup else 'catchup'}"
            jobs[name] = kfp_client.create_recurring_run(experiment.id, name, no_catchup=no_catchup or None,
                                                         **schedule, **window)
    expected = {name: ([UPSTREAM_START + timedelta(minutes=2)] if name.endswith("latest")
                       else [UPSTREAM_START + timedelta(minutes=1), UPSTREAM_START + timedelta(minutes=2)])
                for name in jobs}
    try:
        for name, job in jobs.items():
            assert (job.trigger.periodic_schedule or job.trigger.cron_schedule).start_time == UPSTREAM_START
            # The second catch-up run waits for the first to finish (max_concurrency 1): bounded, as run time is.
            for run in wait_for_runs(kfp_client, job.id, len(expected[name]), timeout=180):
                assert wait_for_run(kfp_client, run.id, timeout=90).run.status == "Succeeded"
        time.sleep(SETTLE_SECONDS)
        for name, job in jobs.items():
            runs = job_runs(kfp_client, job.id)
            assert [run.scheduled_at for run in runs] == expected[name], name
            assert all(run.created_at > datetime(2000, 1, 1, tzinfo=timezone.utc) for run in runs)
    finally:
        for job in jobs.values():
            kfp_client.jobs.delete_job(job.id)
