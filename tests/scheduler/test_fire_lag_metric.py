"""The scheduler's fire lag metric: a fired slot is observed as the time from the slot to its run's creation,
and GET /metrics shows it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prometheus_client import REGISTRY

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.scheduler.firing import JobFiring
from kfp_backend.services.schedule_state import ScheduleStateService
from kfp_backend.store.db import Database
from tests.api.test_prometheus import scrape, value
from tests.scheduler.helpers import FakeClock, add_job

T0 = int(datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp())
LAG = "kfp_backend_scheduler_fire_lag_seconds"


def _lag() -> tuple[float, float]:
    return REGISTRY.get_sample_value(LAG + "_count") or 0.0, REGISTRY.get_sample_value(LAG + "_sum") or 0.0


def test_a_fired_slot_observes_its_lag(db: Database, manifest: str) -> None:
    add_job(db, manifest, interval=10, created_at=T0, no_catchup=True, max_concurrency=10)
    clock = FakeClock(T0)
    clock.ms = (T0 + 10) * 1000 + 750  # the slot at T0 + 10, fired 0.75 s late
    count, total = _lag()
    fired = JobFiring(ScheduleStateService(db), Settings(), clock_ms=clock).fire_due(clock()).fired
    assert [f.scheduled_at for f in fired] == [T0 + 10]
    new_count, new_total = _lag()
    assert new_count == count + 1
    assert abs(new_total - total - 0.75) < 1e-6


def test_metrics_show_the_fire_lag(db_url: str, db: Database, manifest: str, tmp_path: Path) -> None:
    app = create_app(Settings(database_url=db_url, data_dir=tmp_path / "data", executor_enabled=False,
                              scheduler_enabled=False))
    try:
        client = app.test_client()
        before = value(scrape(client), LAG + "_count")
        add_job(db, manifest, interval=10, created_at=T0, no_catchup=True, max_concurrency=10)
        clock = FakeClock(T0 + 10)
        assert JobFiring(ScheduleStateService(db), Settings(), clock_ms=clock).fire_due(clock()).fired
        assert value(scrape(client), LAG + "_count") == before + 1
        assert value(scrape(client), "kfp_backend_runs", state="Pending") >= 1
    finally:
        shutdown(app)
