"""The scheduler lease: one holder at a time, renewals, takeover after expiry, release on stop."""

from __future__ import annotations

from kfp_backend.scheduler.lease import Lease
from kfp_backend.services.schedule_state import ScheduleStateService
from kfp_backend.store import scheduler_repo
from kfp_backend.store.db import Database


class Clocks:
    def __init__(self) -> None:
        self.ms = 1_000_000_000

    def wall(self) -> int:
        return self.ms

    def mono(self) -> float:
        return self.ms / 1000


def test_one_holder_renewals_takeover_and_release(db: Database) -> None:
    clocks = Clocks()
    a = Lease(ScheduleStateService(db), ttl_seconds=10, holder="a", clock_ms=clocks.wall, monotonic=clocks.mono)
    b = Lease(ScheduleStateService(db), ttl_seconds=10, holder="b", clock_ms=clocks.wall, monotonic=clocks.mono)
    assert a.refresh() and a.held()
    assert not b.refresh() and not b.held()
    clocks.ms += 5000
    assert a.refresh()  # renewed: expires 10 s from now
    clocks.ms += 7000
    assert not b.refresh()
    assert a.held()
    clocks.ms += 1000
    assert not a.held()  # 8 s without renewal: it stops firing by itself, before the row expires
    assert not b.refresh()
    clocks.ms += 2001  # a died: its lease expired
    assert b.refresh() and b.held()
    assert not a.refresh() and not a.held()
    with db.transaction(write=False) as session:
        lease = scheduler_repo.get_lease(session, "scheduler")
        assert lease is not None and lease.holder == "b"
    b.release()
    assert not b.held()
    assert a.refresh()  # at once, without waiting for the expiry


def test_contenders_at_the_same_moment_get_one_winner(db: Database) -> None:
    import threading

    leases = [Lease(ScheduleStateService(db), ttl_seconds=10, holder=f"h{i}") for i in range(4)]
    results: list[bool] = []
    barrier = threading.Barrier(len(leases))

    def contend(lease: Lease) -> None:
        barrier.wait(10)
        results.append(lease.refresh())

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, False, False, True]
