"""When a job fires next: the rules of KFP's ScheduledWorkflow controller, as pure functions of the
job's trigger, its progress (the scheduled time and index of its last run) and the time now, in whole
Unix seconds (the rules: docs/scheduling.md, "When a job fires next").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

TRIGGER_CRON = "cron"
TRIGGER_PERIODIC = "periodic"
TRIGGER_ONCE = ""


class CronLike(Protocol):
    def next_after(self, epoch_seconds: int) -> int | None: ...


@dataclass(frozen=True)
class Trigger:
    kind: str = TRIGGER_ONCE  # "cron", "periodic" or "" (fires once at creation)
    cron: str = ""
    interval_seconds: int = 0
    start_time: int = 0  # 0: not set
    end_time: int = 0  # 0: not set
    no_catchup: bool = False
    created_at: int = 0

    @classmethod
    def of_job(cls, job: Any) -> Trigger:
        """The trigger of a `store.models.Job` row (or anything with the same attributes)."""
        return cls(
            kind=job.trigger_kind or TRIGGER_ONCE,
            cron=job.cron or "",
            interval_seconds=int(job.interval_seconds or 0),
            start_time=int(job.start_time or 0),
            end_time=int(job.end_time or 0),
            no_catchup=bool(job.no_catchup),
            created_at=int(job.created_at or 0),
        )


@dataclass(frozen=True)
class Progress:
    """What the job has fired so far: index 0 means never."""

    last_scheduled_at: int = 0
    last_index: int = 0

    @property
    def fired(self) -> bool:
        return self.last_index > 0


CronParser = Callable[[str], CronLike]


@lru_cache(maxsize=4096)
def _parse_cron(text: str) -> CronLike:
    from kfp_backend.scheduler.cron import parse_cron  # the Job API's parser: one cron implementation

    return parse_cron(text)


def next_slot(trigger: Trigger, progress: Progress, now: int, *, cron_parser: CronParser | None = None) -> int | None:
    """The scheduled time of the job's next run (it is due when <= now), or None if it never fires again.

    Raises whatever the cron parser raises for a cron the job should never have been created with.
    """
    if trigger.kind == TRIGGER_CRON:
        schedule = (cron_parser or _parse_cron)(trigger.cron)
        slot = _next_cron(trigger, progress, now, schedule)
    elif trigger.kind == TRIGGER_PERIODIC:
        slot = _next_periodic(trigger, progress, now)
    else:
        slot = None if progress.fired else trigger.created_at
    if slot is None or (trigger.end_time and slot > trigger.end_time):
        return None
    return slot


def _base(trigger: Trigger, progress: Progress) -> int:
    if progress.fired:
        return progress.last_scheduled_at
    # Upstream's "effective last run" of a job that never fired: the start time, when there is one.
    return trigger.start_time or trigger.created_at


def _next_cron(trigger: Trigger, progress: Progress, now: int, schedule: CronLike) -> int | None:
    slot = schedule.next_after(max(_base(trigger, progress), trigger.start_time))
    if slot is None or (trigger.end_time and slot > trigger.end_time):
        return None
    if not trigger.no_catchup:
        return slot
    bound = min(now, trigger.end_time) if trigger.end_time else now
    return latest_cron_slot(schedule, slot, bound, constant_delay=trigger.cron.strip().startswith("@every"))


def latest_cron_slot(schedule: CronLike, first: int, bound: int, *, constant_delay: bool = False) -> int:
    """The last time of the chain first, next_after(first), ... that is <= bound (first itself if
    the second is already after bound): upstream's no_catchup walk, without walking a day of
    one-second slots one by one after a long outage."""
    following = schedule.next_after(first)
    if following is None or following > bound:
        return first
    if constant_delay:
        # @every: the chain is first + k * delay.
        delay = following - first
        return first + (bound - first) // delay * delay
    # Grid crons: next_after is a function of time alone, so the chain is every match >= first.
    # Find a window (bound - width, bound] holding a match, doubling the width, then walk it.
    width = 1
    while True:
        start = bound - width
        if start <= first:
            candidate = following
            break
        found = schedule.next_after(start)
        if found is not None and found <= bound:
            candidate = found
            break
        width *= 2
    while True:
        after = schedule.next_after(candidate)
        if after is None or after > bound:
            return max(candidate, first)
        candidate = after


def _next_periodic(trigger: Trigger, progress: Progress, now: int) -> int | None:
    interval = max(1, trigger.interval_seconds)
    slot = max(_base(trigger, progress), trigger.start_time) + interval
    if trigger.end_time and slot > trigger.end_time:
        return None
    if trigger.no_catchup and now >= slot + interval:
        # More than one slot missed: one run now (or at the end time if that has passed).
        slot = trigger.end_time if trigger.end_time and trigger.end_time < now else now
    return slot


def upcoming_slots(trigger: Trigger, now: int, count: int) -> list[int]:
    """The next `count` scheduled times of a job with this trigger created at `now` (fewer when it ends):
    what the web UI shows before a recurring run is saved. The scheduler's own walk, fired in turn."""
    slots: list[int] = []
    progress = Progress()
    while len(slots) < count:
        slot = next_slot(trigger, progress, now)
        if slot is None or (slots and slot <= slots[-1]):
            break
        slots.append(slot)
        progress = Progress(last_scheduled_at=slot, last_index=progress.last_index + 1)
    return slots
