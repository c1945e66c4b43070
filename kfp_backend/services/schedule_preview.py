"""The next fire times of a recurring run not saved yet (the web UI shows them before saving).

The times come from the scheduler's own walk (`scheduler.triggers.upcoming_slots`), handed in by the wiring
as the Job API's cron check is: services import nothing of the scheduler."""

from __future__ import annotations

from collections.abc import Callable

from kfp_backend.services.clock import now_seconds
from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.jobs import TRIGGER_CRON, TRIGGER_PERIODIC, CronCheck, NewTrigger

# (trigger, now, how many) -> the scheduled times, in order.
UpcomingSlots = Callable[[NewTrigger, int, int], list[int]]
MAX_PREVIEW = 20


class SchedulePreview:
    def __init__(self, cron_check: CronCheck, upcoming: UpcomingSlots) -> None:
        self._cron_check = cron_check
        self._upcoming = upcoming

    def next_fire_times(self, trigger: NewTrigger, count: int = 5, now: int | None = None) -> list[int]:
        """InvalidArgument (the Job API's message) for a schedule CreateJob would refuse."""
        if trigger.kind == TRIGGER_CRON:
            error = self._cron_check(trigger.cron)
            if error is not None:
                raise InvalidArgument(f"The cron schedule {trigger.cron!r} is invalid: {error}")
        elif trigger.kind == TRIGGER_PERIODIC:
            if trigger.interval_seconds <= 0:
                raise InvalidArgument("The interval of a periodic schedule must be a positive number of seconds.")
        else:
            raise InvalidArgument("Choose a cron or a periodic schedule.")
        return self._upcoming(trigger, now_seconds() if now is None else now, max(1, min(count, MAX_PREVIEW)))
