"""Engine and transaction handling for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Executable, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DataError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.pool import QueuePool, StaticPool

from kfp_backend.store.errors import ValueRefusedError

# session.info keys: the SideReads a read-only session may use, and "this session has written".
SIDE_READS = "kfp_backend.side_reads"
WROTE = "kfp_backend.wrote"


class SideReads:
    """Runs a read-only scalar query on a second pooled connection while the caller keeps working.

    The list engine counts `total_size` this way while its own session fetches the page: both drivers
    release the GIL while the database works (sqlite3 inside sqlite3_step, psycopg and PyMySQL while
    waiting on the socket), so the two statements overlap instead of adding up. At most `slots` run at
    once; when all are busy `submit` returns None and the caller runs the query itself, so a request
    never waits for another request's side query and the pool can always serve the side connections
    (the engine's pool has `slots` connections more than the sessions need).
    """

    def __init__(self, engine: Engine, slots: int) -> None:
        self._engine = engine
        self._size = slots
        self._start()
        _ALL_SIDE_READS.add(self)

    def _start(self) -> None:
        self._slots = threading.BoundedSemaphore(self._size)
        self._workers = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="kfp-side-read")

    def submit(self, statement: Executable) -> Future[Any] | None:
        if not self._slots.acquire(blocking=False):
            return None
        try:
            future = self._workers.submit(self._scalar, statement)
        except RuntimeError:  # shut down
            self._slots.release()
            return None
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def _scalar(self, statement: Executable) -> Any:
        # One statement needs no transaction around it (it reads one snapshot on its own): no BEGIN and
        # ROLLBACK for SQLite to run, no two more round trips on PostgreSQL. (PyMySQL would pay a round
        # trip to switch autocommit on and one to switch it off: MySQL keeps its transaction.)
        with self._engine.connect() as connection:
            dialect = self._engine.dialect.name
            if dialect == "sqlite":
                connection = connection.execution_options(sqlite_begin="")
            elif dialect == "postgresql":
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            return connection.scalar(statement)

    def shutdown(self) -> None:
        self._workers.shutdown(wait=True, cancel_futures=True)


# A forked child (e.g. a pre-loading process manager) has none of its parent's worker threads: start afresh.
_ALL_SIDE_READS: weakref.WeakSet[SideReads] = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: [side_reads._start() for side_reads in list(_ALL_SIDE_READS)])


class Database:
    """Owns the engine; hands out one session per unit of work (a service call)."""

    def __init__(self, url: str, *, pool_size: int = 16) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        # Room for one side read per session (see SideReads) besides the sessions themselves.
        self.engine = _create_engine(url, self.dialect, pool_size * 2)
        self.side_reads = SideReads(self.engine, pool_size) if _side_reads_safe(self.engine) else None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        event.listen(self._sessions, "after_flush", _mark_written)
        event.listen(self._sessions, "do_orm_execute", _mark_written_by_statement)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception.

        A read-only one (`write=False`) may run side reads (see SideReads) as long as it writes nothing:
        a second connection would not see the session's own uncommitted changes.
        """
        session = self._sessions()
        if write and self.dialect == "sqlite":
            # Take the write lock up front: a deferred transaction that upgrades to a writer
            # fails at once with "database is locked" when another writer got there first.
            session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
        if not write and self.side_reads is not None:
            session.info[SIDE_READS] = self.side_reads
        try:
            yield session
            session.commit()
        except DataError as exc:
            session.rollback()
            raise _refused(exc) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def statement(self) -> Iterator[Session]:
        """A session for work whose statements each stand alone (a conditional UPDATE, a read, one INSERT):
        each is atomic on its own and commits by itself, with no transaction around them: no BEGIN and
        COMMIT round trips on PostgreSQL (autocommit), no BEGIN IMMEDIATE and COMMIT on SQLite (a writing
        statement takes the write lock at its start, waiting as a transaction does). MySQL, and SQLite in
        memory (one shared connection), get an ordinary transaction. Statements that must land together
        belong in `transaction`."""
        options = _ONE_STATEMENT_OPTIONS.get(self.dialect) if self.side_reads is not None else None
        if options is None:
            with self.transaction() as session:
                yield session
            return
        with self.engine.connect() as connection:
            session = Session(bind=connection.execution_options(**options), expire_on_commit=False, autoflush=False)
            try:
                yield session
                session.commit()
            except DataError as exc:
                session.rollback()
                raise _refused(exc) from exc
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def dispose(self) -> None:
        if self.side_reads is not None:
            self.side_reads.shutdown()
        self.engine.dispose()


def _refused(exc: DataError) -> ValueRefusedError:
    reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
    return ValueRefusedError(reason)


# How a connection runs statements without a transaction around them (see `Database.statement`).
_ONE_STATEMENT_OPTIONS: dict[str, dict[str, str]] = {"sqlite": {"sqlite_begin": ""},
                                                     "postgresql": {"isolation_level": "AUTOCOMMIT"}}


def side_reads_of(session: Session) -> SideReads | None:
    """The session's SideReads, or None when a second connection would not see what the session sees."""
    side_reads = session.info.get(SIDE_READS)
    if side_reads is None or session.info.get(WROTE) or session.new or session.dirty or session.deleted:
        return None
    return side_reads


def _mark_written(session: Session, _flush_context: Any) -> None:
    session.info[WROTE] = True


def _mark_written_by_statement(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[WROTE] = True


def _side_reads_safe(engine: Engine) -> bool:
    """Only with a pool of distinct connections to one shared database: not SQLite in memory (one
    connection, shared) nor any other single-connection pool."""
    return isinstance(engine.pool, QueuePool) and not (engine.dialect.name == "sqlite" and _in_memory(engine.url))


def _in_memory(url: URL) -> bool:
    database = url.database or ""
    return database in {"", ":memory:"} or database.startswith("file::memory:") or url.query.get("mode") == "memory"


def _create_engine(url: str, dialect: str, pool_size: int) -> Engine:
    if dialect == "sqlite":
        parsed = make_url(url)
        connect_args = {"check_same_thread": False, "timeout": 30}
        if _in_memory(parsed):
            # Every connection to an in-memory database is a database of its own: share one.
            engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
            _install_sqlite_pragmas(engine)
            return engine
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args=connect_args, pool_size=pool_size, max_overflow=8)
        _install_sqlite_pragmas(engine)
        return engine
    options: dict[str, object] = {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": 8}
    if dialect == "mysql":
        options["isolation_level"] = "READ COMMITTED"
    return create_engine(url, **options)


def _install_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions ignore our BEGIN mode).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # sqlite_begin "" (a side read's single statement): no transaction, the statement is its own.
        begin = connection.get_execution_options().get("sqlite_begin", "BEGIN")
        if begin:
            connection.exec_driver_sql(begin)
