"""Every failure is a JSON error body with the status of its gRPC code: never HTML, never a traceback, and
never a 5xx for bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app
from kfp_backend.config import Settings
from kfp_backend.services import errors
from tests.gateway_errors import gateway_error

EXPERIMENTS = "/apis/v1beta1/experiments"


def post_raw(client: FlaskClient, data: bytes | str, content_type: str = "application/json"):  # type: ignore[no-untyped-def]
    return client.post(EXPERIMENTS, data=data, content_type=content_type)


def test_bad_request_bodies(client: FlaskClient) -> None:
    cases: list[tuple[bytes | str, str]] = [
        ("{", "Malformed JSON request body: "),
        ('{"name": "x",}', "Malformed JSON request body: "),
        ("name=x", "Malformed JSON request body: "),
        (b"\xff\xfe\xfa", "Malformed JSON request body: "),
        ('{"name": "a\\ud800b"}', "Malformed JSON request body: "),  # a lone surrogate no database can store
        ("[" * 100_000 + "]" * 100_000, "Malformed JSON request body: "),  # deeper than the parser goes
        ('[{"name": "x"}]', "The request body must be a JSON object."),
        ('"x"', "The request body must be a JSON object."),
        ("5", "The request body must be a JSON object."),
        ("null", "The request body must be a JSON object."),
    ]
    for data, message in cases:
        body = gateway_error(post_raw(client, data), 400, 3)
        assert body["details"][0]["error_message"].startswith(message), (data[:20], body)
    names = [e["name"] for e in client.get(EXPERIMENTS).get_json()["experiments"]]
    assert names == ["Default"]


def test_json_body_with_other_content_type_is_refused(client: FlaskClient) -> None:
    # A JSON endpoint takes application/json only (see tests/api/test_request_guard.py).
    body = gateway_error(post_raw(client, '{"name": "plain"}', "text/plain"), 415, 3)
    assert body["error"] == "Unsupported media type: Content-Type 'text/plain'. This endpoint takes 'application/json'."
    assert post_raw(client, '{"name": "plain"}', "application/json; charset=utf-8").status_code == 200


def test_values_a_database_cannot_store_are_client_errors(client: FlaskClient, backend: str) -> None:
    nul_filter = json.dumps({"predicates": [{"key": "name", "op": "EQUALS", "string_value": "a\u0000b"}]})
    responses = [
        client.post(EXPERIMENTS, json={"name": "a\u0000b"}),
        client.post(EXPERIMENTS, json={"name": "ok", "description": "a\u0000b"}),
        client.get(f"{EXPERIMENTS}/a%00b"),
        client.delete(f"{EXPERIMENTS}/a%00b"),
        client.post(f"{EXPERIMENTS}/a%00b:archive"),
        client.get(EXPERIMENTS, query_string={"filter": nul_filter}),
    ]
    for response in responses:
        assert response.status_code < 500, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
    if backend == "postgres":
        # PostgreSQL text cannot hold NUL: the request is refused as invalid input, not a server fault.
        for response in responses:
            body = gateway_error(response, 400, 3)
            assert "NUL" in body["error"]


# Routing, body limits and the error mapping do not involve the database: SQLite is enough.
only_sqlite = pytest.mark.parametrize("backend", ["sqlite"])


@only_sqlite
def test_unknown_route(client: FlaskClient) -> None:
    for path in ("/apis/v1beta1/nope", "/apis/v1beta1/experiments/a/b", "/apis/v3beta1/experiments", "/no-such-page",
                 "/x.html"):
        for method in ("GET", "POST", "DELETE"):
            response = client.open(path, method=method, headers={"Accept": "text/html"})
            body = gateway_error(response, 404, 5)
            assert body["error"] == "Not Found"


@only_sqlite
def test_wrong_method(client: FlaskClient) -> None:
    for method, path in (
        ("PUT", EXPERIMENTS),
        ("DELETE", EXPERIMENTS),
        ("PATCH", f"{EXPERIMENTS}/some-id"),
        ("POST", f"{EXPERIMENTS}/some-id"),
        ("PUT", f"{EXPERIMENTS}/some-id:archive"),
    ):
        response = client.open(path, method=method, headers={"Accept": "text/html"})
        body = gateway_error(response, 405, 12)
        assert body["error"] == "Method Not Allowed"
        assert response.headers["Allow"]


@pytest.fixture
def small_app(settings: Settings) -> Iterator[Flask]:
    # The body limit is the upload limit plus 1 MiB of multipart framing.
    application = create_app(settings.replace(max_upload_bytes=1024))
    yield application
    application.extensions["kfp_backend.services"].db.dispose()


@only_sqlite
def test_oversize_body(small_app: Flask) -> None:
    client = small_app.test_client()
    payload = json.dumps({"name": "big", "description": "x" * (2 << 20)})
    body = gateway_error(client.post(EXPERIMENTS, data=payload, content_type="application/json"), 413, 8)
    assert body["error"] == "Request Entity Too Large"
    assert [e["name"] for e in client.get(EXPERIMENTS).get_json()["experiments"]] == ["Default"]
    # Under the limit is fine (the description stays below MariaDB's 64 KiB TEXT column).
    ok = client.post(EXPERIMENTS, json={"name": "fits", "description": "x" * 60_000})
    assert ok.status_code == 200


ERROR_MAPPING = [
    # (raised, HTTP status, gRPC code, error (internal chain), error_message (external))
    (errors.InvalidArgument("bad"), 400, 3, "Invalid input error: bad", "bad"),
    (errors.NotFound.resource("Thing", "t1"), 404, 5, "ResourceNotFoundError: Thing t1 not found.",
     "Thing t1 not found."),
    (errors.AlreadyExists("dup"), 409, 6, "Already exist error: dup", "dup"),
    (errors.PermissionDenied("no"), 403, 7, "PermissionDenied: no", "no"),
    (errors.FailedPrecondition("not yet"), 400, 9, "FailedPreconditionError: not yet", "not yet"),
    (errors.Aborted("busy"), 409, 10, "BadRequestError: busy", "busy"),
    (errors.Unauthenticated("who"), 401, 16, "Unauthenticated: who", "who"),
    (errors.Internal("disk on fire"), 500, 13, "InternalServerError: disk on fire", "Internal Server Error"),
    (errors.InvalidArgument("leaf").wrap("inner").wrap("outer"), 400, 3, "outer: inner: Invalid input error: leaf",
     "leaf"),
]


@only_sqlite
def test_error_mapping(client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    service = app.extensions["kfp_backend.services"].experiments
    for raised, status, code, internal, external in ERROR_MAPPING:
        def fail(_id: str, *, caller: object, raised: Exception = raised) -> None:
            raise raised

        monkeypatch.setattr(service, "get", fail)
        body = gateway_error(client.get(f"{EXPERIMENTS}/x"), status, code)
        assert body["error"] == internal
        assert body["details"][0]["error_message"] == external


@only_sqlite
def test_unexpected_exception_is_a_json_500(client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(_id: str, *, caller: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(app.extensions["kfp_backend.services"].experiments, "get", fail)
    body = gateway_error(client.get(f"{EXPERIMENTS}/x"), 500, 13)
    assert body["error"] == "InternalServerError: RuntimeError: kaboom"
    assert body["details"][0]["error_message"] == "Internal Server Error"
    # The server keeps serving.
    assert client.get(EXPERIMENTS).status_code == 200
