"""Turns the raw list parameters of a request (page_token, page_size, sort_by, filter) into a ListQuery.

Rules and messages follow the real server: page size 0 means 20 and is capped at 200; sort_by is
"field", "field asc" or "field desc"; filter is the JSON api.Filter (snake_case or camelCase keys, op as
name or number); with a page token, sort and filter come from the token and must match any supplied ones.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.references import enum_member
from kfp_backend.store.listing import Listable, ListQuery, Op, Page, Predicate

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
TOKEN_VERSION = 1

_VALUE_KEYS = {
    "int_value": "int_value", "intValue": "int_value",
    "long_value": "long_value", "longValue": "long_value",
    "string_value": "string_value", "stringValue": "string_value",
    "timestamp_value": "timestamp_value", "timestampValue": "timestamp_value",
    "int_values": "int_values", "intValues": "int_values",
    "long_values": "long_values", "longValues": "long_values",
    "string_values": "string_values", "stringValues": "string_values",
}
_ARRAY_KINDS = {"int_values", "long_values", "string_values"}


@dataclass(frozen=True)
class ListRequest:
    """The raw strings of a list call, exactly as they arrived (None when absent)."""

    page_token: str | None = None
    page_size: str | int | None = None
    sort_by: str | None = None
    filter: str | None = None


T = TypeVar("T")


class ListResult(Generic[T]):
    """One page of a list call. total_size is read from the page only when the response is rendered
    (after the items are dumped), so that work overlaps the COUNT the store may still be running."""

    def __init__(self, items: list[T], page: Page, next_page_token: str) -> None:
        self.items = items
        self.next_page_token = next_page_token
        self._page = page

    @property
    def total_size(self) -> int:
        return self._page.total_size


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message).wrap("Failed to create list options")


def load_json(raw: str | bytes) -> Any:
    """json.loads for request input. Also refuses, as ValueError, what json.loads lets through but no
    database driver can store (a lone UTF-16 surrogate such as "\\ud800") and nesting too deep to parse."""
    try:
        document = json.loads(raw)
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone UTF-16 surrogate") from None
    return document


def parse_list_request(listable: Listable, request: ListRequest) -> ListQuery:
    page_size = parse_page_size(request.page_size)
    # Like upstream's strings.Fields: a blank sort_by is no sort_by.
    sort_by = request.sort_by if request.sort_by and request.sort_by.strip() else None
    if request.page_token:
        token_query = decode_page_token(listable, request.page_token, page_size)
        if sort_by:
            field, descending = parse_sort_by(listable, sort_by)
            if (field, descending) != (token_query.sort_field, token_query.descending):
                raise _token_mismatch()
        if request.filter and parse_filter(listable, request.filter) != token_query.predicates:
            raise _token_mismatch()
        return token_query
    field, descending = parse_sort_by(listable, sort_by) if sort_by else (listable.default_sort, False)
    predicates = parse_filter(listable, request.filter) if request.filter else ()
    return ListQuery(page_size=page_size, sort_field=field, descending=descending, predicates=predicates)


def _token_mismatch() -> InvalidArgument:
    return _invalid(
        "page token does not match the supplied sort by and/or filtering criteria. Either specify the same "
        "criteria or leave the latter empty if page token is specified."
    )


def parse_page_size(raw: str | int | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except (TypeError, ValueError):
        raise InvalidArgument(f"Invalid page_size {raw!r}: not an integer.") from None
    if size > INT32_MAX or size < -INT32_MAX - 1:
        raise InvalidArgument(f"Invalid page_size {raw!r}: out of range.")
    if size < 0:
        raise _invalid(f"The page size should be greater than 0. Got {size}")
    if size == 0:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def parse_sort_by(listable: Listable, sort_by: str) -> tuple[str, bool]:
    words = sort_by.lower().split()
    if not words or len(words) > 2 or (len(words) == 2 and words[1] not in {"asc", "desc"}):
        raise _invalid(
            f'Received invalid sort by format "{sort_by}". Supported format: "field_name", '
            '"field_name desc", or "field_name asc"'
        )
    field = words[0]
    spec = listable.field(field)
    if spec is None or not spec.sortable:
        raise _invalid(f'Invalid sorting field: "{field}" on listable type {listable.type_name}')
    return field, len(words) == 2 and words[1] == "desc"


def parse_filter(listable: Listable, raw: str | dict) -> tuple[Predicate, ...]:
    if isinstance(raw, str):
        try:
            document = load_json(raw)
        except ValueError as exc:
            raise _filter_error(raw, f"invalid JSON: {exc}") from None
    else:
        document = raw
    if not isinstance(document, dict) or set(document) - {"predicates"}:
        raise _filter_error(raw, "a filter is an object with one key, \"predicates\"")
    predicates = document.get("predicates")
    if predicates is None:
        predicates = []
    if not isinstance(predicates, list):
        raise _filter_error(raw, "\"predicates\" must be a list")
    return tuple(_parse_predicate(listable, raw, item) for item in predicates)


def _filter_error(raw: object, reason: str) -> InvalidArgument:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return InvalidArgument(f'failed to parse valid filter from "{text}": {reason}').wrap(
        "Failed to create list options"
    )


def _parse_predicate(listable: Listable, raw: object, item: object) -> Predicate:
    if not isinstance(item, dict):
        raise _filter_error(raw, "each predicate must be an object")
    op = _parse_op(raw, item.get("op", 0))
    key = item.get("key", "")
    if not isinstance(key, str):
        raise _filter_error(raw, "predicate key must be a string")
    values = {}
    for name, value in item.items():
        if name in {"op", "key"}:
            continue
        canonical = _VALUE_KEYS.get(name)
        if canonical is None:
            raise _filter_error(raw, f'unknown field "{name}" in predicate')
        values[canonical] = value
    if len(values) > 1:
        raise _filter_error(raw, f"predicate on key \"{key}\" sets more than one value: {sorted(values)}")
    if op == Op.UNKNOWN:
        raise _invalid(f"invalid predicate operation: {op.name}")
    spec = listable.fields.get(key)
    if spec is None or not spec.filterable:
        raise _invalid(f'no support for filtering on unrecognized field "{key}"')
    if not values:
        raise _invalid(f'no value set for predicate on key "{key}"')
    (kind, value), = values.items()
    is_array = kind in _ARRAY_KINDS
    if op == Op.IN and not is_array:
        raise _invalid(f"cannot use IN operator with scalar type {kind}")
    if op != Op.IN and is_array:
        raise _invalid(f"cannot use scalar operator {op.name} on array type {kind}")
    if op == Op.IS_SUBSTRING and (kind != "string_value" or spec.kind is not str):
        raise _invalid(f"cannot use non string value type {kind} with operator {op.name} on key \"{key}\"")
    try:
        if is_array:
            if not isinstance(value, dict) or set(value) - {"values"}:
                raise ValueError(f"{kind} must be an object with a \"values\" list")
            items = value.get("values")
            if items is None:
                items = []
            if not isinstance(items, list):
                raise ValueError(f"{kind}.values must be a list")
            converted: Any = tuple(_convert(kind[:-1], v, spec.kind) for v in items)
        else:
            converted = _convert(kind, value, spec.kind)
    except ValueError as exc:
        raise _filter_error(raw, str(exc)) from None
    return Predicate(key=key, op=op, value=converted)


def _parse_op(raw: object, op: object) -> Op:
    parsed = enum_member(Op, op)
    if parsed is None:
        raise _filter_error(raw, f"unknown predicate operation {op!r}")
    return parsed


def _convert(kind: str, value: object, column_kind: type) -> int | str:
    """Check one JSON value against its oneof kind and convert it to what the column compares with."""
    if kind in {"int_value", "long_value"}:
        number = _to_int(value, INT32_MAX if kind == "int_value" else INT64_MAX)
        return number if column_kind is int else str(number)
    if kind == "timestamp_value":
        if not isinstance(value, str):
            raise ValueError("timestamp_value must be an RFC 3339 string")
        seconds = _rfc3339_seconds(value)
        return seconds if column_kind is int else str(seconds)
    if not isinstance(value, str):
        raise ValueError("string_value must be a string")
    if column_kind is int:
        # Time columns hold Unix seconds: accept a number in a string or an RFC 3339 time.
        try:
            return int(value)
        except ValueError:
            return _rfc3339_seconds(value)
    return value


def _to_int(value: object, limit: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"not an integer: {value!r}") from None
    if not isinstance(value, int) or not -limit - 1 <= value <= limit:
        raise ValueError(f"not an integer in range: {value!r}")
    return value


def _rfc3339_seconds(text: str) -> int:
    try:
        # Python 3.10's fromisoformat does not know the "Z" suffix.
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in {"z", "Z"} else text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp lacks a time zone: {text!r}")
    return int(moment.timestamp())


# Page tokens: opaque to clients. They carry the sort, the filter and where the next page starts.


def encode_page_token(query: ListQuery, start_at: tuple[Any, str]) -> str:
    document = {
        "v": TOKEN_VERSION,
        "sort": query.sort_field,
        "desc": query.descending,
        "filter": [[p.key, int(p.op), list(p.value) if isinstance(p.value, tuple) else p.value]
                   for p in query.predicates],
        "start": list(start_at),
    }
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def decode_page_token(listable: Listable, token: str, page_size: int) -> ListQuery:
    try:
        document = load_json(base64.b64decode(token.encode(), validate=True))
        if not isinstance(document, dict) or document.get("v") != TOKEN_VERSION:
            raise ValueError("unknown token version")
        field, descending = document["sort"], document["desc"]
        if not isinstance(field, str) or not isinstance(descending, bool):
            raise ValueError("bad sort")
        spec = listable.field(field)
        if spec is None or not spec.sortable:
            raise ValueError("bad sort field")
        value, key = document["start"]
        sort_kind = str if spec.sort_column is not None else spec.kind
        if not isinstance(key, str) or type(value) is not sort_kind:
            raise ValueError("bad start")
        if sort_kind is int and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ValueError("start value out of range")
        predicates = parse_filter(listable, {"predicates": [
            _token_predicate(entry) for entry in document["filter"]
        ]})
    except (ValueError, TypeError, KeyError, binascii.Error, InvalidArgument, UnicodeDecodeError):
        raise InvalidArgument("Invalid package token.").wrap("Failed to create list options") from None
    return ListQuery(page_size=page_size, sort_field=field, descending=descending, predicates=predicates,
                     start_at=(value, key))


def _token_predicate(entry: list) -> dict:
    key, op, value = entry
    if op == Op.IN:
        kind = "string_values" if all(isinstance(v, str) for v in value) else "long_values"
        return {"key": key, "op": op, kind: {"values": value}}
    return {"key": key, "op": op, ("string_value" if isinstance(value, str) else "long_value"): value}


def next_page_token(query: ListQuery, page: Page) -> str:
    return encode_page_token(query, page.next_start_at) if page.next_start_at is not None else ""
