"""The next-fire rules (kfp-execution-semantics §5.3) with a controllable `now`: catch-up walks every
slot in order, no_catchup jumps to the latest, start time is the base of a job that never fired, end time ends."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from kfp_backend.scheduler.cron import parse_cron
from kfp_backend.scheduler.triggers import Progress, Trigger, latest_cron_slot, next_slot

T0 = int(datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp())  # a whole hour


def walk(trigger: Trigger, now: int, limit: int = 100) -> list[int]:
    """Every slot due by `now`, as the scheduler fires them one after another."""
    progress = Progress()
    slots = []
    while len(slots) < limit:
        slot = next_slot(trigger, progress, now)
        if slot is None or slot > now:
            break
        slots.append(slot)
        progress = Progress(slot, progress.last_index + 1)
    return slots


def periodic(interval: int, **kw: object) -> Trigger:
    return Trigger(kind="periodic", interval_seconds=interval, created_at=kw.pop("created_at", T0), **kw)  # type: ignore[arg-type]


def cron(text: str, **kw: object) -> Trigger:
    return Trigger(kind="cron", cron=text, created_at=kw.pop("created_at", T0), **kw)  # type: ignore[arg-type]


def test_periodic_first_slot_is_one_interval_after_creation_and_catch_up_fires_every_missed_slot() -> None:
    trigger = periodic(10)
    assert next_slot(trigger, Progress(), T0) == T0 + 10  # not due yet
    assert walk(trigger, T0 + 55) == [T0 + 10, T0 + 20, T0 + 30, T0 + 40, T0 + 50]
    assert next_slot(trigger, Progress(T0 + 50, 5), T0 + 55) == T0 + 60


def test_periodic_no_catchup_fires_once_now_after_an_outage() -> None:
    trigger = periodic(10, no_catchup=True)
    # Less than a whole interval late: the slot itself.
    assert next_slot(trigger, Progress(T0 + 10, 1), T0 + 29) == T0 + 20
    # Several slots missed: one run, at `now`, then the grid restarts from there.
    assert next_slot(trigger, Progress(T0 + 10, 1), T0 + 95) == T0 + 95
    assert walk(trigger, T0 + 95) == [T0 + 95]
    assert next_slot(trigger, Progress(T0 + 95, 2), T0 + 95) == T0 + 105


def test_periodic_start_in_the_future_fires_one_interval_after_start_then_every_interval() -> None:
    trigger = periodic(60, start_time=T0 + 1000)
    assert next_slot(trigger, Progress(), T0) == T0 + 1060
    assert walk(trigger, T0 + 1190) == [T0 + 1060, T0 + 1120, T0 + 1180]


def test_a_start_time_before_creation_is_the_base_of_a_job_that_never_fired() -> None:
    # Upstream's effective last run: the start time, even long past; catch-up fires every slot since.
    assert next_slot(periodic(60, start_time=T0 - 500), Progress(), T0) == T0 - 440
    assert walk(periodic(60, start_time=T0 - 200), T0) == [T0 - 140, T0 - 80, T0 - 20]
    assert walk(cron("0 * * * * *", start_time=T0 - 200), T0) == [T0 - 180, T0 - 120, T0 - 60, T0]
    # Once it fired, its last slot is the base.
    assert next_slot(periodic(60, start_time=T0 - 500), Progress(T0 - 20, 3), T0) == T0 + 40


UPSTREAM_START = int(datetime(1970, 1, 1, 10, 0, 0, tzinfo=timezone.utc).timestamp())


@pytest.mark.parametrize("kind", ["periodic", "cron"])
def test_upstream_scenario_start_and_end_in_1970_fire_two_runs_or_one_without_catchup(kind: str) -> None:
    """Upstream's job_api_test: start 1970-01-01T10:00:00Z, end two minutes later, every 60 s or
    `0 * * * * ?`, created now: 2 runs (10:01 and 10:02) with catch-up, 1 (10:02) without."""
    now = int(time.time())

    def trigger(no_catchup: bool) -> Trigger:
        window = dict(start_time=UPSTREAM_START, end_time=UPSTREAM_START + 120, no_catchup=no_catchup,
                      created_at=now)
        return periodic(60, **window) if kind == "periodic" else cron("0 * * * * ?", **window)

    assert walk(trigger(False), now) == [UPSTREAM_START + 60, UPSTREAM_START + 120]
    assert walk(trigger(True), now) == [UPSTREAM_START + 120]
    assert next_slot(trigger(False), Progress(UPSTREAM_START + 120, 2), now + 3600) is None
    assert next_slot(trigger(True), Progress(UPSTREAM_START + 120, 1), now + 3600) is None


def test_end_time_stops_the_schedule() -> None:
    trigger = periodic(10, end_time=T0 + 25)
    assert walk(trigger, T0 + 1000) == [T0 + 10, T0 + 20]
    assert next_slot(trigger, Progress(T0 + 20, 2), T0 + 1000) is None
    assert next_slot(periodic(10, end_time=T0 + 5), Progress(), T0) is None
    # no_catchup after the end: the end time itself, once (upstream), then nothing.
    late = periodic(10, end_time=T0 + 45, no_catchup=True)
    assert next_slot(late, Progress(T0 + 10, 1), T0 + 1000) == T0 + 45
    assert next_slot(late, Progress(T0 + 45, 2), T0 + 1000) is None
    assert walk(cron("0 * * * * *", end_time=T0 + 150), T0 + 1000) == [T0 + 60, T0 + 120]


def test_cron_next_is_the_first_match_strictly_after_the_last_slot() -> None:
    every_two = cron("*/2 * * * * *", created_at=T0 + 1)
    assert next_slot(every_two, Progress(), T0 + 1) == T0 + 2
    assert next_slot(every_two, Progress(T0 + 2, 1), T0 + 2) == T0 + 4
    hourly = cron("0 0 * * * *", created_at=T0)  # seconds first: every hour at :00:00
    assert next_slot(hourly, Progress(), T0) == T0 + 3600
    assert walk(cron("*/20 * * * * *"), T0 + 65) == [T0 + 20, T0 + 40, T0 + 60]
    # The start time counts when it is later than the base.
    assert next_slot(cron("0 * * * * *", start_time=T0 + 90), Progress(), T0) == T0 + 120
    # Five fields: day-of-week is *.
    assert next_slot(cron("30 15 * * *"), Progress(), T0) == T0 + 15 * 60 + 30


def test_cron_no_catchup_jumps_to_the_latest_missed_slot() -> None:
    trigger = cron("*/10 * * * * *", no_catchup=True)
    assert next_slot(trigger, Progress(T0 + 10, 1), T0 + 15) == T0 + 20  # not late: the next one
    assert next_slot(trigger, Progress(T0 + 10, 1), T0 + 75) == T0 + 70
    assert walk(trigger, T0 + 75) == [T0 + 70]
    with_end = cron("*/10 * * * * *", no_catchup=True, end_time=T0 + 45)
    assert next_slot(with_end, Progress(T0 + 10, 1), T0 + 1000) == T0 + 40


def test_cron_no_catchup_after_a_long_outage_is_quick_and_exact() -> None:
    every_second = cron("* * * * * *", no_catchup=True)
    started = time.perf_counter()
    assert next_slot(every_second, Progress(T0, 1), T0 + 86400 * 30) == T0 + 86400 * 30
    # Sparse crons: the latest match, found by a widening window.
    weekdays = cron("0 30 9 * * 1-5", no_catchup=True)
    friday = int(datetime(2024, 5, 3, 9, 30, tzinfo=timezone.utc).timestamp())
    sunday_noon = int(datetime(2024, 5, 5, 12, 0, tzinfo=timezone.utc).timestamp())
    assert next_slot(weekdays, Progress(T0, 1), sunday_noon) == friday
    assert time.perf_counter() - started < 1.0
    # It agrees with walking the chain one match at a time.
    schedule = parse_cron("0 */7 1-3 * * *")
    first = schedule.next_after(T0)
    assert first is not None
    for bound in range(first, first + 3 * 86400, 3607):
        expected = first
        while (following := schedule.next_after(expected)) is not None and following <= bound:
            expected = following
        assert latest_cron_slot(schedule, first, bound) == expected


def test_every_descriptor_counts_from_the_previous_slot() -> None:
    trigger = cron("@every 7s")
    assert walk(trigger, T0 + 30) == [T0 + 7, T0 + 14, T0 + 21, T0 + 28]
    skipping = cron("@every 7s", no_catchup=True)
    assert next_slot(skipping, Progress(T0 + 7, 1), T0 + 100) == T0 + 98


def test_a_trigger_with_neither_schedule_fires_once_at_creation() -> None:
    once = Trigger(kind="", created_at=T0)
    assert next_slot(once, Progress(), T0) == T0
    assert next_slot(once, Progress(), T0 + 500) == T0
    assert next_slot(once, Progress(T0, 1), T0 + 500) is None


def test_a_cron_without_future_matches_never_fires() -> None:
    assert next_slot(cron("0 0 0 30 2 *"), Progress(), T0) is None  # February 30th
