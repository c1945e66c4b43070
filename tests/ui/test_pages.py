"""The web UI over the Flask test client and a real database (SQLite: the pages add no SQL of their own):
every page answers, the API around it is unchanged, the session (signed, HttpOnly, SameSite=Strict, its key
shared through the database), CSRF, sign-in with a token, and the namespace rules. The browser tests
(test_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.all_services import Services
from kfp_backend.services.auth import AuthService

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
PAGES = ("/", "/runs", "/experiments", "/pipelines", "/recurring-runs", "/compare", "/runs/new",
         "/recurring-runs/new")


def csrf_of(client: FlaskClient, path: str = "/experiments") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def test_every_page_answers_with_authentication_off(client: FlaskClient, services: Services) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
        assert response.mimetype == "text/html"
    default = services.experiments.ensure_default()
    assert "Experiment Default" in client.get(f"/experiments/{default.id}").get_data(as_text=True)
    missing = client.get("/runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.get_data(as_text=True)


def test_the_api_around_the_ui_is_unchanged(client: FlaskClient) -> None:
    assert client.get("/apis/v1beta1/healthz").json["multi_user"] is False
    assert client.get("/metrics").status_code == 200
    missing = client.get("/apis/v1beta1/no-such-route")
    assert missing.status_code == 404 and missing.json["code"] == 5
    # A JSON route of the page scripts answers JSON errors.
    assert client.get("/ui/api/runs/no-such-run/nodes").json["code"] == 5


def test_the_session_cookie_is_httponly_samesite_strict(client: FlaskClient, app: Flask) -> None:
    page = client.get("/runs")
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    cookie = client.get_cookie("kfp_ui_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict" and not cookie.secure
    over_https = app.test_client().get("/runs", base_url="https://localhost").headers.getlist("Set-Cookie")
    assert over_https and all("Secure" in header for header in over_https)


def test_forms_need_the_sessions_csrf_token(client: FlaskClient, app: Flask) -> None:
    assert client.post("/experiments", data={"name": "forged"}).status_code == 403
    other = app.test_client()
    assert client.post("/experiments", data={"name": "forged", "csrf_token": csrf_of(other)}).status_code == 403
    created = client.post("/experiments", data={"name": "real", "csrf_token": csrf_of(client)})
    assert created.status_code == 302 and created.headers["Location"].startswith("/experiments/")


def test_every_replica_on_one_database_signs_with_the_same_key(app: Flask, settings: Settings) -> None:
    second = create_app(settings)
    try:
        assert second.secret_key == app.secret_key and len(str(app.secret_key)) >= 32
    finally:
        shutdown(second)
    configured = create_app(settings.replace(ui_secret_key="k" * 40))
    try:
        assert configured.secret_key == "k" * 40
    finally:
        shutdown(configured)


def test_the_next_fire_times_come_from_the_scheduler(client: FlaskClient) -> None:
    periodic = client.get("/ui/api/schedule-preview?kind=periodic&interval_seconds=90").json["times"]
    moments = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S UTC") for t in periodic]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(moments)] == [90.0] * 4
    cron = client.get("/ui/api/schedule-preview?kind=cron&cron=0 0 12 * * *").json["times"]
    assert len(cron) == 5 and all(t.endswith("12:00:00 UTC") for t in cron)
    refused = client.get("/ui/api/schedule-preview?kind=cron&cron=not a cron").json
    assert refused["times"] == [] and "invalid" in refused["error"]


# -- authentication on -------------------------------------------------------------------------------------


@pytest.fixture
def auth_app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(auth="required"))
    yield application
    shutdown(application)


def new_token(app: Flask, user: str, *namespaces: str) -> tuple[str, str]:
    info, secret = AuthService(app.extensions["kfp_backend.services"].db).create_token(user, namespaces)
    return secret, info.id


def test_the_experiments_list_filters_sorts_and_pages(client: FlaskClient) -> None:
    token = csrf_of(client)
    for index in range(30):
        name = f"{'alpha' if index % 2 else 'beta'}-{index:02d}"
        client.post("/experiments", data={"name": name, "description": f"d{29 - index:02d}", "csrf_token": token})
    def names(path: str) -> list[str]:
        return re.findall(r'/experiments/[^"]+">([^<]+)</a>', client.get(path).get_data(as_text=True))

    assert sorted(names("/experiments?name=alpha")) == [f"alpha-{i:02d}" for i in range(1, 30, 2)]
    first = names("/experiments?sort=name&desc=0")  # a page of 25 (the Default experiment may be among them)
    assert first == sorted(first) and len(first) == 25
    page = client.get("/experiments?sort=name&desc=0").get_data(as_text=True)
    next_link = re.search(r'<a href="([^"]+)" rel="next">', page)
    assert next_link is not None
    rest = names(next_link.group(1).replace("&amp;", "&"))
    assert rest == sorted(rest) and first[-1] < rest[0]
    assert {n for n in first + rest if n != "Default"} == {f"{w}-{i:02d}" for i in range(30)
                                                           for w in ("alpha", "beta") if (i % 2 == 1) == (w == "alpha")}
    by_description = names("/experiments?sort=description&desc=1&name=beta")
    assert by_description == [f"beta-{i:02d}" for i in range(0, 30, 2)]  # d29, d27, ... descending
    assert 'aria-sort="descending"' in client.get("/experiments?sort=description&desc=1").get_data(as_text=True)


def test_every_column_of_the_runs_list_sorts(client: FlaskClient) -> None:
    page = client.get("/runs?metrics=accuracy").get_data(as_text=True)
    assert 'unsortable' not in page and 'not sortable' not in page
    for field, label in (("name", "Name"), ("status", "Status"), ("duration", "Duration"),
                         ("created_at", "Start time"), ("pipeline_name", "Pipeline"), ("metric:accuracy", "accuracy")):
        # The active sort (start time, newest first) turns the other way when clicked again.
        desc = 0 if field == "created_at" else 1
        quoted = field.replace(":", "%3A")
        assert f'href="/runs?metrics=accuracy&amp;sort={quoted}&amp;desc={desc}" title="Sort by {label}' in page, field


def sign_in(client: FlaskClient, token: str, next_path: str = "/runs") -> FlaskClient:
    return client.post("/signin", data={"token": token, "next": next_path, "csrf_token": csrf_of(client, "/signin")})


def test_pages_want_a_sign_in_and_json_routes_a_401(auth_app: Flask) -> None:
    client = auth_app.test_client()
    redirected = client.get("/runs?name=x")
    assert redirected.status_code == 302 and redirected.headers["Location"] == "/signin?next=/runs?name%3Dx"
    assert client.get("/ui/api/runs/x/nodes").status_code == 401
    assert client.get("/ui/static/ui.css").status_code == 200  # the sign-in page's assets are open
    assert client.get("/apis/v1beta1/experiments").status_code == 401


def test_a_token_signs_in_once_and_revoking_it_ends_the_session(auth_app: Flask) -> None:
    client = auth_app.test_client()
    token, token_id = new_token(auth_app, "alice", "team-a")
    wrong = sign_in(client, "kfpb_" + "A" * 43)
    assert wrong.status_code == 401 and "not valid" in wrong.get_data(as_text=True)
    signed = sign_in(client, token, "/experiments")
    assert signed.status_code == 302 and signed.headers["Location"] == "/experiments"
    cookie = client.get_cookie("kfp_ui_session")
    assert cookie is not None and token not in cookie.value
    page = client.get("/runs").get_data(as_text=True)
    assert "Signed in as <strong>alice</strong>" in page and '<option value="team-a" selected>' in page
    AuthService(auth_app.extensions["kfp_backend.services"].db).revoke_token(token_id)
    assert client.get("/runs").status_code == 302


def test_signing_out_ends_the_session_on_the_server(auth_app: Flask) -> None:
    client = auth_app.test_client()
    token, _ = new_token(auth_app, "alice", "team-a")
    sign_in(client, token)
    cookie = client.get_cookie("kfp_ui_session")
    assert cookie is not None
    copy = auth_app.test_client()  # the same cookie, copied (another browser, a stolen copy)
    copy.set_cookie("kfp_ui_session", cookie.value)
    assert copy.get("/runs").status_code == 200
    signed_out = client.post("/signout", data={"csrf_token": csrf_of(client)})
    assert signed_out.status_code == 302 and signed_out.headers["Location"] == "/signin"
    assert client.get("/runs").status_code == 302
    refused = copy.get("/runs")
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/signin")
    assert copy.get("/ui/api/runs/x/nodes").status_code == 401
    # Signing in again starts a new session; the token itself was never revoked.
    sign_in(copy, token)
    assert copy.get("/runs").status_code == 200


def test_sign_in_goes_back_only_to_a_page_of_this_site(auth_app: Flask) -> None:
    token, _ = new_token(auth_app, "alice")
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        response = sign_in(auth_app.test_client(), token, target)
        assert response.headers["Location"] == "/runs", target


def test_the_namespace_picker_offers_only_the_tokens_namespaces(auth_app: Flask) -> None:
    client = auth_app.test_client()
    token, _ = new_token(auth_app, "alice", "team-a", "team-c")
    sign_in(client, token)
    picked = client.post("/namespace", data={"namespace": "team-c", "next": "/runs", "csrf_token": csrf_of(client)})
    assert picked.status_code == 302
    assert '<option value="team-c" selected>' in client.get("/runs").get_data(as_text=True)
    client.post("/namespace", data={"namespace": "team-b", "next": "/runs", "csrf_token": csrf_of(client)})
    page = client.get("/runs").get_data(as_text=True)
    assert "You may not use namespace &#39;team-b&#39;" in page and '<option value="team-c" selected>' in page


def test_another_namespaces_experiment_is_refused_with_a_clear_message(auth_app: Flask) -> None:
    owner, intruder = auth_app.test_client(), auth_app.test_client()
    sign_in(owner, new_token(auth_app, "alice", "team-a")[0])
    sign_in(intruder, new_token(auth_app, "bob", "team-b")[0])
    created = owner.post("/experiments", data={"name": "private", "csrf_token": csrf_of(owner)})
    experiment_path = created.headers["Location"]
    assert "Experiment private" in owner.get(experiment_path).get_data(as_text=True)
    refused = intruder.post(experiment_path + "/archive", data={"csrf_token": csrf_of(intruder)})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 403 and "Not allowed" in text and "bob" in text and "team-a" in text
    assert "private" not in intruder.get("/experiments").get_data(as_text=True)
