"""KFP's cron schedules: robfig/cron v1.2.0 `Parse` and `Next`, in UTC (the syntax: docs/scheduling.md).

    parse_cron("0 30 9 * * MON-FRI").next_after(t)  # the first 09:30:00 UTC on a weekday after t
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = ["CronError", "CronSchedule", "cron_error", "parse_cron"]

_STAR_BIT = 1 << 63
_MONTH_NAMES = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_DAY_NAMES = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
# Nothing later than this many years after the start matches: robfig's Next returns the zero time.
_YEARS_SEARCHED = 5
_EVERY = "@every "
_NANOS_PER_SECOND = 10**9
_DURATION_UNITS = {
    "ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


class CronError(ValueError):
    """A schedule robfig/cron would refuse; the message is robfig's."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


_SECONDS = _Bounds(0, 59)
_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DAYS_OF_MONTH = _Bounds(1, 31)
_MONTHS = _Bounds(1, 12, _MONTH_NAMES)
_DAYS_OF_WEEK = _Bounds(0, 6, _DAY_NAMES)


class CronSchedule:
    """A parsed schedule. `text` is the spec it came from."""

    text: str

    def next_after(self, epoch_seconds: int) -> int | None:
        """The first fire time strictly after `epoch_seconds` (UTC, whole seconds), or None if there is none."""
        raise NotImplementedError


@dataclass(frozen=True)
class _FieldSchedule(CronSchedule):
    """robfig's SpecSchedule: one bit set per allowed value of each field (bit 63: the field was `*`/`?`)."""

    text: str
    second: int
    minute: int
    hour: int
    day_of_month: int
    month: int
    day_of_week: int

    def next_after(self, epoch_seconds: int) -> int | None:
        # robfig's Next, step by step: start at the next whole second, then find the first month, day,
        # hour, minute and second that match, resetting the smaller units the first time one moves; a
        # unit that wraps round starts the search again from the month.
        try:
            moment = datetime.fromtimestamp(epoch_seconds + 1, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
        year_limit = moment.year + _YEARS_SEARCHED
        if year_limit > datetime.max.year - 1:
            return None
        moved = False
        while moment.year <= year_limit:
            wrapped = False
            for unit in _UNITS:
                while not wrapped and not unit.matches(self, moment):
                    if not moved:
                        moved = True
                        moment = unit.reset(moment)
                    moment = unit.advance(moment)
                    wrapped = unit.wrapped(moment)
                if wrapped:
                    break
            if not wrapped:
                return int(moment.timestamp())
        return None

    def _day_matches(self, moment: datetime) -> bool:
        dom = bool(self.day_of_month >> moment.day & 1)
        dow = bool(self.day_of_week >> (moment.isoweekday() % 7) & 1)
        if self.day_of_month & _STAR_BIT or self.day_of_week & _STAR_BIT:
            return dom and dow
        return dom or dow


@dataclass(frozen=True)
class _EverySchedule(CronSchedule):
    """`@every <duration>`: a constant delay after the previous fire."""

    text: str
    delay_seconds: int

    def next_after(self, epoch_seconds: int) -> int | None:
        return epoch_seconds + self.delay_seconds


@dataclass(frozen=True)
class _Unit:
    """A unit Next moves through: whether the moment's value of it matches, what moving it first resets
    (the smaller units), one step forward, and whether that step wrapped into the next larger unit."""

    matches: Callable[[_FieldSchedule, datetime], bool]
    reset: Callable[[datetime], datetime]
    advance: Callable[[datetime], datetime]
    wrapped: Callable[[datetime], bool]


_UNITS = (
    _Unit(lambda s, m: bool(s.month >> m.month & 1), lambda m: m.replace(day=1, hour=0, minute=0, second=0),
          lambda m: _first_of_next_month(m), lambda m: m.month == 1),
    _Unit(lambda s, m: s._day_matches(m), lambda m: m.replace(hour=0, minute=0, second=0),
          lambda m: m + timedelta(days=1), lambda m: m.day == 1),
    _Unit(lambda s, m: bool(s.hour >> m.hour & 1), lambda m: m.replace(minute=0, second=0),
          lambda m: m + timedelta(hours=1), lambda m: m.hour == 0),
    _Unit(lambda s, m: bool(s.minute >> m.minute & 1), lambda m: m.replace(second=0),
          lambda m: m + timedelta(minutes=1), lambda m: m.minute == 0),
    _Unit(lambda s, m: bool(s.second >> m.second & 1), lambda m: m,
          lambda m: m + timedelta(seconds=1), lambda m: m.second == 0),
)


def _first_of_next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1, day=1)
    return moment.replace(month=moment.month + 1, day=1)


def parse_cron(text: str) -> CronSchedule:
    """Parse a schedule as robfig/cron v1.2.0's `cron.Parse` does; CronError carries its message."""
    if not text:
        raise CronError("Empty spec string")
    if text[0] == "@":
        return _parse_descriptor(text)
    fields = text.split()
    if not 5 <= len(fields) <= 6:
        raise CronError(f"Expected 5 to 6 fields, found {len(fields)}: {text}")
    if len(fields) == 5:
        fields.append("*")
    bounds = (_SECONDS, _MINUTES, _HOURS, _DAYS_OF_MONTH, _MONTHS, _DAYS_OF_WEEK)
    second, minute, hour, dom, month, dow = (_field_bits(f, b) for f, b in zip(fields, bounds, strict=True))
    return _FieldSchedule(text, second, minute, hour, dom, month, dow)


def cron_error(text: str) -> str | None:
    """Why `parse_cron` refuses `text` (robfig's message), or None when it parses: the Job API's check,
    handed to services.jobs.JobService by the wiring (app.py, cli.py)."""
    try:
        parse_cron(text)
    except CronError as exc:
        return str(exc)
    return None


def _parse_descriptor(text: str) -> CronSchedule:
    every_day = _all(_DAYS_OF_MONTH)
    every_month = _all(_MONTHS)
    every_weekday = _all(_DAYS_OF_WEEK)
    midnight = (1, 1, 1)  # bit 0: second 0, minute 0, hour 0
    match text:
        case "@yearly" | "@annually":
            return _FieldSchedule(text, *midnight, 1 << 1, 1 << 1, every_weekday)
        case "@monthly":
            return _FieldSchedule(text, *midnight, 1 << 1, every_month, every_weekday)
        case "@weekly":
            return _FieldSchedule(text, *midnight, every_day, every_month, 1 << 0)
        case "@daily" | "@midnight":
            return _FieldSchedule(text, *midnight, every_day, every_month, every_weekday)
        case "@hourly":
            return _FieldSchedule(text, 1, 1, _all(_HOURS), every_day, every_month, every_weekday)
    if text.startswith(_EVERY):
        try:
            nanoseconds = parse_go_duration(text[len(_EVERY):])
        except ValueError as exc:
            raise CronError(f"Failed to parse duration {text}: {exc}") from None
        # Shorter than a second becomes a second; fractions of a second are dropped.
        return _EverySchedule(text, max(nanoseconds, _NANOS_PER_SECOND) // _NANOS_PER_SECOND)
    raise CronError(f"Unrecognized descriptor: {text}")


def _all(bounds: _Bounds) -> int:
    return _bits(bounds.low, bounds.high, 1) | _STAR_BIT


def _bits(low: int, high: int, step: int) -> int:
    value = 0
    for position in range(low, high + 1, step):
        value |= 1 << position
    return value


def _field_bits(field: str, bounds: _Bounds) -> int:
    value = 0
    for part in field.split(","):
        if part:  # Go's strings.FieldsFunc drops empty parts: "1,,2" is "1,2"
            value |= _range_bits(part, bounds)
    return value


def _range_bits(expression: str, bounds: _Bounds) -> int:
    range_and_step = expression.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = bounds.low, bounds.high, _STAR_BIT
    else:
        start = _int_or_name(low_and_high[0], bounds.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds.names)
        else:
            raise CronError(f"Too many hyphens: {expression}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _non_negative_int(range_and_step[1])
        if single:  # "N/step" means "N-max/step"
            end = bounds.high
    else:
        raise CronError(f"Too many slashes: {expression}")
    if start < bounds.low:
        raise CronError(f"Beginning of range ({start}) below minimum ({bounds.low}): {expression}")
    if end > bounds.high:
        raise CronError(f"End of range ({end}) above maximum ({bounds.high}): {expression}")
    if start > end:
        raise CronError(f"Beginning of range ({start}) beyond end of range ({end}): {expression}")
    if step == 0:
        raise CronError(f"Step of range should be a positive number: {expression}")
    return _bits(start, end, step) | extra


def _int_or_name(text: str, names: dict[str, int] | None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    return _non_negative_int(text)


def _non_negative_int(text: str) -> int:
    """Go's strconv.Atoi (ASCII digits, an optional sign), then robfig's refusal of negative numbers."""
    if not _DECIMAL.fullmatch(text):
        raise CronError(f'Failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    number = int(text)
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise CronError(f'Failed to parse int from {text}: strconv.Atoi: parsing "{text}": value out of range')
    if number < 0:
        raise CronError(f"Negative number ({number}) not allowed: {text}")
    return number


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds: `[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`, or just "0"."""
    original = text
    invalid = ValueError(f'time: invalid duration "{original}"')
    negative = False
    if text and text[0] in "+-":
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise invalid
    total = 0
    while text:
        if text[0] not in ".0123456789":
            raise invalid
        digits = len(text) - len(text.lstrip("0123456789"))
        whole_text, text = text[:digits], text[digits:]
        whole = int(whole_text) if whole_text else 0
        if whole > 2**63:
            raise invalid
        fraction_text = ""
        has_fraction = False
        if text.startswith("."):
            text = text[1:]
            digits = len(text) - len(text.lstrip("0123456789"))
            fraction_text, text = text[:digits], text[digits:]
            has_fraction = bool(fraction_text)
        if not whole_text and not has_fraction:
            raise invalid
        unit_length = 0
        while unit_length < len(text) and not (text[unit_length] == "." or text[unit_length] in "0123456789"):
            unit_length += 1
        if unit_length == 0:
            raise ValueError(f'time: missing unit in duration "{original}"')
        unit_text, text = text[:unit_length], text[unit_length:]
        unit = _DURATION_UNITS.get(unit_text)
        if unit is None:
            raise ValueError(f'time: unknown unit "{unit_text}" in duration "{original}"')
        if whole > 2**63 // unit:
            raise invalid
        value = whole * unit
        if fraction_text:
            value += int(int(fraction_text) * unit / 10 ** len(fraction_text))
            if value > 2**63:
                raise invalid
        total += value
        if total > 2**63:
            raise invalid
    if negative:
        return -total
    if total > _INT64_MAX:
        raise invalid
    return total
