"""A real outage: the server stops for several slots of two 2-second jobs and starts again on the same
data. The catch-up job backfills every missed slot, in order, without gaps or doubles; the no_catchup
job fires once for the whole outage, at the time it came back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kfp
import pytest

from tests.e2e.pipelines import compile_pipeline
from tests.e2e.servers import live_server

pytestmark = pytest.mark.e2e

INTERVAL = 2
OUTAGE_SECONDS = 9


def slots(client: Any, job_id: str) -> list[int]:
    response = client.runs.list_runs(resource_reference_key_type="JOB", resource_reference_key_id=job_id,
                                     page_size=100)
    return sorted(int(run.scheduled_at.timestamp()) for run in response.runs or [])


def wait_until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_catch_up_backfills_and_no_catchup_fires_once_after_an_outage(tmp_path: Path) -> None:
    package = compile_pipeline("arithmetic", tmp_path / "arithmetic.yaml")
    with live_server(tmp_path / "server") as url:
        client = kfp.Client(host=url)
        experiment = client.create_experiment("outage")
        catchup = client.create_recurring_run(experiment.id, "catch-up", interval_second=INTERVAL,
                                              pipeline_package_path=str(package), max_concurrency=10)
        skipping = client.create_recurring_run(experiment.id, "no-catch-up", interval_second=INTERVAL,
                                               pipeline_package_path=str(package), max_concurrency=10,
                                               no_catchup=True)
        wait_until(lambda: slots(client, catchup.id) and slots(client, skipping.id))
    stopped_at = time.time()
    time.sleep(OUTAGE_SECONDS)
    # No server runs from stopped_at to restarting_at. The new one's scheduler may fire before its
    # HTTP side answers (restarted_at), by more than a second on a loaded machine.
    restarting_at = time.time()
    with live_server(tmp_path / "server") as url:
        restarted_at = time.time()
        client = kfp.Client(host=url)
        before = slots(client, skipping.id)
        wait_until(lambda: len(slots(client, skipping.id)) > len(before))
        wait_until(lambda: slots(client, catchup.id)[-1] >= restarted_at - INTERVAL)
        caught_up = slots(client, catchup.id)
        missed = [s for s in caught_up if stopped_at < s < restarting_at]
        skipped = slots(client, skipping.id)
        for job in (catchup, skipping):
            client.jobs.disable_job(job.id)
    # Every slot of the catch-up job, including the ones of the outage, once and in order.
    assert caught_up == list(range(caught_up[0], caught_up[-1] + 1, INTERVAL))
    assert len(missed) >= OUTAGE_SECONDS // INTERVAL - 1, (missed, stopped_at, restarted_at)
    # The no_catchup job: nothing for the outage but one run when it came back.
    during = [s for s in skipped if stopped_at + INTERVAL < s < restarting_at]
    assert during == [], (skipped, stopped_at, restarting_at, restarted_at)
    after_restart = [s for s in skipped if s >= restarting_at]
    assert after_restart and after_restart[0] <= restarted_at + INTERVAL, (skipped, restarted_at)
