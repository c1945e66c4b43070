"""The step dispatch table (`StepDispatch`): steps sent to remote workers. Every state change is a
conditional UPDATE on (key, token, state), so a driver and any number of workers racing over one dispatch
cannot both win: a step is taken once, finished once, and a stale message finds nothing to take."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kfp_backend.store.models import StepDispatch

QUEUED, RUNNING, FINISHED, COLLECTED = "queued", "running", "finished", "collected"


@dataclass(frozen=True)
class Dispatch:
    key: str
    token: str
    state: str
    worker: str
    heartbeat_at_ms: int | None
    terminate: bool
    result: str
    queue: str = ""


_COLUMNS = (StepDispatch.key, StepDispatch.token, StepDispatch.state, StepDispatch.worker,
            StepDispatch.heartbeat_at_ms, StepDispatch.terminate, StepDispatch.result, StepDispatch.queue)


def _dispatch(row: object) -> Dispatch:
    key, token, state, worker, heartbeat, terminate, result, queue = row  # type: ignore[misc]
    return Dispatch(key, token, state, worker, heartbeat, bool(terminate), result or "", queue or "")


def get(session: Session, keys: Iterable[str]) -> dict[str, Dispatch]:
    keys = list(keys)
    found: dict[str, Dispatch] = {}
    for start in range(0, len(keys), 500):
        for row in session.execute(select(*_COLUMNS).where(StepDispatch.key.in_(keys[start : start + 500]))):
            found[row[0]] = _dispatch(row)
    return found


class KeyTaken(Exception):
    """`insert_new`: the key already has a dispatch (nothing was inserted)."""


def insert_new(session: Session, row: tuple[str, str, str, str, str], now_ms: int) -> dict[str, Dispatch]:
    """`dispatch` of one key that has no dispatch yet (the common case): one INSERT, no read first. Raises
    KeyTaken when the key has one (then `dispatch` sorts it out)."""
    try:
        return _insert(session, [row], now_ms)
    except IntegrityError as exc:
        if get(session, [row[0]]):
            raise KeyTaken from exc
        raise  # not the key taken: the run is gone, say


def _insert(session: Session, rows: list[tuple[str, str, str, str, str]], now_ms: int) -> dict[str, Dispatch]:
    if rows:  # one executemany, without the ORM's unit of work (a dispatch is on every step's path)
        session.execute(insert(StepDispatch), [
            {"key": key, "run_id": run_id, "token": token, "state": QUEUED, "queue": queue, "spec": spec, "worker": "",
             "created_at_ms": now_ms, "heartbeat_at_ms": None, "terminate": False, "result": ""}
            for key, run_id, token, queue, spec in rows
        ])
    return {key: Dispatch(key, token, QUEUED, "", None, False, "", queue) for key, _, token, queue, _ in rows}


def dispatch(session: Session, rows: list[tuple[str, str, str, str, str]], now_ms: int) -> dict[str, Dispatch]:
    """Record (key, run id, token, queue, spec JSON) dispatches. A key whose earlier dispatch was not collected
    keeps it (it is returned, to be taken back); a collected one (a run retried) is replaced. Returns the
    dispatch that stands for each key."""
    existing = get(session, [row[0] for row in rows])
    replaced = [key for key, found in existing.items() if found.state == COLLECTED]
    if replaced:
        session.execute(delete(StepDispatch).where(StepDispatch.key.in_(replaced)))
    kept = {key: found for key, found in existing.items() if found.state != COLLECTED}
    return {**_insert(session, [row for row in rows if row[0] not in kept], now_ms), **kept}


def take(session: Session, key: str, token: str, worker: str, now_ms: int) -> str | None:
    """A worker takes a queued dispatch: its spec JSON, or None (taken, finished, terminated, or stale)."""
    statement = (
        update(StepDispatch)
        .where(StepDispatch.key == key, StepDispatch.token == token, StepDispatch.state == QUEUED,
               StepDispatch.terminate.is_(False))
        .values(state=RUNNING, worker=worker, heartbeat_at_ms=now_ms)
    )
    if session.get_bind().dialect.update_returning:  # PostgreSQL, SQLite: one statement
        return session.execute(statement.returning(StepDispatch.spec)).scalar_one_or_none()
    if session.execute(statement).rowcount != 1:
        return None
    return session.execute(select(StepDispatch.spec).where(StepDispatch.key == key)).scalar_one()


def beat(session: Session, held: Iterable[tuple[str, str]], worker: str, now_ms: int) -> dict[str, bool]:
    """A worker renews the dispatches it runs; key -> its terminate flag, for those still its own."""
    held = list(held)
    for key, token in held:
        session.execute(
            update(StepDispatch)
            .where(StepDispatch.key == key, StepDispatch.token == token, StepDispatch.state == RUNNING,
                   StepDispatch.worker == worker)
            .values(heartbeat_at_ms=now_ms)
        )
    tokens = dict(held)
    return {d.key: d.terminate for d in get(session, tokens).values()
            if d.token == tokens[d.key] and d.state == RUNNING and d.worker == worker}


def finish(session: Session, key: str, token: str, worker: str, result: str) -> bool:
    """The worker's result; False when the dispatch is no longer its own (declared lost meanwhile)."""
    return session.execute(
        update(StepDispatch)
        .where(StepDispatch.key == key, StepDispatch.token == token, StepDispatch.state == RUNNING,
               StepDispatch.worker == worker)
        .values(state=FINISHED, result=result)
    ).rowcount == 1


def end_queued(session: Session, key: str, token: str, result: str) -> bool:
    """Finish a dispatch no worker has taken (terminated before it started)."""
    return session.execute(
        update(StepDispatch)
        .where(StepDispatch.key == key, StepDispatch.token == token, StepDispatch.state == QUEUED)
        .values(state=FINISHED, result=result)
    ).rowcount == 1


def request_terminate(session: Session, key: str, token: str) -> None:
    session.execute(update(StepDispatch).where(StepDispatch.key == key, StepDispatch.token == token)
                    .values(terminate=True))


def declare_lost(session: Session, key: str, token: str, stale_before_ms: int, result: str) -> bool:
    """Finish a running dispatch whose worker stopped beating before `stale_before_ms`."""
    return session.execute(
        update(StepDispatch)
        .where(StepDispatch.key == key, StepDispatch.token == token, StepDispatch.state == RUNNING,
               StepDispatch.heartbeat_at_ms < stale_before_ms)
        .values(state=FINISHED, result=result)
    ).rowcount == 1


def collected(session: Session, marks: Iterable[tuple[str, str]]) -> None:
    """The driver has taken the results of these (key, token) dispatches (one executemany)."""
    params = [{"k": key, "t": token} for key, token in marks]
    if params:
        session.execute(
            update(StepDispatch.__table__)
            .where(StepDispatch.__table__.c.key == bindparam("k"), StepDispatch.__table__.c.token == bindparam("t"),
                   StepDispatch.__table__.c.state == FINISHED)
            .values(state=COLLECTED),
            params,
        )
