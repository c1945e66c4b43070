"""Cross-site requests are refused: the requests a browser sends for a hostile page (a text/plain or form POST
without preflight, a foreign Origin, a DNS-rebinding Host) get KFP error bodies and change nothing, while the
requests of the kfp client (JSON bodies, empty bodies, multipart uploads) pass. The guard reads headers only:
SQLite is enough."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests import hostile_page
from tests.gateway_errors import gateway_error
from tests.hostile_page import shell_workflow

only_sqlite = pytest.mark.parametrize("backend", ["sqlite"])

API = "/apis/v1beta1"
SERVER = "127.0.0.1:8888"
# What a hostile page would have the server run.
SHELL_WORKFLOW = shell_workflow("touch /tmp/pwned")
RUN_BODY = json.dumps({"name": "pwn", "pipeline_spec": {"workflow_manifest": SHELL_WORKFLOW}})


def browser(site: str, *, mode: str = "no-cors", content_type: str | None = None, **extra: str) -> dict[str, str]:
    """The headers Chrome sends for a request made by a page of `site` (an origin) to SERVER."""
    return hostile_page.browser(site, SERVER, mode=mode, content_type=content_type, **extra)


def send(client: FlaskClient, method: str, path: str, headers: dict[str, str], data: bytes | str = b"") -> Any:
    """The request exactly as given: Host (and no Content-Type unless one is given) as in `headers`."""
    headers = dict(headers)
    host = headers.pop("Host", SERVER)
    content_type = headers.pop("Content-Type", None)
    return client.open(path, method=method, headers=headers, data=data, content_type=content_type,
                       environ_overrides={"HTTP_HOST": host})


def kfp_error(response: Any, status: int, code: int) -> str:
    return gateway_error(response, status, code)["error"]


def upload_error(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error_message", "error_details"}, body
    return body["error_message"]


def run_count(client: FlaskClient) -> int:
    return int(client.get(f"{API}/runs", base_url=f"http://{SERVER}").get_json().get("total_size", 0))


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Any]:
    apps: list[Flask] = []

    def make(**changes: Any) -> FlaskClient:
        app = create_app(settings.replace(**changes))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        shutdown(app)


@only_sqlite
def test_simple_cross_site_posts_are_refused(client: FlaskClient) -> None:
    evil = "http://evil.example"
    # fetch(url, {method: "POST", mode: "no-cors", body: '{"name": ...}'}): text/plain, no preflight.
    fetched = send(client, "POST", f"{API}/runs", browser(evil, content_type="text/plain;charset=UTF-8"), RUN_BODY)
    assert "Cross-origin request refused: Origin 'http://evil.example' is not this server." in kfp_error(
        fetched, 403, 7)
    # <form enctype="text/plain" method="post"> whose one field spells the JSON body, and a urlencoded form.
    form = browser(evil, mode="navigate", content_type="text/plain", **{"Sec-Fetch-Dest": "document"})
    kfp_error(send(client, "POST", f"{API}/runs", form, RUN_BODY[:-2] + '="}'), 403, 7)
    urlencoded = {**form, "Content-Type": "application/x-www-form-urlencoded"}
    kfp_error(send(client, "POST", f"{API}/runs", urlencoded, "name=pwn"), 403, 7)
    # Browsers that send no Origin on a form post: the body type alone refuses it.
    for content_type, body in (("text/plain", RUN_BODY), ("application/x-www-form-urlencoded", "a=b"),
                               ("multipart/form-data; boundary=x", "--x\r\n\r\n--x--\r\n")):
        headers = {key: value for key, value in form.items() if key != "Origin"} | {"Content-Type": content_type}
        message = kfp_error(send(client, "POST", f"{API}/runs", headers, body), 415, 3)
        assert message == (f"Unsupported media type: Content-Type '{content_type}'. "
                           "This endpoint takes 'application/json'.")
    # A state change with an empty body, cross-site.
    experiment = client.post(f"{API}/experiments", json={"name": "mine"}).get_json()
    kfp_error(send(client, "POST", f"{API}/experiments/{experiment['id']}:archive", browser(evil)), 403, 7)
    kfp_error(send(client, "DELETE", f"{API}/experiments/{experiment['id']}", browser(evil, mode="cors")), 403, 7)
    # A sandboxed frame or a file: page sends "Origin: null".
    kfp_error(send(client, "POST", f"{API}/experiments/{experiment['id']}:archive", browser("null")), 403, 7)
    assert run_count(client) == 0
    assert client.get(f"{API}/experiments/{experiment['id']}").get_json()["storage_state"] == "STORAGESTATE_AVAILABLE"


@only_sqlite
def test_dns_rebinding_is_refused(client: FlaskClient) -> None:
    # attacker.example first resolved to the attacker, then to 127.0.0.1: the page is "same-origin" with
    # the server and may send JSON and read answers, but its requests carry its own name.
    site = "http://attacker.example:8888"
    same_origin = browser(site, mode="cors", content_type="application/json", Host="attacker.example:8888",
                          **{"Sec-Fetch-Site": "same-origin"})
    message = kfp_error(send(client, "POST", f"{API}/runs", same_origin, RUN_BODY), 400, 3)
    assert message.startswith("Invalid Host header 'attacker.example:8888': this server answers to localhost")
    read = {key: value for key, value in same_origin.items() if key not in ("Origin", "Content-Type")}
    kfp_error(send(client, "GET", f"{API}/runs", read), 400, 3)
    kfp_error(send(client, "GET", f"{API}/healthz", read), 400, 3)
    for bad in ("attacker.example", "localhost.attacker.example:8888", "127.0.0.1.nip.io:8888", "a b", "x:port",
                "[::1", "user@127.0.0.1:8888"):
        kfp_error(send(client, "GET", f"{API}/experiments", {"Host": bad}), 400, 3)
    assert run_count(client) == 0


@only_sqlite
def test_the_kfp_clients_requests_pass(client: FlaskClient) -> None:
    # What kfp_server_api sends: Content-Type application/json on every call, a body or none at all.
    kfp = {"Host": SERVER, "Content-Type": "application/json", "User-Agent": "OpenAPI-Generator/1.8.5/python",
           "Accept": "application/json"}
    experiment = send(client, "POST", f"{API}/experiments", kfp, json.dumps({"name": "e"})).get_json()
    for action in (":archive", ":unarchive"):
        assert send(client, "POST", f"{API}/experiments/{experiment['id']}{action}", kfp).status_code == 200
    assert send(client, "GET", f"{API}/experiments/{experiment['id']}", kfp).status_code == 200
    # Every name of the server: loopback names and addresses, any port.
    for host in ("127.0.0.1:8888", "localhost:8888", "[::1]:8888", "localhost", "127.0.0.1:9999", "LOCALHOST:8888",
                 "192.0.2.7:8888"):
        assert send(client, "GET", f"{API}/experiments", {"Host": host}).status_code == 200, host
    # curl -X POST: no body, no Content-Type.
    assert send(client, "POST", f"{API}/experiments/{experiment['id']}:archive", {"Host": SERVER}).status_code == 200
    # The server's own pages: Origin equal to the Host.
    own = {"Host": SERVER, "Origin": f"http://{SERVER}", "Content-Type": "application/json"}
    assert send(client, "DELETE", f"{API}/experiments/{experiment['id']}", own).status_code == 200
    # An upload is multipart, as the client sends it.
    data = {"uploadfile": (io.BytesIO(SHELL_WORKFLOW.encode()), "p.yaml")}
    uploaded = client.post(f"{API}/pipelines/upload", data=data, content_type="multipart/form-data",
                           base_url=f"http://{SERVER}")
    assert uploaded.status_code == 200, uploaded.get_json()


@only_sqlite
def test_wrong_body_types(client: FlaskClient) -> None:
    experiment = client.post(f"{API}/experiments", json={"name": "e"}).get_json()
    archive = f"{API}/experiments/{experiment['id']}:archive"
    assert kfp_error(send(client, "POST", archive, {"Content-Type": "text/plain"}), 415, 3) == (
        "Unsupported media type: Content-Type 'text/plain'. This endpoint takes 'application/json'.")
    assert kfp_error(send(client, "POST", f"{API}/experiments", {}, '{"name": "x"}'), 415, 3) == (
        "Unsupported media type: a body without a Content-Type. This endpoint takes 'application/json'.")
    chunked = client.post(f"{API}/experiments", input_stream=io.BytesIO(b'{"name": "x"}'),
                          headers={"Transfer-Encoding": "chunked"})
    kfp_error(chunked, 415, 3)
    # The upload endpoints take multipart only, and answer in their own error shape.
    for endpoint in ("upload", "upload_version"):
        for content_type in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
            message = upload_error(send(client, "POST", f"{API}/pipelines/{endpoint}",
                                        {"Content-Type": content_type}, "x"), 415)
            assert message.endswith("This endpoint takes 'multipart/form-data'.")
    # Reads take no body type; healthz ignores bodies on any method.
    assert send(client, "GET", f"{API}/experiments", {"Content-Type": "text/plain"}).status_code == 200
    assert send(client, "POST", f"{API}/healthz", {"Content-Type": "text/plain"}, "x").status_code == 200


@only_sqlite
def test_allowed_hosts(make_client: Any) -> None:
    proxied = make_client(allowed_hosts="kfp.example.com, other.example:8443")
    assert send(proxied, "GET", f"{API}/experiments", {"Host": "kfp.example.com"}).status_code == 200
    assert send(proxied, "GET", f"{API}/experiments", {"Host": "kfp.example.com:443"}).status_code == 200
    assert send(proxied, "GET", f"{API}/experiments", {"Host": "other.example:8443"}).status_code == 200
    kfp_error(send(proxied, "GET", f"{API}/experiments", {"Host": "other.example:8444"}), 400, 3)
    kfp_error(send(proxied, "GET", f"{API}/experiments", {"Host": "evil.example"}), 400, 3)
    # A proxy that rewrites Host: the page's origin is a listed name.
    page = {"Host": SERVER, "Origin": "https://kfp.example.com", "Content-Type": "application/json"}
    assert send(proxied, "POST", f"{API}/experiments", page, '{"name": "via-proxy"}').status_code == 200
    kfp_error(send(proxied, "POST", f"{API}/experiments", {**page, "Origin": "https://evil.example"}, "{}"), 403, 7)

    anywhere = make_client(allowed_hosts="*")
    assert send(anywhere, "GET", f"{API}/experiments", {"Host": "attacker.example:8888"}).status_code == 200
    # The wildcard is about Host only: a foreign Origin is still refused.
    kfp_error(send(anywhere, "POST", f"{API}/experiments", {"Origin": "http://evil.example",
                                                             "Content-Type": "application/json"}, "{}"), 403, 7)

    named = make_client(host="devbox.internal", auth="disabled")
    assert send(named, "GET", f"{API}/experiments", {"Host": "devbox.internal:8888"}).status_code == 200
    kfp_error(send(named, "GET", f"{API}/experiments", {"Host": "attacker.example:8888"}), 400, 3)


@only_sqlite
def test_with_authentication_host_is_checked_only_when_listed(make_client: Any) -> None:
    # Bearer tokens are never added by a browser on its own; such servers sit behind unknown names.
    open_names = make_client(host="0.0.0.0")
    response = send(open_names, "GET", f"{API}/experiments", {"Host": "pipelines.example.com"})
    assert response.status_code == 401
    kfp_error(send(open_names, "POST", f"{API}/experiments", {"Host": "pipelines.example.com",
                                                              "Origin": "http://evil.example"}), 403, 7)
    listed = make_client(host="0.0.0.0", allowed_hosts="pipelines.example.com")
    assert send(listed, "GET", f"{API}/experiments", {"Host": "pipelines.example.com"}).status_code == 401
    kfp_error(send(listed, "GET", f"{API}/experiments", {"Host": "attacker.example"}), 400, 3)


def test_a_malformed_allowed_hosts_setting_stops_the_server() -> None:
    for value in ("a b", "http://x", "x:port", "[::1"):
        with pytest.raises(ValueError, match="KFP_BACKEND_ALLOWED_HOSTS"):
            Settings.from_env({"KFP_BACKEND_ALLOWED_HOSTS": value})
    assert Settings.from_env({"KFP_BACKEND_ALLOWED_HOSTS": " A.example ,b.example:81,*"}).allowed_host_list == (
        "a.example", "b.example:81", "*")
