"""Firing against a real database with a controllable clock: names, references, scheduled times and
macros of fired runs; catch-up in order; no_catchup; max_concurrency makes slots wait (not skip);
disabled, deleted and ended jobs stay quiet; each slot fires once, even with two firers at once."""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from kfp_backend.config import Settings
from kfp_backend.scheduler.firing import JobFiring, fired_run_name, fnv32a, swf_name
from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.ir_run_manifest import fired_ir_document
from kfp_backend.services.schedule_state import ScheduleStateService
from kfp_backend.store.db import Database
from kfp_backend.store.models import JobFire
from tests.api.test_v2_pipelines import IR
from tests.scheduler.helpers import (
    FakeClock,
    add_job,
    delete_job,
    finish_runs,
    fires_of,
    get_job,
    runs_of,
    set_job,
    workflow_of,
)

T0 = int(datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp())


def firing(db: Database, clock: FakeClock, **kw: object) -> JobFiring:
    return JobFiring(ScheduleStateService(db), Settings(), clock_ms=clock, **kw)  # type: ignore[arg-type]


def test_swf_names_as_upstream() -> None:
    assert fnv32a("") == 0x811C9DC5
    assert fnv32a("a") == 0xE40C292C  # the FNV-1a test vector
    job_id = "0b7d7c8e-3a51-4c09-9c0e-5d2b8f8a1f11"
    name = swf_name("My Job_1 (nightly)!", job_id)
    assert re.fullmatch(r"myjob1nightly[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    assert name == swf_name("My Job_1 (nightly)!", job_id)  # every process computes the same
    assert swf_name("My Job_1 (nightly)!", "another-id") != name
    assert swf_name("", job_id).startswith("job-") and len(swf_name("", job_id)) == 9
    assert swf_name("x" * 40, job_id)[:-5] == "x" * 25
    assert fired_run_name(name, 3) == f"{name}-3-{fnv32a(f'{name}-3')}"


def test_fired_run_names_references_scheduled_time_and_macros(db: Database, manifest: str) -> None:
    clock = FakeClock(T0)
    value = ("s=[[ScheduledTime]] c=[[CurrentTime]] i=[[Index]] id=[[RunUUID]] d=[[ScheduledTime.2006-01-02 15:04]] "
             "f={{$.scheduledTime.strftime('%Y/%m/%d %H:%M:%S')}} g={{$.currentTime.strftime('%H:%M:%S')}} "
             "u=[[Unknown]] x=[[CurrentTime.15h04]]")
    job = add_job(db, manifest, name="Nightly ETL", interval=60, created_at=T0, max_concurrency=5,
                  parameters=[{"name": "word", "value": value}])
    fire = firing(db, clock)
    assert fire.fire_due(clock()).fired == []  # nothing due at creation: the first slot is T0 + 60
    assert get_job(db, job.id).next_fire_at == T0 + 60
    clock.set(T0 + 125.4)
    fired = fire.fire_due(clock()).fired
    assert [(f.scheduled_at, f.index) for f in fired] == [(T0 + 60, 1), (T0 + 120, 2)]

    runs = runs_of(db, job.id)
    swf = swf_name("Nightly ETL", job.id)
    assert swf.startswith("nightlyetl")
    for index, run in enumerate(runs, start=1):
        assert run.name == f"{swf}-{index}-{fnv32a(f'{swf}-{index}')}"
        assert run.scheduled_at == T0 + 60 * index
        assert run.created_at == T0 + 125
        assert run.job_id == job.id and run.experiment_id == job.experiment_id
        references = json.loads(run.resource_references)
        assert [(r["type"], r["id"], r["relationship"]) for r in references] == [
            ("EXPERIMENT", job.experiment_id, "OWNER"), ("JOB", job.id, "CREATOR"),
        ]
        assert references[1]["name"] == "Nightly ETL" and references[0]["name"] == "Default"
        workflow = workflow_of(db, run.id)
        assert workflow["metadata"]["name"] == run.name
        labels = workflow["metadata"]["labels"]
        assert labels["pipeline/runid"] == run.id
        assert labels["scheduledworkflows.kubeflow.org/scheduledWorkflowName"] == swf
        assert labels["scheduledworkflows.kubeflow.org/workflowEpoch"] == str(run.scheduled_at)
        assert labels["scheduledworkflows.kubeflow.org/workflowIndex"] == str(index)
        assert labels["scheduledworkflows.kubeflow.org/isOwnedByScheduledWorkflow"] == "true"
        arguments = {p["name"]: p.get("value") for p in workflow["spec"]["arguments"]["parameters"]}
        scheduled = datetime.fromtimestamp(run.scheduled_at, timezone.utc)
        expected = (f"s={scheduled:%Y%m%d%H%M%S} c=20240501120205 i={index} id={run.id} "
                    f"d={scheduled:%Y-%m-%d %H:%M} f={scheduled:%Y/%m/%d %H:%M:%S} g=12:02:05 u=[[Unknown]] x=12h02")
        assert arguments["word"] == expected
        assert json.loads(run.parameters) == [{"name": "word", "value": expected}]
        # Pipeline defaults are not formatted for job runs.
        assert arguments["stamp"] == "default-[[ScheduledTime]]"
    fires = fires_of(db, job.id)
    assert [(f.scheduled_at, f.run_id, f.run_index, f.fired_at_ms) for f in fires] == [
        (run.scheduled_at, run.id, i, T0 * 1000 + 125400) for i, run in enumerate(runs, start=1)
    ]
    job_row = get_job(db, job.id)
    assert (job_row.last_scheduled_at, job_row.last_index, job_row.next_fire_at) == (T0 + 120, 2, T0 + 180)


def test_catch_up_fires_every_missed_slot_in_order_bounded_by_max_concurrency(db: Database, manifest: str) -> None:
    clock = FakeClock(T0 + 95)
    job = add_job(db, manifest, interval=10, created_at=T0, max_concurrency=3)
    fire = firing(db, clock)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 10, T0 + 20, T0 + 30]
    # At the limit: the next slot waits (looked at again in a second), it is not skipped.
    assert fire.fire_due(clock()).fired == []
    assert get_job(db, job.id).next_fire_at == T0 + 96
    clock.set(T0 + 96)
    assert fire.fire_due(clock()).fired == []
    finish_runs(db, job.id, "Failed")
    clock.set(T0 + 97)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 40, T0 + 50, T0 + 60]
    finish_runs(db, job.id)
    clock.set(T0 + 98)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 70, T0 + 80, T0 + 90]
    assert [r.scheduled_at for r in runs_of(db, job.id)] == [T0 + 10 * i for i in range(1, 10)]
    assert [f.run_index for f in fires_of(db, job.id)] == list(range(1, 10))


def test_active_runs_hold_back_a_due_slot_until_one_finishes(db: Database, manifest: str) -> None:
    clock = FakeClock(T0 + 10)
    job = add_job(db, manifest, kind="cron", cron="*/10 * * * * *", created_at=T0, max_concurrency=1)
    fire = firing(db, clock)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 10]
    clock.set(T0 + 45)  # the run is still going: slots 20, 30, 40 wait
    assert fire.fire_due(clock()).fired == []
    with db.transaction() as session:  # statuses that count as active
        from sqlalchemy import update

        from kfp_backend.store.models import Run
        session.execute(update(Run).where(Run.job_id == job.id).values(status="Running"))
    clock.set(T0 + 46)
    assert fire.fire_due(clock()).fired == []
    finish_runs(db, job.id, "Succeeded", at=T0 + 46)
    clock.set(T0 + 47)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 20]


def test_no_catchup_fires_only_the_latest_slot(db: Database, manifest: str) -> None:
    clock = FakeClock(T0 + 10)
    periodic = add_job(db, manifest, interval=10, created_at=T0, no_catchup=True, max_concurrency=10)
    cron = add_job(db, manifest, kind="cron", cron="*/10 * * * * *", created_at=T0, no_catchup=True,
                   max_concurrency=10)
    fire = firing(db, clock)
    assert sorted(f.scheduled_at for f in fire.fire_due(clock()).fired) == [T0 + 10, T0 + 10]
    clock.set(T0 + 95)  # an outage of eight slots
    fired = {f.job_id: f.scheduled_at for f in fire.fire_due(clock()).fired}
    assert fired == {periodic.id: T0 + 95, cron.id: T0 + 90}
    assert fire.fire_due(clock()).fired == []
    clock.set(T0 + 105)
    fired = {f.job_id: f.scheduled_at for f in fire.fire_due(clock()).fired}
    assert fired == {periodic.id: T0 + 105, cron.id: T0 + 100}
    assert [r.scheduled_at for r in runs_of(db, cron.id)] == [T0 + 10, T0 + 90, T0 + 100]


def test_start_time_in_the_future_fires_one_interval_after_start(db: Database, manifest: str) -> None:
    clock = FakeClock(T0)
    job = add_job(db, manifest, interval=30, start=T0 + 100, created_at=T0, max_concurrency=10)
    fire = firing(db, clock)
    fire.fire_due(clock())
    assert get_job(db, job.id).next_fire_at == T0 + 130
    clock.set(T0 + 129.9)
    assert fire.fire_due(clock()).fired == []
    clock.set(T0 + 130)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 130]
    clock.set(T0 + 160)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 160]


UPSTREAM_START = int(datetime(1970, 1, 1, 10, 0, 0, tzinfo=timezone.utc).timestamp())


@pytest.mark.parametrize("kind", ["periodic", "cron"])
def test_start_and_end_in_1970_fire_two_runs_with_catchup_and_one_without(
    db: Database, manifest: str, kind: str
) -> None:
    """Upstream's own scenario, at the client's default max_concurrency of 1: start
    1970-01-01T10:00:00Z, end two minutes later, every 60 s or `0 * * * * ?`."""
    clock = FakeClock(T0)
    schedule: dict[str, Any] = dict(interval=60) if kind == "periodic" else dict(kind="cron", cron="0 * * * * ?")
    window = dict(start=UPSTREAM_START, end=UPSTREAM_START + 120, created_at=T0, **schedule)
    catchup = add_job(db, manifest, name="catchup", **window)
    latest = add_job(db, manifest, name="latest", no_catchup=True, **window)
    fire = firing(db, clock)
    fired = fire.fire_due(clock()).fired
    assert sorted((f.job_id == catchup.id, f.scheduled_at) for f in fired) == [
        (False, UPSTREAM_START + 120), (True, UPSTREAM_START + 60),
    ]
    for second in range(1, 5):  # the runs finish; only the catch-up job's second slot is left
        finish_runs(db, catchup.id)
        finish_runs(db, latest.id)
        clock.set(T0 + second)
        fire.fire_due(clock())
    assert [r.scheduled_at for r in runs_of(db, catchup.id)] == [UPSTREAM_START + 60, UPSTREAM_START + 120]
    assert [r.scheduled_at for r in runs_of(db, latest.id)] == [UPSTREAM_START + 120]
    assert get_job(db, catchup.id).next_fire_at is None and get_job(db, latest.id).next_fire_at is None


def test_end_time_disabled_and_deleted_jobs_do_not_fire(db: Database, manifest: str) -> None:
    clock = FakeClock(T0 + 100)
    ending = add_job(db, manifest, interval=10, end=T0 + 35, created_at=T0, max_concurrency=10)
    disabled = add_job(db, manifest, interval=10, created_at=T0, enabled=False)
    deleted = add_job(db, manifest, interval=10, created_at=T0)
    delete_job(db, deleted.id)
    fire = firing(db, clock)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 10, T0 + 20, T0 + 30]
    assert get_job(db, ending.id).next_fire_at is None
    clock.set(T0 + 1000)
    assert fire.fire_due(clock()).fired == []
    assert runs_of(db, disabled.id) == [] and runs_of(db, deleted.id) == []
    # Enabling (the Job API sets next_fire_at = 0) backfills from the creation time, in order.
    set_job(db, disabled.id, enabled=True, next_fire_at=0)
    assert [f.scheduled_at for f in fire.fire_due(clock()).fired] == [T0 + 10]
    set_job(db, disabled.id, enabled=False)
    finish_runs(db, disabled.id)
    clock.set(T0 + 1001)
    assert fire.fire_due(clock()).fired == []


def test_a_job_without_schedule_fires_once_at_creation(db: Database, manifest: str) -> None:
    clock = FakeClock(T0 + 2)
    job = add_job(db, manifest, kind="", created_at=T0)
    fire = firing(db, clock)
    assert [(f.scheduled_at, f.index) for f in fire.fire_due(clock()).fired] == [(T0, 1)]
    finish_runs(db, job.id)
    clock.set(T0 + 1000)
    assert fire.fire_due(clock()).fired == []
    assert get_job(db, job.id).next_fire_at is None


def test_a_slot_fired_elsewhere_is_skipped_not_fired_twice(db: Database, manifest: str) -> None:
    clock = FakeClock(T0 + 25)
    job = add_job(db, manifest, interval=10, created_at=T0, max_concurrency=10)
    # Another scheduler fired slot T0 + 10 (its row exists) but this job row does not show it.
    with db.transaction() as session:
        session.add(JobFire(job_id=job.id, scheduled_at=T0 + 10, run_id="elsewhere", run_index=1, fired_at_ms=0))
    fire = firing(db, clock)
    fired = []
    for _ in range(4):
        fired += fire.fire_due(clock()).fired
    assert [(f.scheduled_at, f.index) for f in fired] == [(T0 + 20, 2)]
    assert [(f.scheduled_at, f.run_id == "elsewhere") for f in fires_of(db, job.id)] == [
        (T0 + 10, True), (T0 + 20, False),
    ]


def test_two_firers_at_once_fire_each_slot_exactly_once(db: Database, manifest: str) -> None:
    clock = FakeClock(T0 + 200)
    jobs = [add_job(db, manifest, interval=10, created_at=T0, max_concurrency=4) for _ in range(5)]
    firers = [firing(db, clock) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(firers))

    def work(firer: JobFiring) -> None:
        try:
            start.wait(10)
            firer.fire_due(clock())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for _ in range(8):
        threads = [threading.Thread(target=work, args=(f,)) for f in firers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for job in jobs:
            finish_runs(db, job.id)
        clock.set(clock.seconds + 1)
    assert not errors, errors
    for job in jobs:
        runs = runs_of(db, job.id)
        assert [r.scheduled_at for r in runs] == [T0 + 10 * i for i in range(1, 21)]
        assert [f.run_index for f in fires_of(db, job.id)] == list(range(1, 21))
        assert len({r.name for r in runs}) == 20


# A KFP v2 pipeline spec: fired through the IR run creation function (the IrRunDocument seam, which the wiring
# hands to JobFiring); a JobFiring without one treats a row holding one as broken.
IR_SPEC = json.dumps({"pipelineInfo": {"name": "p"}, "root": {"dag": {"tasks": {}}}, "schemaVersion": "2.1.0"})


@pytest.mark.parametrize("broken", ["manifest", "parameter", "ir"])
def test_a_job_that_cannot_make_a_run_does_not_stop_the_others(
    db: Database, manifest: str, broken: str
) -> None:
    clock = FakeClock(T0 + 10)
    if broken == "manifest":
        bad = add_job(db, "not: [a workflow", interval=10, created_at=T0)
    elif broken == "ir":
        bad = add_job(db, IR_SPEC, interval=10, created_at=T0)
    else:
        bad = add_job(db, manifest, interval=10, created_at=T0, parameters=[{"name": "nope", "value": "1"}])
    good = add_job(db, manifest, interval=10, created_at=T0)
    fired = firing(db, clock).fire_due(clock()).fired
    assert [f.job_id for f in fired] == [good.id]
    assert get_job(db, bad.id).next_fire_at == T0 + 10 + 60  # retried later
    assert runs_of(db, bad.id) == []


class FakeIrRuns:
    """Stands in for run creation's IR function: records its calls, refuses a parameter `n` of "bad"."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, spec_manifest: str, *, run_id: str, run_name: str, now: int,
                 parameter_values: Any, pipeline_root: str) -> dict[str, Any]:
        self.calls.append({"run_id": run_id, "run_name": run_name, "now": now, "values": dict(parameter_values)})
        if parameter_values.get("n") == "bad":
            raise InvalidArgument("Invalid input parameter: n is not a NUMBER_INTEGER")
        return {"pipeline_spec": json.loads(spec_manifest), "metadata": {"name": run_name, "labels": {}},
                "runtime_config": {"parameter_values": dict(parameter_values)}}


def test_an_ir_job_fires_through_the_ir_run_creation_seam(db: Database) -> None:
    clock = FakeClock(T0 + 20)
    ir_runs = FakeIrRuns()
    parameters = [{"name": "n", "value": "3", "typed_value": 3},
                  {"name": "w", "value": "at [[Index]]", "typed_value": "at [[Index]]"}]
    job = add_job(db, IR_SPEC, name="IR job", interval=10, created_at=T0, max_concurrency=5,
                  parameters=parameters)
    bad = add_job(db, IR_SPEC, interval=10, created_at=T0,
                  parameters=[{"name": "n", "value": "bad", "typed_value": "bad"}])
    fired = firing(db, clock, ir_run_document=ir_runs).fire_due(clock()).fired
    assert [(f.job_id, f.index) for f in fired] == [(job.id, 1), (job.id, 2)]
    runs = runs_of(db, job.id)
    assert [r.id for r in runs] == [f.run_id for f in fired]
    for run, item in zip(runs, fired, strict=True):
        document = workflow_of(db, run.id)
        assert document["runtime_config"]["parameter_values"] == {"n": 3, "w": f"at {item.index}"}
        assert document["metadata"]["name"] == run.name == item.run_name
        labels = document["metadata"]["labels"]
        assert labels["scheduledworkflows.kubeflow.org/workflowIndex"] == str(item.index)
        assert labels["scheduledworkflows.kubeflow.org/scheduledWorkflowName"] == swf_name("IR job", job.id)
        assert json.loads(run.parameters) == [{"name": "n", "value": "3", "typed_value": 3},
                                              {"name": "w", "value": f"at {item.index}",
                                               "typed_value": f"at {item.index}"}]
        assert run.scheduled_at == T0 + 10 * item.index
    # The refused one is broken before any fire (tried once when its template is built) and retried later.
    assert runs_of(db, bad.id) == []
    assert get_job(db, bad.id).next_fire_at == T0 + 20 + 60


def test_fires_built_ahead_are_used_only_when_still_right(db: Database, manifest: str) -> None:
    clock = FakeClock(T0 + 5)
    job = add_job(db, manifest, interval=10, created_at=T0, max_concurrency=10,
                  parameters=[{"name": "word", "value": "[[CurrentTime]] [[Index]]"}])
    ahead, other = firing(db, clock), firing(db, clock)
    ahead.fire_due(clock())
    assert ahead.prepare(T0 + 10) == 1
    prepared_run = ahead._prepared[job.id].run["id"]
    clock.set(T0 + 10)
    assert [f.run_id for f in ahead.fire_due(clock()).fired] == [prepared_run]
    # Built for T0 + 20 but fired a second later: built again ([[CurrentTime]] is the real time).
    assert ahead.prepare(T0 + 20) == 1
    prepared_run = ahead._prepared[job.id].run["id"]
    clock.set(T0 + 21)
    fired = ahead.fire_due(clock()).fired
    assert len(fired) == 1 and fired[0].run_id != prepared_run
    assert json.loads(runs_of(db, job.id)[-1].parameters)[0]["value"] == "20240501120021 2"
    # Built for T0 + 30, but another scheduler fired that slot first: not fired again.
    assert ahead.prepare(T0 + 30) == 1
    clock.set(T0 + 30)
    assert len(other.fire_due(clock()).fired) == 1
    assert ahead.fire_due(clock()).fired == []
    assert [f.scheduled_at for f in fires_of(db, job.id)] == [T0 + 10, T0 + 20, T0 + 30]



def test_fired_ahead_runs_exist_only_from_the_due_second_and_fire_once(db: Database, manifest: str) -> None:
    clock = FakeClock(T0)
    jobs = [add_job(db, manifest, interval=1, created_at=T0, max_concurrency=10) for _ in range(3)]
    ahead, other = firing(db, clock), firing(db, clock)
    ahead.fire_due(clock())  # first look: the first slot is T0 + 1
    assert ahead.prepare(T0 + 1) == 3
    clock.set(T0 + 0.8)
    seen: list[object] = []
    racer: list[threading.Thread] = []

    def hold(due_ms: int) -> bool:
        # The runs are written but not committed: nobody else sees them yet.
        seen.append((due_ms, [runs_of(db, job.id) for job in jobs], [fires_of(db, job.id) for job in jobs]))
        # Another scheduler tries the same second meanwhile: it waits for the locks, then finds it fired.
        racer.append(threading.Thread(target=other.fire_due, args=(due_ms,)))
        racer[0].start()
        clock.set(due_ms / 1000 + 0.004)
        return True

    fired = ahead.fire_ahead(T0 + 1, hold).fired
    racer[0].join(60)
    assert seen == [((T0 + 1) * 1000, [[], [], []], [[], [], []])]
    assert sorted(f.job_id for f in fired) == sorted(job.id for job in jobs)
    for job in jobs:
        [run] = runs_of(db, job.id)
        assert (run.scheduled_at, run.created_at) == (T0 + 1, T0 + 1)
        [fire] = fires_of(db, job.id)
        assert (fire.run_id, fire.fired_at_ms) == (run.id, (T0 + 1) * 1000 + 4)
        assert get_job(db, job.id).status == "Enabled"

    # Called off at the due time (the lease was lost): nothing was fired, the slot fires when due.
    clock.set(T0 + 1.7)
    assert ahead.fire_ahead(T0 + 2, lambda due_ms: False).fired == []
    assert all(len(runs_of(db, job.id)) == 1 and get_job(db, job.id).last_index == 1 for job in jobs)
    clock.set(T0 + 2)
    assert len(other.fire_due(clock()).fired) == 3
    for job in jobs:
        assert [f.scheduled_at for f in fires_of(db, job.id)] == [T0 + 1, T0 + 2]


def test_fire_ahead_in_parts_fires_every_job_once(db: Database, manifest: str) -> None:
    clock = FakeClock(T0)
    jobs = [add_job(db, manifest, interval=1, created_at=T0, max_concurrency=10) for _ in range(8)]
    fire = firing(db, clock)
    fire.fire_due(clock())
    clock.set(T0 + 0.8)
    holds: list[int] = []

    def hold(due_ms: int) -> bool:  # each part holds its own transaction (SQLite: one after the other)
        holds.append(due_ms)
        clock.set(due_ms / 1000)
        return True

    fired = fire.fire_ahead(T0 + 1, hold, parts=2).fired
    assert sorted(f.job_id for f in fired) == sorted(job.id for job in jobs)
    assert holds and set(holds) == {(T0 + 1) * 1000} and len(holds) <= 2
    for job in jobs:
        assert [r.scheduled_at for r in runs_of(db, job.id)] == [T0 + 1]
        assert [f.scheduled_at for f in fires_of(db, job.id)] == [T0 + 1]
    clock.set(T0 + 1.5)
    assert fire.fire_due(clock()).fired == []  # nothing left due


def test_each_fire_is_logged_with_job_scheduled_time_and_run(
    db: Database, manifest: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0 + 25)
    job = add_job(db, manifest, name="Nightly", interval=10, created_at=T0, max_concurrency=10)
    with caplog.at_level(logging.INFO, logger="kfp_backend.scheduler.firing"):
        fired = firing(db, clock).fire_due(clock()).fired
    assert [r.getMessage() for r in caplog.records if r.name == "kfp_backend.scheduler.firing"] == [
        f"job {job.id} (Nightly) fired for {stamp}: run {f.run_id} ({f.run_name}) created"
        for f, stamp in zip(fired, ("2024-05-01T12:00:10Z", "2024-05-01T12:00:20Z"), strict=True)
    ]


def test_an_ir_job_fires_with_run_creations_ir_function(db: Database) -> None:
    """Wired with services' fired_ir_document: an integer given as v1beta1 text `[[Index]]` is typed per fire
    (its first fire's value is tried when the template is built), a string keeps its substituted text."""
    typed = json.loads(json.dumps(IR))  # say(word) of an optional STRING `word`, plus:
    typed["root"]["inputDefinitions"]["parameters"]["n"] = {"parameterType": "NUMBER_INTEGER"}
    spec = json.dumps(typed)
    clock = FakeClock(T0 + 20)
    job = add_job(db, spec, name="typed", interval=10, created_at=T0, max_concurrency=5,
                  parameters=[{"name": "n", "value": "[[Index]]"}, {"name": "word", "value": "run [[Index]]"}])
    fired = firing(db, clock, ir_run_document=fired_ir_document).fire_due(clock()).fired
    assert [f.index for f in fired] == [1, 2]
    for run, item in zip(runs_of(db, job.id), fired, strict=True):
        document = workflow_of(db, run.id)
        assert document["runtime_config"]["parameter_values"] == {"n": item.index, "word": f"run {item.index}"}
        assert document["metadata"]["name"] == item.run_name
        assert document["pipeline_spec"]["pipelineInfo"] == IR["pipelineInfo"]
