"""One active scheduler: the holder of the `scheduler` row in scheduler_leases, renewed on a heartbeat
and taken over by a standby once it expires. See docs/scheduling.md ("One active scheduler").
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from kfp_backend.services.schedule_state import ScheduleStateService

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"


def default_holder() -> str:
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(
        self,
        state: ScheduleStateService,
        *,
        ttl_seconds: float,
        holder: str | None = None,
        name: str = LEASE_NAME,
        clock_ms: Callable[[], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state
        self.ttl_seconds = ttl_seconds
        self.holder = holder or default_holder()
        self.name = name
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._monotonic = monotonic
        self._valid_until = 0.0  # monotonic seconds
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Take or renew the lease; True while this process is the active scheduler."""
        started = self._monotonic()
        now_ms = self._clock_ms()
        try:
            taken = self._state.take_lease(
                self.name, self.holder, now_ms=now_ms, expires_at_ms=now_ms + int(self.ttl_seconds * 1000)
            )
        except Exception:
            log.exception("scheduler lease: the database did not answer")
            taken = False
        with self._lock:
            was_held = self._valid_until > self._monotonic()
            # Counted from before the write: the row says at least this long.
            self._valid_until = started + self.ttl_seconds * 0.8 if taken else 0.0
        if taken and not was_held:
            log.info("scheduler lease taken by %s: this scheduler is active", self.holder)
        elif was_held and not taken:
            log.warning("scheduler lease lost by %s: standing by", self.holder)
        return taken

    def held(self) -> bool:
        with self._lock:
            return self._valid_until > self._monotonic()

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait for it to expire."""
        with self._lock:
            was_held = self._valid_until > self._monotonic()
            self._valid_until = 0.0
        if not was_held:
            return
        try:
            self._state.release_lease(self.name, self.holder)
            log.info("scheduler lease released by %s", self.holder)
        except Exception:
            log.exception("scheduler lease: could not release")
