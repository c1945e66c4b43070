"""The one list engine: filter, sort and keyset-paginate any listable model in SQL.

Pages are found by seeking on (sort column, id) from the first row of the page (never OFFSET), so a page
deep in a large table costs the same as the first one. Every sortable column has an index on (column, id).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

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

    column: InstrumentedAttribute
    kind: type  # int or str: the type of values compared with the column
    # Sort on this column instead (e.g. an indexed prefix of a long text column).
    sort_column: InstrumentedAttribute | None = None
    filterable: bool = True
    sortable: bool = True


@dataclass(frozen=True)
class Listable:
    """How one resource is listed: its API type name (for messages), model and fields."""

    type_name: str
    model: type
    id_column: InstrumentedAttribute
    fields: Mapping[str, ListField]
    default_sort: str = "created_at"

    def sort_column(self, name: str) -> InstrumentedAttribute:
        spec = self.fields[name]
        return spec.sort_column if spec.sort_column is not None else spec.column


@dataclass(frozen=True)
class ListQuery:
    page_size: int
    sort_field: str
    descending: bool = False
    predicates: tuple[Predicate, ...] = ()
    # (sort value, id) of the first row of the wanted page; None for the first page.
    start_at: tuple[Any, str] | None = None


@dataclass
class Page(Generic[T]):
    items: list[T]
    total_size: int
    # (sort value, id) of the first row of the next page, or None on the last page.
    next_start_at: tuple[Any, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def list_page(
    session: Session,
    listable: Listable,
    query: ListQuery,
    scope: Sequence[ColumnElement[bool]] = (),
    base: Select | None = None,
) -> Page:
    """Run one page of `query` over rows matching `scope` (conditions the caller adds, e.g. a parent id)."""
    dialect = session.get_bind().dialect.name
    conditions = [*scope, *(_predicate_sql(listable, p, dialect) for p in query.predicates)]
    sort_column = listable.sort_column(query.sort_field)
    id_column = listable.id_column

    total = session.scalar(select(func.count()).select_from(listable.model).where(*conditions)) or 0

    statement = base if base is not None else select(listable.model)
    statement = statement.where(*conditions)
    if query.start_at is not None:
        statement = statement.where(_seek(dialect, sort_column, id_column, query.start_at, query.descending))
    if query.descending:
        statement = statement.order_by(sort_column.desc(), id_column.desc())
    else:
        statement = statement.order_by(sort_column.asc(), id_column.asc())
    rows = list(session.scalars(statement.limit(query.page_size + 1)))

    next_start_at = None
    if len(rows) > query.page_size:
        boundary = rows[query.page_size]
        next_start_at = (getattr(boundary, sort_column.key), getattr(boundary, id_column.key))
        rows = rows[: query.page_size]
    return Page(items=rows, total_size=total, next_start_at=next_start_at)


def _seek(
    dialect: str,
    sort_column: InstrumentedAttribute,
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


def _predicate_sql(listable: Listable, predicate: Predicate, dialect: str) -> ColumnElement[bool]:
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
            return _contains_ignoring_case(column, value, dialect)
    raise ValueError(f"unsupported operation {predicate.op!r}")


def _contains_ignoring_case(column: InstrumentedAttribute, value: str, dialect: str) -> ColumnElement[bool]:
    """Case-insensitive substring match, as upstream behaves on MySQL, in each database's fastest form.

    SQLite's and MySQL's (default collation) LIKE already ignore case; wrapping both sides in lower(),
    as the generic form does, makes a counted scan of 100k rows 2.5x slower on SQLite.
    """
    if dialect == "postgresql":
        escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
        return column.ilike(f"%{escaped}%", escape="/")
    if dialect in {"sqlite", "mysql"}:
        return column.contains(value, autoescape=True)
    return column.icontains(value, autoescape=True)
