"""The server's Prometheus metrics: their definitions, and the few helpers the executor, the scheduler and
the API record them with. `GET /metrics` serves them (api/prometheus.py); docs/configuration.md ("Metrics")
lists each one.

Label values are a closed vocabulary (HTTP methods, route templates, status codes, run states), never a
run, job, user or namespace, so the metrics say nothing about any tenant. With PROMETHEUS_MULTIPROC_DIR set
(before this module is imported) prometheus_client keeps the values in files that the scrape of any
process adds up: what several API worker processes need.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import Counter, Gauge, Histogram

# Waits measured in scheduler and executor loops: from milliseconds (a free slot, an idle executor) to
# minutes (a full executor, a catch-up backlog).
_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

HTTP_REQUESTS = Counter(
    "kfp_backend_http_requests", "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "kfp_backend_http_request_duration_seconds",
    "Time from a request's arrival to its response (a streamed body not included), by method and route template.",
    ["method", "route"],
)
STEPS_RUNNING = Gauge(
    "kfp_backend_steps_running", "Steps holding an executor slot: starting or running.", multiprocess_mode="livesum",
)
STEPS_QUEUED = Gauge(
    "kfp_backend_steps_queued", "Steps ready to start but waiting for a free executor slot.",
    multiprocess_mode="livesum",
)
STEP_LAUNCH = Histogram(
    "kfp_backend_step_launch_seconds",
    "Time from a step being ready (its dependencies done) to its process started, slot wait included.",
    buckets=_WAIT_BUCKETS,
)
SCHEDULER_FIRE_LAG = Histogram(
    "kfp_backend_scheduler_fire_lag_seconds",
    "Time from a recurring run's scheduled slot to its run being created.", buckets=_WAIT_BUCKETS,
)
EXECUTOR_CLAIM_LAG = Histogram(
    "kfp_backend_executor_claim_lag_seconds",
    "Time from a run's creation to its first claim by an executor's driver.", buckets=_WAIT_BUCKETS,
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """One answered request; `route` is the matched URL rule's template (None: no route matched)."""
    method = method if method in HTTP_METHODS else "other"  # a client picks the method: keep the set closed
    route = route or UNMATCHED_ROUTE
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_REQUEST_DURATION.labels(method, route).observe(seconds)


def observe_lag(histogram: Histogram, seconds: float) -> None:
    histogram.observe(max(0.0, seconds))


class StepWaits:
    """One run driver's steps between ready and started: the launch latency and the queued gauge.
    Called from the driver's thread only; `close` when the driver ends (its waiting steps leave the gauge)."""

    def __init__(self) -> None:
        self._ready_at: dict[str, float] = {}
        self._queued: set[str] = set()
        self._lock = threading.Lock()  # close() may run on the driver's way out while nothing else does

    def ready(self, name: str) -> None:
        """The step asks for a slot; the first ask of an attempt starts its clock."""
        with self._lock:
            self._ready_at.setdefault(name, time.monotonic())

    def queued(self, name: str) -> None:
        """No slot was free for it."""
        with self._lock:
            if name not in self._queued:
                self._queued.add(name)
                STEPS_QUEUED.inc()

    def slotted(self, name: str) -> None:
        """It got its slot (it leaves the queue)."""
        with self._lock:
            if name in self._queued:
                self._queued.discard(name)
                STEPS_QUEUED.dec()

    def started(self, name: str) -> None:
        with self._lock:
            ready_at = self._ready_at.pop(name, None)
        if ready_at is not None:
            STEP_LAUNCH.observe(time.monotonic() - ready_at)

    def dropped(self, name: str) -> None:
        """It will not start (it could not be prepared or launched)."""
        self.slotted(name)
        with self._lock:
            self._ready_at.pop(name, None)

    def close(self) -> None:
        with self._lock:
            STEPS_QUEUED.dec(len(self._queued))
            self._queued.clear()
            self._ready_at.clear()


class CreationTimes:
    """When runs were created in this process (monotonic), for a precise claim lag when the same process
    claims them; bounded, as another process may claim a run this one created."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._times: dict[str, float] = {}
        self._lock = threading.Lock()

    def created(self, run_id: str) -> None:
        with self._lock:
            if len(self._times) >= self.LIMIT:
                self._times.pop(next(iter(self._times)))  # the oldest
            self._times[run_id] = time.monotonic()

    def claimed(self, run_id: str, created_at_seconds: int, first_claim: bool) -> None:
        """Observe the claim lag of a run's first claim: from this process's own record of its creation, or
        else from the database's creation time (whole seconds)."""
        with self._lock:
            created = self._times.pop(run_id, None)
        if not first_claim:
            return
        if created is not None:
            observe_lag(EXECUTOR_CLAIM_LAG, time.monotonic() - created)
        elif created_at_seconds > 0:
            observe_lag(EXECUTOR_CLAIM_LAG, time.time() - created_at_seconds)
