"""Authentication over HTTP: every route of the app refuses a request without a valid bearer token (the
route table is walked, so a new route cannot skip the check), healthz stays open, the modes, the trusted
user header, and the `token` commands of the CLI against a live database. With authentication on the
server is in multi-user mode: tests/api/test_namespaces.py walks the routes again for 403s."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient

from kfp_backend.api.auth import current_caller
from kfp_backend.app import BLUEPRINTS, create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.auth import AuthService
from kfp_backend.services.clock import now_seconds
from kfp_backend.store.models import ApiToken
from tests.databases import DatabaseFactory
from tests.gateway_errors import check_gateway_body, error_message

API = "/apis/v1beta1"
HEALTHZ = API + "/healthz"
PUBLIC_RULES = {HEALTHZ}
UPLOAD_RULES = {API + "/pipelines/upload", API + "/pipelines/upload_version"}
REPO_ROOT = Path(__file__).resolve().parents[2]
WHOAMI = API + "/test-whoami"
# In multi-user mode (authentication on) list calls name a namespace.
EXPERIMENTS_OF_TEAM_A = API + "/experiments?resource_reference_key.type=NAMESPACE&resource_reference_key.id=team-a"


def _settings(**values: object) -> Settings:
    """Settings for an app under test: no background work (the scheduler switch only where it exists)."""
    fields = {field.name for field in dataclasses.fields(Settings)}
    values = {"threads": 2, "executor_enabled": False, "scheduler_enabled": False, **values}
    return Settings(**{name: value for name, value in values.items() if name in fields})


def _route_table() -> Flask:
    """The app's routes, without a database: the blueprints create_app registers."""
    app = Flask("route-table")
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app


def _routes() -> list[tuple[str, str]]:
    cases = []
    for rule in _route_table().url_map.iter_rules():
        if not rule.rule.startswith(API + "/") or rule.rule in PUBLIC_RULES:
            continue
        cases += [(rule.rule, method) for method in sorted(rule.methods or ())]
    return sorted(set(cases))  # rules sharing a path share their implicit HEAD and OPTIONS


ROUTES = _routes()


def _url(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: f"dummy-{m.group(1)}", rule)


@dataclasses.dataclass
class Tokens:
    valid: str
    revoked: str
    expired: str


def _make_tokens(service: AuthService) -> Tokens:
    _, valid = service.create_token("alice", ["team-a"])
    revoked_info, revoked = service.create_token("mallory")
    service.revoke_token(revoked_info.id)
    expired_info, expired = service.create_token("eve", expires_at=now_seconds() + 3600)
    with service._db.transaction() as session:
        row = session.get(ApiToken, expired_info.id)
        assert row is not None
        row.expires_at = now_seconds() - 1
    return Tokens(valid=valid, revoked=revoked, expired=expired)


def _whoami() -> object:
    caller = current_caller()
    return jsonify({"user": caller.user, "namespaces": list(caller.namespaces), "token_id": caller.token_id,
                    "via": caller.via})


def _build(settings: Settings) -> Flask:
    app = create_app(settings)
    app.add_url_rule(WHOAMI, "test_whoami", _whoami, methods=["GET"])
    return app


@pytest.fixture(scope="module")
def walked(
    database_factories: dict[str, DatabaseFactory], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FlaskClient, Tokens]]:
    """One app with authentication required (on SQLite) for the whole route walk."""
    with database_factories["sqlite"].fresh() as url:
        app = _build(_settings(database_url=url, data_dir=tmp_path_factory.mktemp("auth") / "data",
                               auth="required"))
        try:
            tokens = _make_tokens(AuthService(app.extensions["kfp_backend.services"].db))
            yield app.test_client(), tokens
        finally:
            shutdown(app)


def _assert_401(response, rule: str, method: str, message: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, (method, rule, response.status_code, response.get_data(as_text=True))
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="kfp-backend"'
    if method == "HEAD":
        return
    body = response.get_json()
    if rule in UPLOAD_RULES:  # the upload endpoints' own error shape
        assert set(body) == {"error_message", "error_details"}, body
        text = body["error_message"]
    else:
        text = check_gateway_body(body, 16)["error"]
        if message is not None:
            assert error_message(body) == message
    assert text.startswith("Failed to authenticate the request: Unauthenticated: "), text


def test_the_route_walk_covers_the_app() -> None:
    assert len(ROUTES) >= 40, ROUTES
    assert {method for _, method in ROUTES} >= {"GET", "POST", "DELETE", "HEAD", "OPTIONS"}


def test_the_route_table_is_the_apps(walked: tuple[FlaskClient, Tokens]) -> None:
    """create_app adds no route that the walk (built from BLUEPRINTS) would miss."""
    client, _ = walked
    real = {(r.rule, m) for r in client.application.url_map.iter_rules() for m in r.methods or ()
            if r.rule.startswith(API + "/") and r.rule not in PUBLIC_RULES and r.rule != WHOAMI}
    assert real == set(ROUTES)


@pytest.mark.parametrize(("rule", "method"), ROUTES, ids=[f"{m} {r}" for r, m in ROUTES])
def test_every_route_requires_a_valid_token(walked: tuple[FlaskClient, Tokens], rule: str, method: str) -> None:
    client, tokens = walked
    url = _url(rule)

    def call(authorization: str | None):  # type: ignore[no-untyped-def]
        headers = {} if authorization is None else {"Authorization": authorization}
        return client.open(url, method=method, headers=headers)

    _assert_401(call(None), rule, method,
                "Request header error: there is no Authorization header; send 'Authorization: Bearer <token>'.")
    for malformed in ["Bearer", "Bearer ", f"Basic {tokens.valid}", "", tokens.valid, f"Token {tokens.valid}"]:
        _assert_401(call(malformed), rule, method,
                    "Request header error: the Authorization header is not 'Bearer <token>'.")
    _assert_401(call("Bearer kfpb_" + "A" * 43), rule, method, "The bearer token is not valid.")
    _assert_401(call(f"Bearer {tokens.valid}x"), rule, method, "The bearer token is not valid.")
    _assert_401(call("Bearer not a token"), rule, method, "The bearer token is malformed.")
    _assert_401(call(f"Bearer {tokens.revoked}"), rule, method, "The bearer token is revoked.")
    _assert_401(call(f"Bearer {tokens.expired}"), rule, method, "The bearer token is expired.")
    for good in (f"Bearer {tokens.valid}", f"bearer {tokens.valid}", f"BEARER   {tokens.valid} "):
        response = call(good)
        assert response.status_code != 401, (method, rule, response.get_data(as_text=True))
        assert response.status_code < 500, (method, rule, response.get_data(as_text=True))
        assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize("path", [API + "/nothing-here", API + "/experiments/x/y/z", "/apis/v1alpha1/runs",
                                  "/no-such-page", "/static/x.js", "/metrics/x", "/metric"])
def test_unknown_routes_answer_401_before_404(walked: tuple[FlaskClient, Tokens], path: str) -> None:
    client, tokens = walked
    without = client.get(path)
    _assert_401(without, path, "GET")
    # The same answer as for a route that exists: an unauthenticated caller learns nothing.
    assert without.get_data() == client.get(API + "/experiments").get_data()
    assert client.get(path, headers={"Authorization": f"Bearer {tokens.valid}"}).status_code == 404


def test_a_wrong_method_answers_401_before_405(walked: tuple[FlaskClient, Tokens]) -> None:
    client, tokens = walked
    _assert_401(client.put(API + "/experiments"), API + "/experiments", "PUT")
    with_token = client.put(API + "/experiments", headers={"Authorization": f"Bearer {tokens.valid}"})
    assert with_token.status_code == 405


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_healthz_is_always_open(walked: tuple[FlaskClient, Tokens], method: str) -> None:
    client, tokens = walked
    for headers in ({}, {"Authorization": "Basic x"}, {"Authorization": f"Bearer {tokens.revoked}"}):
        response = client.open(HEALTHZ, method=method, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        if method != "HEAD":
            # Authentication on: multi-user mode, namespaces isolated (the kfp client adds its namespace).
            assert json.loads(response.get_data())["multi_user"] is True


def test_metrics_are_open_to_get_only(walked: tuple[FlaskClient, Tokens]) -> None:
    """GET /metrics needs no credential (a scraper has none; it names no tenant: docs/auth.md, "Metrics");
    another method is an unknown route's 401."""
    client, tokens = walked
    for headers in ({}, {"Authorization": "Basic x"}, {"Authorization": f"Bearer {tokens.revoked}"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert b"kfp_backend_runs" in response.get_data()
    _assert_401(client.post("/metrics"), "/metrics", "POST")


def test_the_caller_is_the_tokens_user(walked: tuple[FlaskClient, Tokens]) -> None:
    client, tokens = walked
    response = client.get(WHOAMI, headers={"Authorization": f"Bearer {tokens.valid}"})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["user"], body["namespaces"], body["via"]) == ("alice", ["team-a"], "token")
    assert body["token_id"]


def test_tokens_are_never_logged(walked: tuple[FlaskClient, Tokens], caplog: pytest.LogCaptureFixture) -> None:
    client, tokens = walked
    with caplog.at_level(logging.DEBUG):
        for token in (tokens.valid, tokens.revoked, tokens.expired, "kfpb_" + "Z" * 43):
            client.get(API + "/experiments", headers={"Authorization": f"Bearer {token}"})
            client.get(API + "/nothing", headers={"Authorization": f"Bearer {token}"})
            client.post(API + "/pipelines/upload", headers={"Authorization": f"Bearer {token}"})
    assert caplog.records, "nothing was logged at DEBUG: the test would not see a leak"
    for token in (tokens.valid, tokens.revoked, tokens.expired, "Z" * 43):
        assert token not in caplog.text


# ------------------------------------------------------------------------------ modes, on every database


@pytest.fixture
def make_app(settings: Settings) -> Iterator:  # type: ignore[type-arg]
    apps: list[Flask] = []

    def make(**changes: object) -> Flask:
        app = _build(settings.replace(**changes))
        apps.append(app)
        return app

    yield make
    for app in apps:
        shutdown(app)


def _tokens_of(app: Flask) -> AuthService:
    return AuthService(app.extensions["kfp_backend.services"].db)


def test_required_mode_end_to_end(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(auth="required")
    client = app.test_client()
    info, token = _tokens_of(app).create_token("alice", ["team-a"])
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(EXPERIMENTS_OF_TEAM_A).status_code == 401
    created = client.post(API + "/experiments", headers=headers, json={
        "name": "authenticated", "resource_references": [
            {"key": {"type": "NAMESPACE", "id": "team-a"}, "relationship": "OWNER"}]})
    assert created.status_code == 200, created.get_json()
    listed = client.get(EXPERIMENTS_OF_TEAM_A, headers=headers).get_json()
    assert "authenticated" in [e["name"] for e in listed["experiments"]]
    _tokens_of(app).revoke_token(info.id)
    _assert_401(client.get(EXPERIMENTS_OF_TEAM_A, headers=headers), API + "/experiments", "GET",
                "The bearer token is revoked.")


@pytest.mark.parametrize(
    ("host", "mode", "open_"),
    [("127.0.0.1", "auto", True), ("::1", "auto", True), ("localhost", "auto", True), ("0.0.0.0", "auto", False),
     ("10.0.0.5", "auto", False), ("127.0.0.1", "required", False), ("0.0.0.0", "disabled", True)],
)
def test_modes(make_app, host: str, mode: str, open_: bool) -> None:  # type: ignore[no-untyped-def]
    client = make_app(host=host, auth=mode).test_client()
    response = client.get(API + "/experiments")
    assert response.status_code == (200 if open_ else 401), response.get_data(as_text=True)
    assert client.get(HEALTHZ).status_code == 200
    # Multi-user mode is on exactly when authentication is.
    assert client.get(HEALTHZ).get_json()["multi_user"] is (not open_)
    if open_:
        assert client.get(WHOAMI).get_json() == {"user": "", "namespaces": [], "token_id": None, "via": "none"}
        # With authentication off, credentials are not looked at: a bad one does not fail the request.
        assert client.get(API + "/experiments", headers={"Authorization": "Bearer nope"}).status_code == 200


def test_the_trusted_user_header(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(auth="required", trust_user_header=True).test_client()
    response = client.get(WHOAMI, headers={"kubeflow-userid": "alice@example.com"})
    assert response.get_json() == {"user": "alice@example.com", "namespaces": [], "token_id": None,
                                   "via": "user-header"}
    assert client.get(EXPERIMENTS_OF_TEAM_A, headers={"Kubeflow-UserID": "bob"}).status_code == 200
    # The proxy's header wins over an Authorization header that is not one of ours.
    assert client.get(WHOAMI, headers={"kubeflow-userid": "carol", "Authorization": "Bearer x.y.z"}).get_json()[
        "user"] == "carol"
    twice = client.get(API + "/experiments", headers=[("kubeflow-userid", "a"), ("kubeflow-userid", "b")])
    _assert_401(twice, API + "/experiments", "GET", "Header 'kubeflow-userid' must appear exactly once.")
    _assert_401(client.get(API + "/experiments", headers={"kubeflow-userid": " "}), API + "/experiments", "GET",
                "Request header error: user identity is empty.")
    _assert_401(client.get(API + "/experiments"), API + "/experiments", "GET")
    # Without the header a token still works.
    _, token = _tokens_of(client.application).create_token("dave")
    assert client.get(WHOAMI, headers={"Authorization": f"Bearer {token}"}).get_json()["user"] == "dave"


def test_the_user_header_is_ignored_unless_trusted(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(auth="required").test_client()
    _assert_401(client.get(API + "/experiments", headers={"kubeflow-userid": "alice"}), API + "/experiments",
                "GET")


def test_the_user_header_name_is_configurable(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(auth="required", trust_user_header=True, user_header="X-Forwarded-User").test_client()
    assert client.get(WHOAMI, headers={"x-forwarded-user": "alice"}).get_json()["user"] == "alice"
    _assert_401(client.get(API + "/experiments", headers={"kubeflow-userid": "alice"}), API + "/experiments",
                "GET")


def test_a_trusted_header_names_the_caller_when_authentication_is_off(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(auth="disabled", trust_user_header=True).test_client()
    assert client.get(WHOAMI, headers={"kubeflow-userid": "alice"}).get_json()["user"] == "alice"
    assert client.get(WHOAMI).get_json()["via"] == "none"


# ------------------------------------------------------------------------------------------------- CLI


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_BACKEND_")}
    return subprocess.run(
        [sys.executable, "-m", "kfp_backend", "token", *args, "--data-dir", str(data_dir)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_token_commands(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    created = _cli("create", "--user", "alice", "--namespace", "team-a", "--expires", "30d", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert re.fullmatch(r"kfpb_[A-Za-z0-9_-]{43}", token), created.stdout
    assert "shown only this once" in created.stderr and token not in created.stderr

    listed = _cli("list", "--json", data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert token not in listed.stdout and token[11:] not in listed.stdout
    (row,) = json.loads(listed.stdout)
    assert (row["user"], row["namespaces"], row["state"], row["prefix"]) == ("alice", ["team-a"], "active", token[:11])
    assert row["expires_at"].endswith("Z") and row["revoked_at"] is None
    table = _cli("list", data_dir=data_dir)
    assert table.returncode == 0 and row["id"] in table.stdout and "active" in table.stdout
    assert token not in table.stdout

    app = _build(_settings(data_dir=data_dir, auth="required"))
    try:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get(EXPERIMENTS_OF_TEAM_A, headers=headers).status_code == 200
        # The namespaces given at creation are enforced.
        assert client.get(EXPERIMENTS_OF_TEAM_A.replace("team-a", "team-b"), headers=headers).status_code == 403
        revoked = _cli("revoke", row["id"], data_dir=data_dir)
        assert revoked.returncode == 0, revoked.stderr
        _assert_401(client.get(EXPERIMENTS_OF_TEAM_A, headers=headers), API + "/experiments", "GET",
                    "The bearer token is revoked.")
    finally:
        shutdown(app)
    assert json.loads(_cli("list", "--json", data_dir=data_dir).stdout)[0]["state"] == "revoked"
    assert _cli("revoke", row["id"], data_dir=data_dir).returncode == 0  # already revoked: fine

    missing = _cli("revoke", "no-such-token", data_dir=data_dir)
    assert missing.returncode == 1 and "Token no-such-token not found." in missing.stderr
    for bad in (["--user", ""], ["--user", "x", "--expires", "yesterday"], ["--user", "x", "--namespace", "Bad"]):
        refused = _cli("create", *bad, data_dir=data_dir)
        assert refused.returncode == 1 and refused.stdout == "", (bad, refused.stdout, refused.stderr)
    assert _cli("create", data_dir=data_dir).returncode == 2  # --user is required
    assert len(json.loads(_cli("list", "--json", data_dir=data_dir).stdout)) == 1


@pytest.mark.parametrize("command", [[], ["create"], ["list"], ["revoke"]])
def test_token_commands_have_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from kfp_backend import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["token", *command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kfp-backend token")
    if command:
        assert "--database-url" in out and "--data-dir" in out
