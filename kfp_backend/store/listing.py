"""The one list engine: filter, sort and keyset-paginate any listable model in SQL.

Pages are found by seeking on (sort column, id) from the first row of the page (never OFFSET), so a page
deep in a large table costs the same as the first one. Every sortable column has an index on (column, id).
"""

from __future__ import annotations

import enum
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Engine, Select, Table, and_, case, func, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import visitors

from kfp_backend.store.db import side_reads_of
from kfp_backend.store.models import ListGeneration

T = TypeVar("T")


class Op(enum.IntEnum):
    """Predicate operations with upstream's enum numbers (4 is unused there too)."""

    UNKNOWN = 0
    EQUALS = 1
    NOT_EQUALS = 2
    GREATER_THAN = 3
    GREATER_THAN_EQUALS = 5
    LESS_THAN = 6
    LESS_THAN_EQUALS = 7
    IN = 8
    IS_SUBSTRING = 9


@dataclass(frozen=True)
class Predicate:
    key: str
    op: Op
    # A scalar (str or int) for scalar ops, a tuple of them for IN.
    value: Any


@dataclass(frozen=True)
class ListField:
    """One API field that can be filtered and/or sorted on."""

    # A column of the model, or (sort-only fields) an SQL expression over a row of it.
    column: InstrumentedAttribute | ColumnElement[Any]
    kind: type  # int, float or str: the type of values compared with the column
    # Sort on this column instead (e.g. an indexed prefix of a long text column).
    sort_column: InstrumentedAttribute | None = None
    filterable: bool = True
    sortable: bool = True
    # What the page query must join for an expression `column` to be computed (an outer join: every row
    # stays listed); the COUNT does not need it.
    join: Callable[[Select], Select] | None = None


@dataclass(frozen=True)
class Listable:
    """How one resource is listed: its API type name (for messages), model and fields."""

    type_name: str
    model: type
    id_column: InstrumentedAttribute
    fields: Mapping[str, ListField]
    default_sort: str = "created_at"
    # Sort fields named by a pattern rather than listed (runs: `metric:<name>`): the field, or None.
    sort_field_for: Callable[[str], ListField | None] | None = None

    def field(self, name: str) -> ListField | None:
        """The field `name`, listed or named by a pattern; None when there is none."""
        spec = self.fields.get(name)
        if spec is None and self.sort_field_for is not None:
            spec = self.sort_field_for(name)
        return spec


@dataclass(frozen=True)
class ListQuery:
    page_size: int
    sort_field: str
    descending: bool = False
    predicates: tuple[Predicate, ...] = ()
    # (sort value, id) of the first row of the wanted page; None for the first page.
    start_at: tuple[Any, str] | None = None


class Page(Generic[T]):
    """One page of rows and the exact number of rows matching the query on all pages.

    total_size may still be being counted on another connection (see list_page): it is waited for when it is
    first read, so whatever the caller does with the page in between overlaps the COUNT too.
    """

    def __init__(
        self,
        items: list[T],
        total_size: int | Future[int],
        next_start_at: tuple[Any, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.items = items
        self._total_size = total_size
        # (sort value, id) of the first row of the next page, or None on the last page.
        self.next_start_at = next_start_at
        self.extra = extra if extra is not None else {}

    @property
    def total_size(self) -> int:
        if isinstance(self._total_size, Future):
            self._total_size = self._total_size.result() or 0
        return self._total_size


def list_page(
    session: Session,
    listable: Listable,
    query: ListQuery,
    scope: Sequence[ColumnElement[bool]] = (),
) -> Page:
    """Run one page of `query` over rows matching `scope` (conditions the caller adds, e.g. a parent id)."""
    dialect = session.get_bind().dialect.name
    ascii_folds = dialect == "postgresql" and any(
        p.op == Op.IS_SUBSTRING and str(p.value).isascii() for p in query.predicates
    ) and _ascii_folds_as_in_c(session)
    conditions = [*scope, *(_predicate_sql(listable, p, dialect, ascii_folds) for p in query.predicates)]
    sort_field = listable.field(query.sort_field)
    assert sort_field is not None
    sort_column = sort_field.sort_column if sort_field.sort_column is not None else sort_field.column
    id_column = listable.id_column

    # total_size is an exact COUNT of the matching rows (as upstream returns it), and at 100k rows it costs
    # more than the page itself: a counted scan of every match (SQLite walks a covering index, PostgreSQL
    # an index-only or sequential scan; both CPU-bound, about 60-75% of a request run one after the other).
    # So it runs on a second pooled connection while this session fetches the page: the request then costs
    # about the slower of the two instead of their sum. Where a second connection would not see what this
    # session sees (a session that wrote, SQLite in memory) or every side slot is busy, it runs here first.
    # Like upstream's two statements under READ COMMITTED, the count and the page are separate snapshots.
    #
    # An unchanged count is not counted again: see _counted.
    count = select(func.count()).select_from(listable.model).where(*conditions)
    side_reads = side_reads_of(session)
    cached = _cached_count(session, count) if side_reads is not None else None
    pending: Future[int] | None = None
    total: int | Future[int]
    if cached is not None and cached.total is not None:
        total = cached.total
    else:
        pending = side_reads.submit(count) if side_reads is not None else None
        if pending is not None:
            total = pending
            if cached is not None:
                pending.add_done_callback(cached.store_from)
        else:
            total = session.scalar(count) or 0
            if cached is not None:
                cached.store(total)

    # Each row comes with its sort value: the next page's token starts at the boundary row's (a sort field
    # may be an expression, not a column of the row).
    statement = select(listable.model, sort_column)
    if sort_field.join is not None:
        statement = sort_field.join(statement)
    statement = statement.where(*conditions)
    if query.start_at is not None:
        statement = statement.where(_seek(dialect, sort_column, id_column, query.start_at, query.descending))
    if query.descending:
        statement = statement.order_by(sort_column.desc(), id_column.desc())
    else:
        statement = statement.order_by(sort_column.asc(), id_column.asc())
    try:
        rows = session.execute(statement.limit(query.page_size + 1)).all()
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise

    next_start_at = None
    if len(rows) > query.page_size:
        boundary, value = rows[query.page_size]
        next_start_at = (value, getattr(boundary, id_column.key))
        rows = rows[: query.page_size]
    return Page(items=[row for row, _ in rows], total_size=total, next_start_at=next_start_at)


def _seek(
    dialect: str,
    sort_column: InstrumentedAttribute | ColumnElement[Any],
    id_column: InstrumentedAttribute,
    start_at: tuple[Any, str],
    descending: bool,
) -> ColumnElement[bool]:
    value, key = start_at
    if dialect in {"sqlite", "postgresql"}:
        # Row-value comparison lets the (column, id) index seek straight to the page.
        pair = tuple_(sort_column, id_column)
        return pair <= tuple_(value, key) if descending else pair >= tuple_(value, key)
    # MariaDB does not range-scan row values; a leading single-column bound keeps the index in use.
    if descending:
        return and_(sort_column <= value, or_(sort_column < value, id_column <= key))
    return and_(sort_column >= value, or_(sort_column > value, id_column >= key))


def _predicate_sql(
    listable: Listable, predicate: Predicate, dialect: str, ascii_folds: bool = False
) -> ColumnElement[bool]:
    column = listable.fields[predicate.key].column
    value = predicate.value
    match predicate.op:
        case Op.EQUALS:
            return column == value
        case Op.NOT_EQUALS:
            return column != value
        case Op.GREATER_THAN:
            return column > value
        case Op.GREATER_THAN_EQUALS:
            return column >= value
        case Op.LESS_THAN:
            return column < value
        case Op.LESS_THAN_EQUALS:
            return column <= value
        case Op.IN:
            return column.in_(list(value))
        case Op.IS_SUBSTRING:
            return _contains_ignoring_case(column, value, dialect, ascii_folds)
    raise ValueError(f"unsupported operation {predicate.op!r}")


def _contains_ignoring_case(
    column: InstrumentedAttribute, value: str, dialect: str, ascii_folds: bool = False
) -> ColumnElement[bool]:
    """Case-insensitive substring match, as upstream behaves on MySQL, in each database's fastest form.

    SQLite's and MySQL's (default collation) LIKE already ignore case; wrapping both sides in lower(),
    as the generic form does, makes a counted scan of 100k rows 2.5x slower on SQLite.

    PostgreSQL's ILIKE under a UTF-8 database's collation lower-cases every row through the locale (to
    wide characters and back), about 1 us a row. For an ASCII value, a row whose text is ASCII too
    (octet_length = char_length) gives the same answer under the "C" collation, whose ILIKE folds A-Z
    alone, byte by byte: 2-3x cheaper on a counted scan. Only where `ascii_folds` says the database
    collation folds A-Z to a-z as "C" does (see _ascii_folds_as_in_c); rows with other characters keep
    the collation's ILIKE (some fold to ASCII letters there: KELVIN SIGN to k, for instance).
    """
    if dialect == "postgresql":
        escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
        pattern = f"%{escaped}%"
        if ascii_folds and value.isascii():
            return case(
                (func.octet_length(column) == func.char_length(column),
                 column.collate("C").ilike(pattern, escape="/")),
                else_=column.ilike(pattern, escape="/"),
            )
        return column.ilike(pattern, escape="/")
    if dialect in {"sqlite", "mysql"}:
        return column.contains(value, autoescape=True)
    return column.icontains(value, autoescape=True)


_ASCII_FOLDS: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _ascii_folds_as_in_c(session: Session) -> bool:
    """Whether this PostgreSQL database is UTF-8 and its collation lower-cases A-Z to a-z as "C" does (not
    so in Turkish locales, where I becomes a dotless i). Asked once per engine."""
    engine = session.get_bind().engine
    folds = _ASCII_FOLDS.get(engine)
    if folds is None:
        upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        folds = bool(session.scalar(select(and_(
            func.current_setting("server_encoding") == "UTF8", func.lower(upper) == upper.lower()
        ))))
        _ASCII_FOLDS[engine] = folds
    return folds


# ------------------------------------------------------------------------------------------ count cache
#
# total_size must be exact, and at 100k rows its COUNT costs more than the page. But the count of a query
# only changes when a table it reads is written, and every write to a cached table bumps that table's row in
# list_generations (database triggers, migration 0006: whatever the writer, ORM, Core or a bulk load). So a
# COUNT is remembered with the generations read *before* it ran, and reused while they are unchanged.
#
# Why before: a write committed after the generations were read but before the COUNT's snapshot only makes
# the stored generations older than the counted rows, so the next read of the newer generation misses and
# counts again; read after the COUNT, a write landing in between would be stored as current with the old
# total. The generations live in the database, so replicas of the server (each with its own cache) stay
# exact too. Only read-only sessions that wrote nothing use the cache (side_reads_of): a session's own
# uncommitted writes would be stored under a generation that may never commit.

# Tables with a list_generations row and triggers (migration 0006). Runs and jobs are written too often.
GENERATION_TABLES = frozenset({"experiments", "pipelines", "pipeline_versions"})
COUNT_CACHE_ENTRIES = 256


class CountCache:
    """A bounded, thread-safe LRU of (count SQL, parameters) -> (generations, total), one per engine."""

    def __init__(self, entries: int = COUNT_CACHE_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[tuple[int, ...], int]] = OrderedDict()
        self._size = entries
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], generations: tuple[int, ...]) -> int | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != generations:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[str, str], generations: tuple[int, ...], total: int) -> None:
        with self._lock:
            self._entries[key] = (generations, total)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_COUNT_CACHES: weakref.WeakKeyDictionary[Engine, CountCache] = weakref.WeakKeyDictionary()
_COUNT_CACHES_LOCK = threading.Lock()


def count_cache_of(engine: Engine) -> CountCache:
    with _COUNT_CACHES_LOCK:
        cache = _COUNT_CACHES.get(engine)
        if cache is None:
            cache = _COUNT_CACHES[engine] = CountCache()
        return cache


@dataclass
class _Counted:
    """A COUNT's cache slot: the total found there (None on a miss), or where to store the one counted."""

    cache: CountCache
    key: tuple[str, str]
    generations: tuple[int, ...]
    total: int | None

    def store(self, total: int) -> None:
        self.cache.put(self.key, self.generations, total)

    def store_from(self, future: Future[int]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.store(future.result() or 0)


def _cached_count(session: Session, count: Select) -> _Counted | None:
    """The cache slot of `count`, None when it reads a table without a generation (never cached)."""
    tables = sorted({t.name for t in visitors.iterate(count) if isinstance(t, Table)})
    if not tables or not GENERATION_TABLES.issuperset(tables):
        return None
    rows = dict(session.execute(
        select(ListGeneration.resource, ListGeneration.generation).where(
            ListGeneration.resource == tables[0] if len(tables) == 1 else ListGeneration.resource.in_(tables))
    ).all())
    if len(rows) != len(tables):  # a database without the rows: count every time
        return None
    generations = tuple(rows[t] for t in tables)
    bind = session.get_bind()
    compiled = count.compile(dialect=bind.dialect)
    key = (str(compiled), repr(sorted(compiled.params.items())))
    cache = count_cache_of(bind.engine)
    return _Counted(cache, key, generations, cache.get(key, generations))
