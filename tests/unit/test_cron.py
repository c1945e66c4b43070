"""KFP's cron (robfig/cron v1.2.0 Parse/Next): fields, names, steps, descriptors, errors, next times."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from croniter import croniter

from kfp_backend.scheduler.cron import CronError, parse_cron, parse_go_duration


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def fires(spec: str, start: str, count: int = 3) -> list[str | None]:
    schedule = parse_cron(spec)
    moment: int | None = at(start)
    found = []
    for _ in range(count):
        assert moment is not None
        moment = schedule.next_after(moment)
        found.append(iso(moment))
        if moment is None:
            break
    return found


# A Wednesday.
START = "2024-05-01T10:17:03"


@pytest.mark.parametrize(("spec", "expected"), [
    # Seconds first: five fields mean "second minute hour dom month", i.e. every hour at :00:00.
    ("0 0 * * *", ["2024-05-01T11:00:00", "2024-05-01T12:00:00", "2024-05-01T13:00:00"]),
    ("0 */5 * * * *", ["2024-05-01T10:20:00", "2024-05-01T10:25:00", "2024-05-01T10:30:00"]),
    ("0 30 9 * * 1-5", ["2024-05-02T09:30:00", "2024-05-03T09:30:00", "2024-05-06T09:30:00"]),
    ("*/10 * * * * *", ["2024-05-01T10:17:10", "2024-05-01T10:17:20", "2024-05-01T10:17:30"]),
    ("0 0 * * * *", ["2024-05-01T11:00:00", "2024-05-01T12:00:00", "2024-05-01T13:00:00"]),
    # The upstream integration test's cron.
    ("0 * * * * ?", ["2024-05-01T10:18:00", "2024-05-01T10:19:00", "2024-05-01T10:20:00"]),
    # Lists, ranges with steps, "a/n" = "a-max/n".
    ("5,35 0 12 * * *", ["2024-05-01T12:00:05", "2024-05-01T12:00:35", "2024-05-02T12:00:05"]),
    ("0 10-20/5 10 * * *", ["2024-05-01T10:20:00", "2024-05-02T10:10:00", "2024-05-02T10:15:00"]),
    ("0 50/4 10 * * *", ["2024-05-01T10:50:00", "2024-05-01T10:54:00", "2024-05-01T10:58:00"]),
    # Names in any case, `?` as `*`.
    ("0 0 6 ? jan,Jul SUN", ["2024-07-07T06:00:00", "2024-07-14T06:00:00", "2024-07-21T06:00:00"]),
    ("0 0 6 1 FEB-mar ?", ["2025-02-01T06:00:00", "2025-03-01T06:00:00", "2026-02-01T06:00:00"]),
    ("0 0 0 ? * 0,sAt", ["2024-05-04T00:00:00", "2024-05-05T00:00:00", "2024-05-11T00:00:00"]),
    # Day of month and day of week both restricted: either matches (the 13th OR a Friday).
    ("0 0 0 13 * 5", ["2024-05-03T00:00:00", "2024-05-10T00:00:00", "2024-05-13T00:00:00"]),
    ("0 0 0 1 * MON", ["2024-05-06T00:00:00", "2024-05-13T00:00:00", "2024-05-20T00:00:00"]),
    # Only one restricted: that one decides.
    ("0 0 0 * * 5", ["2024-05-03T00:00:00", "2024-05-10T00:00:00", "2024-05-17T00:00:00"]),
    ("0 0 0 13 * *", ["2024-05-13T00:00:00", "2024-06-13T00:00:00", "2024-07-13T00:00:00"]),
    # robfig: a range starting with `*` counts as unrestricted even with a step, so both must match here
    # (odd days that are Mondays).
    ("0 0 0 */2 * mon", ["2024-05-13T00:00:00", "2024-05-27T00:00:00", "2024-06-03T00:00:00"]),
    # Month and year wraps, leap day.
    ("0 0 0 29 2 *", ["2028-02-29T00:00:00", "2032-02-29T00:00:00", "2036-02-29T00:00:00"]),
    ("59 59 23 31 12 *", ["2024-12-31T23:59:59", "2025-12-31T23:59:59", "2026-12-31T23:59:59"]),
    # Never within five years: robfig gives up (zero time).
    ("0 0 0 30 2 *", [None]),
    # Descriptors.
    ("@yearly", ["2025-01-01T00:00:00", "2026-01-01T00:00:00", "2027-01-01T00:00:00"]),
    ("@annually", ["2025-01-01T00:00:00", "2026-01-01T00:00:00", "2027-01-01T00:00:00"]),
    ("@monthly", ["2024-06-01T00:00:00", "2024-07-01T00:00:00", "2024-08-01T00:00:00"]),
    ("@weekly", ["2024-05-05T00:00:00", "2024-05-12T00:00:00", "2024-05-19T00:00:00"]),
    ("@daily", ["2024-05-02T00:00:00", "2024-05-03T00:00:00", "2024-05-04T00:00:00"]),
    ("@midnight", ["2024-05-02T00:00:00", "2024-05-03T00:00:00", "2024-05-04T00:00:00"]),
    ("@hourly", ["2024-05-01T11:00:00", "2024-05-01T12:00:00", "2024-05-01T13:00:00"]),
    # @every: the previous time plus the duration; sub-second durations become one second.
    ("@every 1h30m", ["2024-05-01T11:47:03", "2024-05-01T13:17:03", "2024-05-01T14:47:03"]),
    ("@every 5s", ["2024-05-01T10:17:08", "2024-05-01T10:17:13", "2024-05-01T10:17:18"]),
    ("@every 500ms", ["2024-05-01T10:17:04", "2024-05-01T10:17:05", "2024-05-01T10:17:06"]),
    ("@every 1.9s", ["2024-05-01T10:17:04", "2024-05-01T10:17:05", "2024-05-01T10:17:06"]),
    ("@every -1h", ["2024-05-01T10:17:04", "2024-05-01T10:17:05", "2024-05-01T10:17:06"]),
    ("@every 0", ["2024-05-01T10:17:04", "2024-05-01T10:17:05", "2024-05-01T10:17:06"]),
    # Whitespace between fields, empty list items (Go's FieldsFunc drops them), "*-5" is "*".
    ("  0\t0  *  * *  ", ["2024-05-01T11:00:00", "2024-05-01T12:00:00", "2024-05-01T13:00:00"]),
    ("0 0,,30, 11 * * *", ["2024-05-01T11:00:00", "2024-05-01T11:30:00", "2024-05-02T11:00:00"]),
    ("0 0 *-5 * * *", ["2024-05-01T11:00:00", "2024-05-01T12:00:00", "2024-05-01T13:00:00"]),
    ("0 +5 * * * *", ["2024-05-01T11:05:00", "2024-05-01T12:05:00", "2024-05-01T13:05:00"]),
])
def test_fire_times(spec: str, expected: list[str | None]) -> None:
    assert fires(spec, START, len(expected)) == expected


def test_next_is_strictly_after() -> None:
    schedule = parse_cron("0 0 * * * *")
    assert iso(schedule.next_after(at("2024-05-01T10:00:00"))) == "2024-05-01T11:00:00"
    assert iso(schedule.next_after(at("2024-05-01T09:59:59"))) == "2024-05-01T10:00:00"
    assert parse_cron("@every 10s").next_after(100) == 110
    assert parse_cron("* * * * * *").next_after(100) == 101


def test_schedules_keep_their_text() -> None:
    assert parse_cron("0 0 * * * *").text == "0 0 * * * *"
    assert parse_cron("@every 1m").text == "@every 1m"


@pytest.mark.parametrize(("spec", "message"), [
    ("", "Empty spec string"),
    ("* * * *", "Expected 5 to 6 fields, found 4: * * * *"),
    ("* * * * * * *", "Expected 5 to 6 fields, found 7: * * * * * * *"),
    ("   ", "Expected 5 to 6 fields, found 0:    "),
    ("0 0 0 * * 7", "End of range (7) above maximum (6): 7"),
    ("0 0 0 * * 1-7", "End of range (7) above maximum (6): 1-7"),
    ("60 * * * * *", "End of range (60) above maximum (59): 60"),
    ("* * 24 * * *", "End of range (24) above maximum (23): 24"),
    ("* * * 0 * *", "Beginning of range (0) below minimum (1): 0"),
    ("* * * 32 * *", "End of range (32) above maximum (31): 32"),
    ("* * * * 13 *", "End of range (13) above maximum (12): 13"),
    ("* * * * 0 *", "Beginning of range (0) below minimum (1): 0"),
    ("* 30-10 * * * *", "Beginning of range (30) beyond end of range (10): 30-10"),
    ("* * * * * SAT-SUN", "Beginning of range (6) beyond end of range (0): SAT-SUN"),
    ("1-2-3 * * * * *", "Too many hyphens: 1-2-3"),
    ("*/2/3 * * * * *", "Too many slashes: */2/3"),
    ("*/0 * * * * *", "Step of range should be a positive number: */0"),
    ("a * * * * *", 'Failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax'),
    ("* * * * * MONDAY", 'Failed to parse int from MONDAY: strconv.Atoi: parsing "MONDAY": invalid syntax'),
    ("JAN * * * * *", 'Failed to parse int from JAN: strconv.Atoi: parsing "JAN": invalid syntax'),
    ("*/MON * * * * *", 'Failed to parse int from MON: strconv.Atoi: parsing "MON": invalid syntax'),
    ("1.5 * * * * *", 'Failed to parse int from 1.5: strconv.Atoi: parsing "1.5": invalid syntax'),
    ("\u0665 * * * * *", 'Failed to parse int from \u0665: strconv.Atoi: parsing "\u0665": invalid syntax'),
    ("-1 * * * * *", 'Failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
    ("@reboot", "Unrecognized descriptor: @reboot"),
    ("@DAILY", "Unrecognized descriptor: @DAILY"),
    ("@daily ", "Unrecognized descriptor: @daily "),
    ("@every", "Unrecognized descriptor: @every"),
    ("@every1h", "Unrecognized descriptor: @every1h"),
    ("@every ", 'Failed to parse duration @every : time: invalid duration ""'),
    ("@every 1x", 'Failed to parse duration @every 1x: time: unknown unit "x" in duration "1x"'),
    ("@every 1", 'Failed to parse duration @every 1: time: missing unit in duration "1"'),
    ("@every 1d", 'Failed to parse duration @every 1d: time: unknown unit "d" in duration "1d"'),
    ("@every h", 'Failed to parse duration @every h: time: invalid duration "h"'),
    ("@every  1h", 'Failed to parse duration @every  1h: time: invalid duration " 1h"'),
])
def test_invalid_specs(spec: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(spec)
    assert str(caught.value) == message


@pytest.mark.parametrize(("text", "nanoseconds"), [
    ("0", 0), ("1s", 10**9), ("1h30m", 5400 * 10**9), ("1.5h", 5400 * 10**9), ("-2m", -120 * 10**9),
    ("+3ms", 3 * 10**6), ("1us", 1000), ("1\u00b5s", 1000), ("2\u03bcs", 2000), ("7ns", 7), (".5s", 5 * 10**8),
    ("1h1m1s1ms", 3661001 * 10**6), ("2562047h", 2562047 * 3600 * 10**9),
])
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "-", ".s", "1", "s", "3000000h", "1e3s", "1 s"])
def test_invalid_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


def _random_field(rng: random.Random, low: int, high: int) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        a = rng.randint(low, high)
        if kind < 0.4 or a == high:
            parts.append(str(a))
        else:
            # croniter misreads one-value ranges ("5-5"): only proper ones here.
            b = rng.randint(a + 1, high)
            parts.append(f"{a}-{b}" if kind < 0.7 else f"{a}-{b}/{rng.randint(1, 4)}")
    return ",".join(parts)


def test_agrees_with_croniter_on_plain_fields() -> None:
    """Where robfig and croniter mean the same thing (no `*` with a step in the day fields), they agree."""
    rng = random.Random(20240501)
    for _ in range(300):
        fields = [
            _random_field(rng, 0, 59) if rng.random() < 0.7 else "*",
            _random_field(rng, 0, 59) if rng.random() < 0.5 else "*",
            _random_field(rng, 0, 23) if rng.random() < 0.5 else "*",
            _random_field(rng, 1, 28) if rng.random() < 0.4 else "*",
            _random_field(rng, 1, 12) if rng.random() < 0.3 else "*",
            _random_field(rng, 0, 6) if rng.random() < 0.4 else "*",
        ]
        spec = " ".join(fields)
        start = rng.randint(at("2020-01-01T00:00:00"), at("2030-01-01T00:00:00"))
        ours = parse_cron(spec)
        theirs = croniter(spec, datetime.fromtimestamp(start, timezone.utc), second_at_beginning=True)
        moment = start
        for _ in range(5):
            moment_next = ours.next_after(moment)
            expected = int(theirs.get_next(datetime).timestamp())
            assert moment_next == expected, (spec, iso(moment))
            moment = moment_next
