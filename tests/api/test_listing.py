"""The list engine through GET /experiments: paging, tokens, sorting, filtering, page sizes.

Read-only tests share one seeded database per backend (module scope); rows are inserted through the
store with chosen ids and created_at values so that orders, ties and filters are known in advance.
Values are chosen to sort the same under SQLite's binary, PostgreSQL's and MariaDB's case-insensitive
collations (lower-case words that differ early), so one Python oracle serves every backend.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.authorization import SYSTEM
from kfp_backend.store import experiments_repo
from kfp_backend.store.models import Experiment, description_key
from tests.databases import BACKENDS, DatabaseFactory
from tests.gateway_errors import gateway_error

EXPERIMENTS = "/apis/v1beta1/experiments"
AVAILABLE = "STORAGESTATE_AVAILABLE"
ARCHIVED = "STORAGESTATE_ARCHIVED"
LIST_OPTIONS = "Failed to create list options: Invalid input error: "
MISMATCH = (
    "page token does not match the supplied sort by and/or filtering criteria. Either specify the same "
    "criteria or leave the latter empty if page token is specified."
)


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


# (id, name, description, created_at, storage_state). Ids deliberately run against the name order so
# that a tie broken by insertion order or by name instead of by id shows up.
SEED = [
    (_id(7), "alpha", "apple pie", 1000, AVAILABLE),
    (_id(3), "bravo", "", 1000, ARCHIVED),
    (_id(5), "charlie", "cherry tart 50%_off", 2000, AVAILABLE),
    (_id(1), "delta", "date NEEDLE", 3000, ARCHIVED),
    (_id(6), "echo", "elder needle", 3000, AVAILABLE),
    (_id(2), "foxtrot", "banana split", 4000, AVAILABLE),
    (_id(4), "golf", "apple pie", 5000, AVAILABLE),
]
ROWS = [dict(zip(("id", "name", "description", "created_at", "storage_state"), row, strict=True)) for row in SEED]
BY_NAME = {row["name"]: row for row in ROWS}


def expected_names(field: str = "created_at", desc: bool = False, rows: list[dict] | None = None) -> list[str]:
    """The oracle: ORDER BY field, id in one direction."""
    ordered = sorted(rows if rows is not None else ROWS, key=lambda r: (r[field], r["id"]), reverse=desc)
    return [r["name"] for r in ordered]


def insert_experiments(app, rows: list[dict]) -> None:
    db = app.extensions["kfp_backend.services"].db
    with db.transaction() as session:
        for row in rows:
            experiments_repo.add_experiment(
                session,
                Experiment(
                    id=row["id"], name=row["name"], description=row["description"],
                    description_key=description_key(row["description"]), namespace="",
                    created_at=row["created_at"], storage_state=row["storage_state"],
                ),
            )


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest,
    database_factories: dict[str, DatabaseFactory],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FlaskClient]:
    """A client over a database holding exactly SEED (the start-up Default experiment is deleted)."""
    with database_factories[request.param].fresh() as url:
        app = create_app(
            Settings(database_url=url, data_dir=tmp_path_factory.mktemp("data"), threads=4, executor_enabled=False,
                     scheduler_enabled=False)
        )
        services = app.extensions["kfp_backend.services"]
        services.experiments.delete(services.experiments.ensure_default().id, caller=SYSTEM)
        insert_experiments(app, ROWS)
        yield app.test_client()
        shutdown(app)


def get_list(client: FlaskClient, **params: Any) -> dict:
    response = client.get(EXPERIMENTS, query_string={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    return response.get_json()


def names(body: dict) -> list[str]:
    return [item["name"] for item in body.get("experiments", [])]


def list_error(client: FlaskClient, **params: Any) -> dict:
    return gateway_error(client.get(EXPERIMENTS, query_string=params), 400, 3)


def walk(client: FlaskClient, page_size: int, **params: Any) -> list[list[str]]:
    """All pages, checking total_size on every page and the token on all but the last."""
    pages: list[list[str]] = []
    token = None
    while True:
        body = get_list(client, page_size=page_size, page_token=token, **params)
        pages.append(names(body))
        assert len(pages) <= 20, "paging does not terminate"
        token = body.get("next_page_token")
        if token is None:
            break
        assert len(pages[-1]) == page_size
        assert isinstance(token, str) and token
    return pages


def filter_param(*predicates: dict) -> str:
    return json.dumps({"predicates": list(predicates)})


def b64(document: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.b64encode(raw).decode()


# ---------------------------------------------------------------------------------------------- sorting


def test_default_order_is_created_at_then_id(seeded: FlaskClient) -> None:
    body = get_list(seeded)
    # Written out once so the oracle itself is checked: bravo (id 3) before alpha (id 7) at 1000,
    # delta (id 1) before echo (id 6) at 3000.
    assert names(body) == ["bravo", "alpha", "charlie", "delta", "echo", "foxtrot", "golf"]
    assert names(body) == expected_names()
    assert body["total_size"] == len(SEED)
    assert "next_page_token" not in body
    first = body["experiments"][1]
    assert first == {
        "id": _id(7), "name": "alpha", "description": "apple pie",
        "created_at": "1970-01-01T00:16:40Z", "storage_state": AVAILABLE,
    }
    # Empty description omitted (EmitDefaults=false).
    assert "description" not in body["experiments"][0]


@pytest.mark.parametrize(
    ("sort_by", "field", "desc"),
    [
        ("name", "name", False),
        ("name desc", "name", True),
        ("name asc", "name", False),
        ("NAME DESC", "name", True),
        ("  name   desc ", "name", True),
        ("created_at", "created_at", False),
        ("created_at desc", "created_at", True),
        ("description", "description", False),
        ("description desc", "description", True),
        ("storage_state", "storage_state", False),
        ("storage_state desc", "storage_state", True),
        ("id", "id", False),
        ("id desc", "id", True),
    ],
)
def test_sort_by_pages_through_every_row_in_order(seeded: FlaskClient, sort_by: str, field: str, desc: bool) -> None:
    expected = expected_names(field, desc)
    assert names(get_list(seeded, sort_by=sort_by)) == expected
    pages = walk(seeded, 2, sort_by=sort_by)
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [name for page in pages for name in page] == expected


def test_sort_orders_written_out(seeded: FlaskClient) -> None:
    # Ties broken by id in the same direction as the sort: golf (id 4) and alpha (id 7) share a description.
    assert names(get_list(seeded, sort_by="description")) == [
        "bravo", "golf", "alpha", "foxtrot", "charlie", "delta", "echo"
    ]
    assert names(get_list(seeded, sort_by="description desc")) == [
        "echo", "delta", "charlie", "foxtrot", "alpha", "golf", "bravo"
    ]
    assert names(get_list(seeded, sort_by="storage_state")) == [
        "delta", "bravo", "foxtrot", "golf", "charlie", "echo", "alpha"
    ]
    assert names(get_list(seeded, sort_by="created_at desc")) == [
        "golf", "foxtrot", "echo", "delta", "charlie", "alpha", "bravo"
    ]


def test_sort_by_namespace_is_all_ties_so_ordered_by_id(seeded: FlaskClient) -> None:
    assert names(get_list(seeded, sort_by="namespace")) == expected_names("id")
    assert [n for page in walk(seeded, 3, sort_by="namespace desc") for n in page] == expected_names("id", True)


def test_blank_sort_by_means_default_sort(seeded: FlaskClient) -> None:
    assert names(get_list(seeded, sort_by="   ")) == expected_names()


def test_camel_case_query_parameters(seeded: FlaskClient) -> None:
    body = get_list(seeded, pageSize=3, sortBy="name desc")
    assert names(body) == ["golf", "foxtrot", "echo"]
    assert names(get_list(seeded, pageToken=body["next_page_token"])) == ["delta", "charlie", "bravo", "alpha"]


def test_unknown_sort_field(seeded: FlaskClient) -> None:
    body = list_error(seeded, sort_by="foo")
    message = 'Invalid sorting field: "foo" on listable type Experiment'
    assert body["error"] == LIST_OPTIONS + message
    assert body["details"][0]["error_message"] == message
    assert list_error(seeded, sort_by="pipeline_id desc")["details"][0]["error_message"] == (
        'Invalid sorting field: "pipeline_id" on listable type Experiment'
    )


def test_comma_is_not_a_separator(seeded: FlaskClient) -> None:
    body = list_error(seeded, sort_by="name,desc")
    assert body["details"][0]["error_message"] == 'Invalid sorting field: "name,desc" on listable type Experiment'


@pytest.mark.parametrize(
    "sort_by", ["name sideways", "name desc extra", "created_at DESC asc", "name ascending", "desc name"]
)
def test_bad_sort_format(seeded: FlaskClient, sort_by: str) -> None:
    body = list_error(seeded, sort_by=sort_by)
    message = (
        f'Received invalid sort by format "{sort_by}". Supported format: "field_name", '
        '"field_name desc", or "field_name asc"'
    )
    assert body["details"][0]["error_message"] == message
    assert body["error"] == LIST_OPTIONS + message


# -------------------------------------------------------------------------------------------- page size


@pytest.mark.parametrize("page_size", ["-1", "-200"])
def test_negative_page_size(seeded: FlaskClient, page_size: str) -> None:
    body = list_error(seeded, page_size=page_size)
    assert body["details"][0]["error_message"].startswith("The page size should be greater than 0. Got ")
    assert body["error"].startswith(LIST_OPTIONS)


@pytest.mark.parametrize("page_size", ["abc", "1.5", "2e3", "0x10", "99999999999"])
def test_page_size_not_an_int32(seeded: FlaskClient, page_size: str) -> None:
    body = list_error(seeded, page_size=page_size)
    assert page_size in body["error"]


def test_page_size_one_walks_every_row(seeded: FlaskClient) -> None:
    pages = walk(seeded, 1)
    assert pages == [[name] for name in expected_names()]


def test_page_size_equal_to_total_has_no_token(seeded: FlaskClient) -> None:
    body = get_list(seeded, page_size=len(SEED))
    assert names(body) == expected_names()
    assert "next_page_token" not in body
    body = get_list(seeded, page_size=len(SEED) - 1)
    assert len(names(body)) == len(SEED) - 1
    assert names(get_list(seeded, page_token=body["next_page_token"])) == expected_names()[-1:]


# -------------------------------------------------------------------------------------------- page token


def test_token_carries_sort_and_filter(seeded: FlaskClient) -> None:
    available = filter_param({"key": "storage_state", "op": "EQUALS", "string_value": AVAILABLE})
    expected = expected_names("name", True, [r for r in ROWS if r["storage_state"] == AVAILABLE])
    first = get_list(seeded, page_size=2, sort_by="name desc", filter=available)
    assert names(first) == expected[:2]
    assert first["total_size"] == 5
    # The next pages, asked with the token alone, keep the token's sort and filter.
    second = get_list(seeded, page_size=2, page_token=first["next_page_token"])
    assert names(second) == expected[2:4]
    assert second["total_size"] == 5
    # Re-sending the same criteria (what the kfp client does) is fine; so is a new page size.
    third = get_list(seeded, page_size=5, page_token=second["next_page_token"], sort_by="NAME desc", filter=available)
    assert names(third) == expected[4:]
    assert third["total_size"] == 5
    assert "next_page_token" not in third


def test_token_with_page_size_absent_uses_default(seeded: FlaskClient) -> None:
    first = get_list(seeded, page_size=2)
    rest = get_list(seeded, page_token=first["next_page_token"])
    assert names(rest) == expected_names()[2:]
    assert "next_page_token" not in rest


def test_token_with_same_explicit_default_sort_is_accepted(seeded: FlaskClient) -> None:
    token = get_list(seeded, page_size=3)["next_page_token"]
    assert names(get_list(seeded, page_token=token, sort_by="created_at", page_size=3)) == expected_names()[3:6]
    assert names(get_list(seeded, page_token=token, sort_by="created_at asc", page_size=2)) == expected_names()[3:5]


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"sort_by": "name"}, {"sort_by": "name desc"}),
        ({"sort_by": "name"}, {"sort_by": "created_at"}),
        ({}, {"sort_by": "created_at desc"}),
        ({}, {"sort_by": "name"}),
        ({}, {"filter": filter_param({"key": "name", "op": "NOT_EQUALS", "string_value": "x"})}),
        (
            {"filter": filter_param({"key": "name", "op": "NOT_EQUALS", "string_value": "x"})},
            {"filter": filter_param({"key": "name", "op": "NOT_EQUALS", "string_value": "y"})},
        ),
        (
            {"filter": filter_param({"key": "created_at", "op": "GREATER_THAN", "long_value": "0"})},
            {"filter": filter_param({"key": "created_at", "op": "GREATER_THAN_EQUALS", "long_value": "0"})},
        ),
    ],
)
def test_token_with_different_criteria(seeded: FlaskClient, first: dict, then: dict) -> None:
    token = get_list(seeded, page_size=2, **first)["next_page_token"]
    body = list_error(seeded, page_token=token, **then)
    assert body["error"] == LIST_OPTIONS + MISMATCH
    assert body["details"][0]["error_message"] == MISMATCH


def test_token_with_equivalent_filter_spelling_is_accepted(seeded: FlaskClient) -> None:
    snake = filter_param({"key": "created_at", "op": "GREATER_THAN", "long_value": "1000"})
    camel = filter_param({"key": "created_at", "op": 3, "longValue": 1000})
    first = get_list(seeded, page_size=2, filter=snake)
    second = get_list(seeded, page_size=2, page_token=first["next_page_token"], filter=camel)
    assert names(first) + names(second) == expected_names(rows=[r for r in ROWS if r["created_at"] > 1000])[:4]


VALID_TOKEN_PARTS = {"v": 1, "sort": "created_at", "desc": False, "filter": [], "start": [1000, _id(7)]}


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        "abc",  # bad padding
        b64(b"\xff\xfe not utf-8"),
        b64(b"plain text"),
        b64([1, 2]),
        b64({}),
        b64({**VALID_TOKEN_PARTS, "v": 2}),
        b64({**VALID_TOKEN_PARTS, "sort": "bogus"}),
        b64({**VALID_TOKEN_PARTS, "sort": "created_at", "start": ["1000", _id(7)]}),
        b64({**VALID_TOKEN_PARTS, "sort": "name", "start": [5, _id(7)]}),
        b64({**VALID_TOKEN_PARTS, "start": [1000, 7]}),
        b64({**VALID_TOKEN_PARTS, "start": [1000]}),
        b64({**VALID_TOKEN_PARTS, "start": [True, _id(7)]}),
        b64({**VALID_TOKEN_PARTS, "desc": "yes"}),
        b64({**VALID_TOKEN_PARTS, "filter": [["bogus", 1, "x"]]}),
        b64({**VALID_TOKEN_PARTS, "filter": [["name", 42, "x"]]}),
        b64({**VALID_TOKEN_PARTS, "filter": [["name", 1]]}),
        b64({**VALID_TOKEN_PARTS, "filter": {"name": "x"}}),
        # Numbers no database column can hold: SQLite and PostgreSQL used to fail with a 500 here.
        b64({**VALID_TOKEN_PARTS, "start": [10**30, _id(7)]}),
        b64({**VALID_TOKEN_PARTS, "start": [-(10**30), _id(7)]}),
        b64({**VALID_TOKEN_PARTS, "filter": [["created_at", 1, 10**30]]}),
        b64(b'{"v": 1, "sort": "name", "desc": false, "filter": [], "start": ["\\ud800", "x"]}'),
    ],
)
def test_invalid_page_token(seeded: FlaskClient, token: str) -> None:
    body = list_error(seeded, page_token=token)
    assert body["details"][0]["error_message"] == "Invalid package token."
    assert body["error"] == LIST_OPTIONS + "Invalid package token."


def test_forged_but_well_formed_token_is_a_position(seeded: FlaskClient) -> None:
    # Opaque to clients, but a well-formed token is simply a place to start: rows from (3000, id 1) on.
    token = b64({**VALID_TOKEN_PARTS, "start": [3000, _id(1)]})
    assert names(get_list(seeded, page_token=token)) == ["delta", "echo", "foxtrot", "golf"]
    token = b64({**VALID_TOKEN_PARTS, "start": [3000, _id(2)]})
    assert names(get_list(seeded, page_token=token)) == ["echo", "foxtrot", "golf"]


# ---------------------------------------------------------------------------------------------- filters


def _matching(predicate) -> list[str]:  # type: ignore[no-untyped-def]
    return expected_names(rows=[r for r in ROWS if predicate(r)])


FILTER_CASES = [
    # (predicates, python oracle)
    ([{"key": "name", "op": "EQUALS", "string_value": "charlie"}], lambda r: r["name"] == "charlie"),
    ([{"key": "name", "op": 1, "stringValue": "charlie"}], lambda r: r["name"] == "charlie"),
    ([{"key": "name", "op": "NOT_EQUALS", "string_value": "charlie"}], lambda r: r["name"] != "charlie"),
    ([{"key": "name", "op": 2, "string_value": "zulu"}], lambda r: True),
    ([{"key": "name", "op": "GREATER_THAN", "string_value": "delta"}], lambda r: r["name"] > "delta"),
    ([{"key": "name", "op": "LESS_THAN_EQUALS", "string_value": "delta"}], lambda r: r["name"] <= "delta"),
    ([{"key": "created_at", "op": "GREATER_THAN", "long_value": "2000"}], lambda r: r["created_at"] > 2000),
    ([{"key": "created_at", "op": 3, "longValue": 2000}], lambda r: r["created_at"] > 2000),
    ([{"key": "created_at", "op": "GREATER_THAN_EQUALS", "int_value": 3000}], lambda r: r["created_at"] >= 3000),
    ([{"key": "created_at", "op": 5, "intValue": 3000}], lambda r: r["created_at"] >= 3000),
    ([{"key": "created_at", "op": "LESS_THAN", "long_value": 3000}], lambda r: r["created_at"] < 3000),
    ([{"key": "created_at", "op": 6, "long_value": 3000}], lambda r: r["created_at"] < 3000),
    ([{"key": "created_at", "op": "LESS_THAN_EQUALS", "int_value": 1000}], lambda r: r["created_at"] <= 1000),
    ([{"key": "created_at", "op": 7, "int_value": 999}], lambda r: False),
    ([{"key": "created_at", "op": "EQUALS", "long_value": "3000"}], lambda r: r["created_at"] == 3000),
    # timestamp_value is compared as Unix seconds: 00:50:00 is 3000.
    (
        [{"key": "created_at", "op": "GREATER_THAN_EQUALS", "timestamp_value": "1970-01-01T00:50:00Z"}],
        lambda r: r["created_at"] >= 3000,
    ),
    (
        [{"key": "created_at", "op": "LESS_THAN", "timestampValue": "1970-01-01T01:50:00+01:00"}],
        lambda r: r["created_at"] < 3000,
    ),
    (
        [{"key": "created_at", "op": "GREATER_THAN", "timestamp_value": "2021-01-01T00:00:00Z"}],
        lambda r: False,
    ),
    ([{"key": "name", "op": "IN", "string_values": {"values": ["alpha", "golf", "zulu"]}}],
     lambda r: r["name"] in {"alpha", "golf"}),
    ([{"key": "name", "op": 8, "stringValues": {"values": ["echo"]}}], lambda r: r["name"] == "echo"),
    ([{"key": "name", "op": "IN", "string_values": {"values": []}}], lambda r: False),
    ([{"key": "created_at", "op": "IN", "long_values": {"values": ["1000", 5000]}}],
     lambda r: r["created_at"] in {1000, 5000}),
    ([{"key": "created_at", "op": "IN", "intValues": {"values": [2000, 4000]}}],
     lambda r: r["created_at"] in {2000, 4000}),
    ([{"key": "created_at", "op": "IN", "longValues": {"values": [3000]}}], lambda r: r["created_at"] == 3000),
    # IS_SUBSTRING is case-insensitive everywhere, and % and _ are literal characters.
    ([{"key": "description", "op": "IS_SUBSTRING", "string_value": "needle"}],
     lambda r: "needle" in r["description"].lower()),
    ([{"key": "description", "op": 9, "stringValue": "NEEDLE"}], lambda r: "needle" in r["description"].lower()),
    ([{"key": "description", "op": "IS_SUBSTRING", "string_value": "%"}], lambda r: "%" in r["description"]),
    ([{"key": "description", "op": "IS_SUBSTRING", "string_value": "_"}], lambda r: "_" in r["description"]),
    ([{"key": "description", "op": "IS_SUBSTRING", "string_value": "e%_o"}], lambda r: False),
    ([{"key": "name", "op": "IS_SUBSTRING", "string_value": "ha"}], lambda r: "ha" in r["name"]),
    ([{"key": "description", "op": "EQUALS", "string_value": ""}], lambda r: r["description"] == ""),
    ([{"key": "description", "op": "EQUALS", "string_value": "apple pie"}], lambda r: r["description"] == "apple pie"),
    ([{"key": "storage_state", "op": "EQUALS", "string_value": ARCHIVED}], lambda r: r["storage_state"] == ARCHIVED),
    ([{"key": "storage_state", "op": "NOT_EQUALS", "string_value": ARCHIVED}],
     lambda r: r["storage_state"] != ARCHIVED),
    ([{"key": "id", "op": "EQUALS", "string_value": _id(5)}], lambda r: r["id"] == _id(5)),
    ([{"key": "id", "op": "IN", "string_values": {"values": [_id(1), _id(2)]}}],
     lambda r: r["id"] in {_id(1), _id(2)}),
    ([{"key": "namespace", "op": "EQUALS", "string_value": ""}], lambda r: True),
    ([{"key": "namespace", "op": "EQUALS", "string_value": "kubeflow"}], lambda r: False),
    # Predicates are ANDed.
    (
        [
            {"key": "storage_state", "op": "EQUALS", "string_value": AVAILABLE},
            {"key": "created_at", "op": "LESS_THAN_EQUALS", "long_value": "3000"},
        ],
        lambda r: r["storage_state"] == AVAILABLE and r["created_at"] <= 3000,
    ),
    (
        [
            {"key": "name", "op": "GREATER_THAN", "string_value": "b"},
            {"key": "name", "op": "LESS_THAN", "string_value": "e"},
            {"key": "description", "op": "NOT_EQUALS", "string_value": ""},
        ],
        lambda r: "b" < r["name"] < "e" and r["description"] != "",
    ),
]


@pytest.mark.parametrize(("predicates", "oracle"), FILTER_CASES)
def test_filter(seeded: FlaskClient, predicates: list[dict], oracle) -> None:  # type: ignore[no-untyped-def]
    expected = _matching(oracle)
    body = get_list(seeded, filter=filter_param(*predicates))
    assert names(body) == expected
    assert body.get("total_size", 0) == len(expected)
    if not expected:
        assert body == {}


def test_filter_with_paging_and_sort(seeded: FlaskClient) -> None:
    not_bravo = filter_param({"key": "name", "op": "NOT_EQUALS", "string_value": "bravo"})
    pages = walk(seeded, 2, filter=not_bravo, sort_by="description desc")
    expected = expected_names("description", True, [r for r in ROWS if r["name"] != "bravo"])
    assert [n for page in pages for n in page] == expected
    assert len(pages) == 3


def test_filter_empty_predicates_lists_everything(seeded: FlaskClient) -> None:
    assert names(get_list(seeded, filter='{"predicates": []}')) == expected_names()
    assert names(get_list(seeded, filter="{}")) == expected_names()


FILTER_ERRORS = [
    ([{"key": "bogus", "op": "EQUALS", "string_value": "x"}],
     'no support for filtering on unrecognized field "bogus"'),
    ([{"key": "name", "op": "IN", "string_value": "x"}], "cannot use IN operator with scalar type"),
    ([{"key": "created_at", "op": "IN", "long_value": 3}], "cannot use IN operator with scalar type"),
    ([{"key": "name", "op": "EQUALS", "string_values": {"values": ["x"]}}],
     "cannot use scalar operator EQUALS on array type"),
    ([{"key": "created_at", "op": "LESS_THAN", "long_values": {"values": [1]}}],
     "cannot use scalar operator LESS_THAN on array type"),
    ([{"key": "name", "op": "IS_SUBSTRING", "long_value": 5}], "cannot use non string value type"),
    ([{"key": "created_at", "op": "IS_SUBSTRING", "string_value": "5"}], "cannot use non string value type"),
    ([{"key": "name", "op": "UNKNOWN", "string_value": "x"}], "invalid predicate operation: UNKNOWN"),
    ([{"key": "name", "op": 0, "string_value": "x"}], "invalid predicate operation: UNKNOWN"),
    ([{"key": "name", "string_value": "x"}], "invalid predicate operation: UNKNOWN"),
    ([{"key": "name", "op": "EQUALS"}], 'no value set for predicate on key "name"'),
]


@pytest.mark.parametrize(("predicates", "message"), FILTER_ERRORS)
def test_filter_validation_errors(seeded: FlaskClient, predicates: list[dict], message: str) -> None:
    body = list_error(seeded, filter=filter_param(*predicates))
    assert body["details"][0]["error_message"].startswith(message)
    assert body["error"] == LIST_OPTIONS + body["details"][0]["error_message"]


@pytest.mark.parametrize(
    "raw",
    [
        "{bad json",
        "[]",
        '"predicates"',
        '{"predicates": {}}',
        '{"predicates": [5]}',
        '{"predicates": [], "extra": 1}',
        '{"predicates": [{"key": "name", "op": "NOPE", "string_value": "x"}]}',
        '{"predicates": [{"key": "name", "op": 4, "string_value": "x"}]}',
        '{"predicates": [{"key": "name", "op": true, "string_value": "x"}]}',
        '{"predicates": [{"key": "name", "op": "EQUALS", "string_value": "x", "long_value": 1}]}',
        '{"predicates": [{"key": "name", "op": "EQUALS", "strange_value": "x"}]}',
        '{"predicates": [{"key": 5, "op": "EQUALS", "string_value": "x"}]}',
        '{"predicates": [{"key": "name", "op": "EQUALS", "string_value": 5}]}',
        '{"predicates": [{"key": "created_at", "op": "EQUALS", "long_value": "ten"}]}',
        '{"predicates": [{"key": "created_at", "op": "EQUALS", "int_value": 3000000000}]}',
        '{"predicates": [{"key": "created_at", "op": "EQUALS", "long_value": "99999999999999999999"}]}',
        '{"predicates": [{"key": "created_at", "op": "EQUALS", "timestamp_value": "yesterday"}]}',
        '{"predicates": [{"key": "created_at", "op": "EQUALS", "timestamp_value": "2021-01-01T00:00:00"}]}',
        '{"predicates": [{"key": "created_at", "op": "EQUALS", "timestamp_value": 5}]}',
        '{"predicates": [{"key": "name", "op": "IN", "string_values": ["x"]}]}',
        '{"predicates": [{"key": "name", "op": "IN", "string_values": {"values": "x"}}]}',
        '{"predicates": [{"key": "created_at", "op": "IN", "long_values": {"values": ["x"]}}]}',
        '{"predicates": [{"key": "name", "op": "EQUALS", "string_value": "\\ud800"}]}',
        "[" * 100_000,
    ],
)
def test_malformed_filter(seeded: FlaskClient, raw: str) -> None:
    body = list_error(seeded, filter=raw)
    message = body["details"][0]["error_message"]
    assert message.startswith("failed to parse valid filter from "), message
    assert body["error"] == LIST_OPTIONS + message


# ------------------------------------------------------------------------------- resource_reference_key


def test_reference_key_namespace_with_id_is_refused_in_single_user_mode(seeded: FlaskClient) -> None:
    for type_ in ("NAMESPACE", "5"):
        body = list_error(seeded, **{"resource_reference_key.type": type_, "resource_reference_key.id": "ns1"})
        message = "In single-user mode, ListExperiment cannot filter by namespace."
        assert body["error"] == "Invalid input error: " + message
        assert body["details"][0]["error_message"] == message


def test_reference_key_that_single_user_mode_ignores(seeded: FlaskClient) -> None:
    everything = expected_names()
    for params in (
        {"resource_reference_key.type": "NAMESPACE"},
        {"resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": ""},
        {"resourceReferenceKey.type": "NAMESPACE"},
        {"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": _id(1)},
        {"resource_reference_key.type": "JOB", "resource_reference_key.id": "j"},
        {"resource_reference_key.type": "PIPELINE_VERSION", "resource_reference_key.id": "v"},
    ):
        assert names(get_list(seeded, **params)) == everything, params


@pytest.mark.parametrize(
    ("params", "type_name"),
    [
        ({"resource_reference_key.type": "PIPELINE", "resource_reference_key.id": "p"}, "PIPELINE"),
        ({"resource_reference_key.type": "3"}, "PIPELINE"),
        ({"resource_reference_key.type": "UNKNOWN_RESOURCE_TYPE"}, "UNKNOWN_RESOURCE_TYPE"),
        ({"resource_reference_key.id": "only-an-id"}, "UNKNOWN_RESOURCE_TYPE"),
    ],
)
def test_reference_key_of_unsupported_type(seeded: FlaskClient, params: dict, type_name: str) -> None:
    body = list_error(seeded, **params)
    assert body["error"] == (
        "Validating filter failed.: Unrecognized resource reference type.: Invalid input error: "
        f"Unsupported resource type: {type_name}"
    )
    assert body["details"][0]["error_message"] == f"Unsupported resource type: {type_name}"


def test_reference_key_type_not_an_enum_value(seeded: FlaskClient) -> None:
    for type_ in ("BOGUS", "17", "experiment"):
        body = list_error(seeded, **{"resource_reference_key.type": type_})
        assert type_ in body["error"]


def test_list_options_are_checked_before_the_reference_key(seeded: FlaskClient) -> None:
    body = list_error(
        seeded, sort_by="foo", **{"resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": "ns"}
    )
    assert body["details"][0]["error_message"] == 'Invalid sorting field: "foo" on listable type Experiment'


# ------------------------------------------------------------------- many rows (function-scoped database)


def test_page_size_default_and_cap_over_many_rows(client: FlaskClient, app) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"id": _id(1000 + i), "name": f"bulk-{i:03d}", "description": "", "created_at": 100 + i // 3,
         "storage_state": AVAILABLE}
        for i in range(230)
    ]
    insert_experiments(app, rows)
    total = len(rows) + 1  # and the Default experiment, created at start-up (now, so last)
    expected = [r["name"] for r in rows] + ["Default"]

    for params in ({}, {"page_size": "0"}, {"page_size": ""}):
        body = get_list(client, **params)
        assert names(body) == expected[:20], params
        assert body["total_size"] == total
        assert "next_page_token" in body
    for size in ("200", "201", "1000", "2147483647"):
        body = get_list(client, page_size=size)
        assert names(body) == expected[:200], size
        second = get_list(client, page_size=size, page_token=body["next_page_token"])
        assert names(second) == expected[200:]
        assert second["total_size"] == total
        assert "next_page_token" not in second

    collected: list[str] = []
    token = None
    for _ in range(5):
        body = get_list(client, page_size=50, page_token=token)
        assert body["total_size"] == total
        collected += names(body)
        token = body.get("next_page_token")
    assert token is None
    assert collected == expected


def test_keyset_paging_is_stable_while_rows_are_added(client: FlaskClient, app) -> None:  # type: ignore[no-untyped-def]
    insert_experiments(app, [
        {"id": _id(i), "name": f"n{i}", "description": "", "created_at": 1000 + 10 * i, "storage_state": AVAILABLE}
        for i in range(1, 7)
    ])
    first = get_list(client, page_size=3)
    assert names(first) == ["n1", "n2", "n3"]
    # A row that sorts before the cursor must not shift the next page (as OFFSET paging would).
    insert_experiments(app, [
        {"id": _id(99), "name": "early", "description": "", "created_at": 1, "storage_state": AVAILABLE}
    ])
    second = get_list(client, page_size=3, page_token=first["next_page_token"])
    assert names(second) == ["n4", "n5", "n6"]
    assert second["total_size"] == 8  # six, "early" and Default
    assert names(get_list(client, page_size=3, page_token=second["next_page_token"])) == ["Default"]
