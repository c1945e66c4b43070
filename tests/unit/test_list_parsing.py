"""The list parameters (page_size, sort_by, filter, page_token) parsed directly, without a database."""

from __future__ import annotations

import base64
import json

import pytest

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.listing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ListRequest,
    decode_page_token,
    encode_page_token,
    load_json,
    next_page_token,
    parse_filter,
    parse_list_request,
    parse_page_size,
    parse_sort_by,
)
from kfp_backend.store.experiments_repo import EXPERIMENT_LISTABLE
from kfp_backend.store.listing import Listable, ListField, ListQuery, Op, Page, Predicate
from kfp_backend.store.models import Experiment

LIST_OPTIONS = "Failed to create list options: Invalid input error: "
EXP = EXPERIMENT_LISTABLE


def invalid(call, *args):  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as raised:
        call(*args)
    assert raised.value.grpc_code == 3
    return raised.value


def filter_of(*predicates: dict) -> str:
    return json.dumps({"predicates": list(predicates)})


# ------------------------------------------------------------------------------------------- page_size


@pytest.mark.parametrize(
    ("raw", "size"),
    [(None, 20), ("", 20), ("0", 20), (0, 20), ("1", 1), (7, 7), ("200", 200), ("201", 200),
     (str(2**31 - 1), 200), (" 5 ", 5)],
)
def test_page_size(raw: str | int | None, size: int) -> None:
    assert parse_page_size(raw) == size
    assert (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE) == (20, 200)


def test_negative_page_size() -> None:
    error = invalid(parse_page_size, "-3")
    assert error.external_message == "The page size should be greater than 0. Got -3"
    assert error.internal_message == LIST_OPTIONS + "The page size should be greater than 0. Got -3"


@pytest.mark.parametrize("raw", ["abc", "1.0", "1e2", str(2**31), str(-(2**31) - 1), "--1"])
def test_page_size_not_an_int32(raw: str) -> None:
    assert raw in str(invalid(parse_page_size, raw))


# --------------------------------------------------------------------------------------------- sort_by


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("name", ("name", False)),
        ("name asc", ("name", False)),
        ("name desc", ("name", True)),
        ("Name DESC", ("name", True)),
        ("\tcreated_at \n desc", ("created_at", True)),
        ("storage_state", ("storage_state", False)),
        ("namespace desc", ("namespace", True)),
    ],
)
def test_sort_by(raw: str, parsed: tuple[str, bool]) -> None:
    assert parse_sort_by(EXP, raw) == parsed


@pytest.mark.parametrize("raw", ["name up", "name desc desc", "a b c", "desc name"])
def test_sort_by_bad_format(raw: str) -> None:
    error = invalid(parse_sort_by, EXP, raw)
    assert error.external_message == (
        f'Received invalid sort by format "{raw}". Supported format: "field_name", "field_name desc", '
        'or "field_name asc"'
    )
    assert error.internal_message == LIST_OPTIONS + error.external_message


@pytest.mark.parametrize("raw", ["foo", "foo desc", "metric:accuracy", "pipeline_id"])
def test_sort_by_unknown_field(raw: str) -> None:
    error = invalid(parse_sort_by, EXP, raw)
    field = raw.split()[0]
    assert error.external_message == f'Invalid sorting field: "{field}" on listable type Experiment'
    assert error.internal_message == LIST_OPTIONS + error.external_message


RESTRICTED = Listable(
    type_name="Restricted",
    model=Experiment,
    id_column=Experiment.id,
    fields={
        "id": ListField(Experiment.id, str),
        "name": ListField(Experiment.name, str, filterable=False),
        "created_at": ListField(Experiment.created_at, int),
        "description": ListField(Experiment.description, str, sortable=False),
    },
)


def test_fields_that_only_sort_or_only_filter() -> None:
    assert parse_sort_by(RESTRICTED, "name") == ("name", False)
    assert invalid(parse_sort_by, RESTRICTED, "description").external_message == (
        'Invalid sorting field: "description" on listable type Restricted'
    )
    assert parse_filter(RESTRICTED, filter_of({"key": "description", "op": 1, "string_value": "x"})) == (
        Predicate("description", Op.EQUALS, "x"),
    )
    error = invalid(parse_filter, RESTRICTED, filter_of({"key": "name", "op": 1, "string_value": "x"}))
    assert error.external_message == 'no support for filtering on unrecognized field "name"'
    assert invalid(parse_filter, RESTRICTED, filter_of({"key": "storage_state", "op": 1, "string_value": "x"}))


# ---------------------------------------------------------------------------------------------- filter


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ({"key": "name", "op": "EQUALS", "string_value": "x"}, Predicate("name", Op.EQUALS, "x")),
        ({"key": "name", "op": 1, "stringValue": "x"}, Predicate("name", Op.EQUALS, "x")),
        ({"key": "name", "op": "2", "string_value": "x"}, Predicate("name", Op.NOT_EQUALS, "x")),
        ({"key": "name", "op": "IS_SUBSTRING", "string_value": "%"}, Predicate("name", Op.IS_SUBSTRING, "%")),
        # Values are converted to what the column holds: numbers for times, text for names.
        ({"key": "created_at", "op": 3, "long_value": "42"}, Predicate("created_at", Op.GREATER_THAN, 42)),
        ({"key": "created_at", "op": 5, "longValue": 42}, Predicate("created_at", Op.GREATER_THAN_EQUALS, 42)),
        ({"key": "created_at", "op": 6, "int_value": 42.0}, Predicate("created_at", Op.LESS_THAN, 42)),
        ({"key": "created_at", "op": 7, "intValue": -5}, Predicate("created_at", Op.LESS_THAN_EQUALS, -5)),
        ({"key": "created_at", "op": 1, "long_value": str(2**63 - 1)}, Predicate("created_at", Op.EQUALS, 2**63 - 1)),
        ({"key": "created_at", "op": 1, "string_value": "1000"}, Predicate("created_at", Op.EQUALS, 1000)),
        ({"key": "name", "op": 1, "long_value": 12}, Predicate("name", Op.EQUALS, "12")),
        ({"key": "created_at", "op": 3, "timestamp_value": "2021-06-03T18:22:03Z"},
         Predicate("created_at", Op.GREATER_THAN, 1622744523)),
        ({"key": "created_at", "op": 3, "timestampValue": "2021-06-03T18:22:03.999z"},
         Predicate("created_at", Op.GREATER_THAN, 1622744523)),
        ({"key": "created_at", "op": 3, "timestamp_value": "2021-06-03T20:22:03+02:00"},
         Predicate("created_at", Op.GREATER_THAN, 1622744523)),
        ({"key": "created_at", "op": 3, "string_value": "2021-06-03T18:22:03Z"},
         Predicate("created_at", Op.GREATER_THAN, 1622744523)),
        ({"key": "name", "op": "IN", "string_values": {"values": ["a", "b"]}}, Predicate("name", Op.IN, ("a", "b"))),
        ({"key": "name", "op": 8, "stringValues": {"values": []}}, Predicate("name", Op.IN, ())),
        ({"key": "name", "op": 8, "stringValues": {}}, Predicate("name", Op.IN, ())),
        ({"key": "created_at", "op": 8, "long_values": {"values": ["1", 2]}}, Predicate("created_at", Op.IN, (1, 2))),
        ({"key": "created_at", "op": 8, "intValues": {"values": [3]}}, Predicate("created_at", Op.IN, (3,))),
        ({"key": "created_at", "op": 8, "longValues": {"values": [4]}}, Predicate("created_at", Op.IN, (4,))),
    ],
)
def test_filter_predicate(predicate: dict, expected: Predicate) -> None:
    assert parse_filter(EXP, filter_of(predicate)) == (expected,)
    assert parse_filter(EXP, {"predicates": [predicate]}) == (expected,)


def test_filter_keeps_every_predicate_in_order() -> None:
    parsed = parse_filter(EXP, filter_of(
        {"key": "name", "op": 1, "string_value": "a"},
        {"key": "name", "op": 2, "string_value": "b"},
        {"key": "created_at", "op": 3, "long_value": 1},
    ))
    assert [p.op for p in parsed] == [Op.EQUALS, Op.NOT_EQUALS, Op.GREATER_THAN]
    assert parse_filter(EXP, "{}") == ()
    assert parse_filter(EXP, '{"predicates": null}') == ()


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        ({"key": "bogus", "op": 1, "string_value": "x"}, 'no support for filtering on unrecognized field "bogus"'),
        ({"op": 1, "string_value": "x"}, 'no support for filtering on unrecognized field ""'),
        ({"key": "name", "op": "IN", "string_value": "x"}, "cannot use IN operator with scalar type string_value"),
        ({"key": "name", "op": 1, "string_values": {"values": ["x"]}},
         "cannot use scalar operator EQUALS on array type string_values"),
        ({"key": "name", "op": "IS_SUBSTRING", "int_value": 1}, "cannot use non string value type int_value"),
        ({"key": "created_at", "op": 9, "string_value": "1"}, "cannot use non string value type string_value"),
        ({"key": "name", "op": "UNKNOWN", "string_value": "x"}, "invalid predicate operation: UNKNOWN"),
        ({"key": "name", "string_value": "x"}, "invalid predicate operation: UNKNOWN"),
        ({"key": "name", "op": 1}, 'no value set for predicate on key "name"'),
    ],
)
def test_filter_validation(predicate: dict, message: str) -> None:
    error = invalid(parse_filter, EXP, filter_of(predicate))
    assert error.external_message.startswith(message), error.external_message
    assert error.internal_message == LIST_OPTIONS + error.external_message


@pytest.mark.parametrize(
    "raw",
    [
        "", "{", "[]", "5", '{"predicate": []}', '{"predicates": {}}', '{"predicates": "x"}', '{"predicates": [[]]}',
        filter_of({"key": "name", "op": "EQUAL", "string_value": "x"}),
        filter_of({"key": "name", "op": 4, "string_value": "x"}),
        filter_of({"key": "name", "op": 10, "string_value": "x"}),
        filter_of({"key": "name", "op": False, "string_value": "x"}),
        filter_of({"key": "name", "op": 1.0, "string_value": "x"}),
        filter_of({"key": ["name"], "op": 1, "string_value": "x"}),
        filter_of({"key": "name", "op": 1, "string_value": "x", "int_value": 1}),
        filter_of({"key": "name", "op": 1, "bool_value": True}),
        filter_of({"key": "name", "op": 1, "string_value": None}),
        filter_of({"key": "created_at", "op": 1, "int_value": 2**31}),
        filter_of({"key": "created_at", "op": 1, "long_value": 2**63}),
        filter_of({"key": "created_at", "op": 1, "long_value": 1.5}),
        filter_of({"key": "created_at", "op": 1, "long_value": True}),
        filter_of({"key": "created_at", "op": 1, "string_value": "soon"}),
        filter_of({"key": "created_at", "op": 1, "timestamp_value": "2021-06-03"}),
        filter_of({"key": "created_at", "op": 1, "timestamp_value": "2021-06-03T18:22:03"}),
        filter_of({"key": "created_at", "op": 1, "timestamp_value": 1622744523}),
        filter_of({"key": "name", "op": 8, "string_values": ["a"]}),
        filter_of({"key": "name", "op": 8, "string_values": {"values": "a"}}),
        filter_of({"key": "name", "op": 8, "string_values": {"values": {}}}),
        filter_of({"key": "name", "op": 8, "string_values": {"values": ["a"], "extra": 1}}),
        filter_of({"key": "name", "op": 8, "string_values": {"values": [1]}}),
        filter_of({"key": "created_at", "op": 8, "long_values": {"values": ["x"]}}),
        '{"predicates": [{"key": "name", "op": 1, "string_value": "\\udc00"}]}',
        "{" * 50_000,
    ],
)
def test_malformed_filter(raw: str) -> None:
    error = invalid(parse_filter, EXP, raw)
    assert error.external_message.startswith("failed to parse valid filter from "), error.external_message
    assert error.internal_message == LIST_OPTIONS + error.external_message


# ------------------------------------------------------------------------------------------- load_json


def test_load_json() -> None:
    assert load_json('{"a": ["\\ud83d\\ude80", 1]}') == {"a": ["🚀", 1]}  # a surrogate pair is one character
    assert load_json(b'"\\u00e9"') == "é"
    for raw in ('"\\ud800"', '["\\udfff"]', '{"\\ud800": 1}', "[" * 100_000, "{"):
        with pytest.raises(ValueError):
            load_json(raw)


# ----------------------------------------------------------------------------------------- list request


def test_request_without_token() -> None:
    assert parse_list_request(EXP, ListRequest()) == ListQuery(page_size=20, sort_field="created_at")
    assert parse_list_request(EXP, ListRequest(sort_by="  ")) == ListQuery(page_size=20, sort_field="created_at")
    query = parse_list_request(EXP, ListRequest(page_size="5", sort_by="name desc", filter=filter_of(
        {"key": "name", "op": 2, "string_value": "x"}
    )))
    assert query == ListQuery(
        page_size=5, sort_field="name", descending=True, predicates=(Predicate("name", Op.NOT_EQUALS, "x"),)
    )


TOKEN_FILTERS = [
    None,
    filter_of({"key": "name", "op": "EQUALS", "string_value": "x"}),
    filter_of({"key": "name", "op": 1, "long_value": 7}),
    filter_of({"key": "name", "op": "IS_SUBSTRING", "stringValue": "%_"}),
    filter_of({"key": "created_at", "op": 3, "timestamp_value": "2021-06-03T18:22:03Z"}),
    filter_of({"key": "created_at", "op": 8, "int_values": {"values": [1, 2]}}),
    filter_of({"key": "created_at", "op": 8, "string_values": {"values": ["1", "2"]}}),
    filter_of({"key": "name", "op": 8, "long_values": {"values": [1, "2"]}}),
    filter_of({"key": "name", "op": 8, "string_values": {"values": []}}),
    filter_of({"key": "created_at", "op": 8, "long_values": {"values": []}}),
    filter_of(
        {"key": "storage_state", "op": 2, "string_value": "STORAGESTATE_ARCHIVED"},
        {"key": "description", "op": 9, "string_value": "é🚀"},
        {"key": "id", "op": 7, "string_value": "z"},
    ),
]


@pytest.mark.parametrize("raw_filter", TOKEN_FILTERS)
@pytest.mark.parametrize(("sort_by", "start"), [("created_at desc", (17, "id-1")), ("description", ("d", "id-2"))])
def test_token_round_trip(raw_filter: str | None, sort_by: str, start: tuple) -> None:
    first = parse_list_request(EXP, ListRequest(page_size="3", sort_by=sort_by, filter=raw_filter))
    token = next_page_token(first, Page(items=[], total_size=0, next_start_at=start))
    base64.b64decode(token, validate=True)  # opaque, but URL-safe to pass around as standard base64
    # The token alone restores the sort and the filter; the page size comes from the new request.
    resumed = parse_list_request(EXP, ListRequest(page_token=token, page_size="9"))
    assert resumed == ListQuery(
        page_size=9, sort_field=first.sort_field, descending=first.descending, predicates=first.predicates,
        start_at=start,
    )
    # The kfp client re-sends the same sort_by and filter with the token: that must be accepted.
    assert parse_list_request(EXP, ListRequest(page_token=token, sort_by=sort_by, filter=raw_filter)) == (
        ListQuery(page_size=20, sort_field=first.sort_field, descending=first.descending,
                  predicates=first.predicates, start_at=start)
    )


def test_no_token_on_the_last_page() -> None:
    assert next_page_token(ListQuery(page_size=1, sort_field="name"), Page(items=[], total_size=0)) == ""


@pytest.mark.parametrize(
    ("sort_by", "raw_filter"),
    [
        ("name", None),
        ("created_at desc", None),
        ("id", None),
        (None, filter_of({"key": "name", "op": 1, "string_value": "x"})),
        ("created_at", filter_of({"key": "name", "op": 1, "string_value": "x"})),
    ],
)
def test_token_with_other_criteria(sort_by: str | None, raw_filter: str | None) -> None:
    token = encode_page_token(ListQuery(page_size=2, sort_field="created_at"), (5, "id"))
    error = invalid(parse_list_request, EXP, ListRequest(page_token=token, sort_by=sort_by, filter=raw_filter))
    assert error.external_message == (
        "page token does not match the supplied sort by and/or filtering criteria. Either specify the same "
        "criteria or leave the latter empty if page token is specified."
    )
    assert error.internal_message == LIST_OPTIONS + error.external_message


def test_filter_in_token_differs_from_supplied() -> None:
    query = parse_list_request(EXP, ListRequest(filter=filter_of({"key": "name", "op": 1, "string_value": "x"})))
    token = encode_page_token(query, ("x", "id"))
    for other in (
        filter_of({"key": "name", "op": 1, "string_value": "y"}),
        filter_of({"key": "name", "op": 2, "string_value": "x"}),
        filter_of({"key": "id", "op": 1, "string_value": "x"}),
        filter_of({"key": "name", "op": 1, "string_value": "x"}, {"key": "name", "op": 1, "string_value": "x"}),
    ):
        invalid(parse_list_request, EXP, ListRequest(page_token=token, filter=other))


def _token(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


GOOD = {"v": 1, "sort": "name", "desc": True, "filter": [["created_at", 8, [1, 2]]], "start": ["n", "id"]}


def test_decode_well_formed_token() -> None:
    assert decode_page_token(EXP, _token(GOOD), 4) == ListQuery(
        page_size=4, sort_field="name", descending=True,
        predicates=(Predicate("created_at", Op.IN, (1, 2)),), start_at=("n", "id"),
    )


@pytest.mark.parametrize(
    "token",
    [
        "", "====", "%%%", "abc", base64.b64encode(b"\x80\x81").decode(), _token("s"), _token(None),
        _token({**GOOD, "v": "1"}), _token({k: v for k, v in GOOD.items() if k != "start"}),
        _token({**GOOD, "sort": 5}), _token({**GOOD, "sort": "bogus"}), _token({**GOOD, "desc": 1}),
        _token({**GOOD, "start": ["n"]}), _token({**GOOD, "start": ["n", "id", "x"]}),
        _token({**GOOD, "start": [1, "id"]}), _token({**GOOD, "start": ["n", None]}),
        _token({**GOOD, "sort": "created_at", "start": [2**63, "id"]}),
        _token({**GOOD, "sort": "created_at", "start": [-(2**63) - 1, "id"]}),
        _token({**GOOD, "sort": "created_at", "start": [1.5, "id"]}),
        _token({**GOOD, "filter": None}), _token({**GOOD, "filter": [["name", 1]]}),
        _token({**GOOD, "filter": [["bogus", 1, "x"]]}), _token({**GOOD, "filter": [["name", 0, "x"]]}),
        _token({**GOOD, "filter": [["name", 8, "x"]]}), _token({**GOOD, "filter": [["name", 1, ["x"]]]}),
        _token({**GOOD, "filter": [["created_at", 1, 2**70]]}),
        base64.b64encode(b'{"v": 1, "sort": "name", "desc": true, "filter": [], "start": ["\\ud800", "i"]}').decode(),
    ],
)
def test_invalid_token(token: str) -> None:
    error = invalid(parse_list_request, EXP, ListRequest(page_token=token or "x"))
    assert error.external_message == "Invalid package token."
    assert error.internal_message == LIST_OPTIONS + "Invalid package token."


def test_extreme_but_storable_token_values_decode() -> None:
    for value in (2**63 - 1, -(2**63)):
        token = _token({**GOOD, "sort": "created_at", "start": [value, "id"]})
        assert decode_page_token(EXP, token, 1).start_at == (value, "id")
