"""Multi-user mode: pipeline URLs may not make the server reach loopback, private or link-local addresses
(server-side request forgery) unless KFP_BACKEND_PIPELINE_URL_ALLOWED_HOSTS names them; every redirect is
checked again, and the connection goes to the address that was checked. On every database.

The package server of these tests listens on 127.0.0.1: a multi-user server is refused it, one whose
allow-list names it downloads from it.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.auth import AuthService
from tests.gateway_errors import error_message, gateway_error
from tests.http_server import Route, RouteServer, route_server, without_proxies

API = "/apis/v1beta1"
WORKFLOW = b"""\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: guarded-
spec:
  entrypoint: say
  templates:
    - name: say
      container:
        image: alpine:3.19
        command: [echo, hi]
"""
REFUSED = ("Please specify a valid URL: in multi-user mode the server does not download from loopback, private, "
           "link-local or other non-public addresses")


def _routes(port: int) -> dict[str, Route]:
    return {
        "/p.yaml": (200, WORKFLOW, {}),
        "/to-loopback.yaml": (302, b"", {"Location": f"http://127.0.0.1:{port}/p.yaml"}),
        "/to-localhost.yaml": (302, b"", {"Location": f"http://localhost:{port}/p.yaml"}),
        "/to-file": (302, b"", {"Location": "file:///etc/hostname"}),
        "/big.yaml": (200, b"#" * 5000, {}),
        "/broken.yaml": (500, b"oops", {}),
    }


@pytest.fixture(scope="module")
def packages() -> Iterator[RouteServer]:
    with route_server(_routes) as server:
        yield server


@pytest.fixture
def seen(packages: RouteServer) -> list[tuple[str, str | None]]:
    """The requests the package server received during the test: (path, Host header)."""
    packages.seen.clear()
    return packages.seen


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    without_proxies(monkeypatch)


class Admin:
    """A multi-user server and a token not limited by namespace."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def create_pipeline(self, url: str, name: str = "") -> Any:
        return self.client.post(f"{API}/pipelines", headers=self.headers,
                                json={"name": name, "url": {"pipeline_url": url}})

    def create_version(self, pipeline_id: str, url: str, name: str = "v") -> Any:
        return self.client.post(f"{API}/pipeline_versions", headers=self.headers, json={
            "name": name, "package_url": {"pipeline_url": url},
            "resource_references": [{"key": {"type": "PIPELINE", "id": pipeline_id}, "relationship": "OWNER"}]})

    def upload(self, name: str) -> str:
        response = self.client.post(f"{API}/pipelines/upload", headers=self.headers, query_string={"name": name},
                                    data={"uploadfile": (io.BytesIO(WORKFLOW), "p.yaml")},
                                    content_type="multipart/form-data")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["id"]


@contextmanager
def multi_user(settings: Settings, allowed: str = "", **values: Any) -> Iterator[Admin]:
    app = create_app(settings.replace(auth="required", pipeline_url_allowed_hosts=allowed, **values))
    try:
        _, token = AuthService(app.extensions["kfp_backend.services"].db).create_token("admin")
        yield Admin(app.test_client(), token)
    finally:
        shutdown(app)


def _refusal(response: Any) -> str:
    body = gateway_error(response, 400, 3)
    assert body["error"].startswith("Create pipeline")
    return error_message(body)


def test_urls_of_non_public_addresses_are_refused(settings: Settings, packages: RouteServer,
                                                  seen: list[tuple[str, str | None]]) -> None:
    port = packages.port
    with multi_user(settings) as admin:
        pipeline_id = admin.upload("uploaded")
        for host in ("127.0.0.1", "localhost", "127.1.2.3", "[::1]", "0.0.0.0", "169.254.169.254", "10.0.0.1",
                     "[::ffff:127.0.0.1]"):
            url = f"http://{host}:{port}/p.yaml"
            for response in (admin.create_pipeline(url), admin.create_version(pipeline_id, url)):
                message = _refusal(response)
                assert message.startswith(f"Invalid Pipeline URL {url}. {REFUSED}, and "), message
                assert message.endswith("KFP_BACKEND_PIPELINE_URL_ALLOWED_HOSTS."), message
        assert seen == []  # refused before any connection
        listed = admin.client.get(f"{API}/pipeline_versions", headers=admin.headers,
                                  query_string={"resource_key.type": "PIPELINE", "resource_key.id": pipeline_id})
        assert len(listed.get_json()["versions"]) == 1


@pytest.mark.parametrize("allowed", ["127.0.0.1", "127.0.0.0/8", "localhost", "*.localhost, localhost"])
def test_the_allow_list_lets_named_hosts_through(settings: Settings, packages: RouteServer,
                                                 seen: list[tuple[str, str | None]], allowed: str) -> None:
    port = packages.port
    host = "localhost" if "localhost" in allowed else "127.0.0.1"
    url = f"http://{host}:{port}/p.yaml"
    with multi_user(settings, allowed) as admin:
        created = admin.create_pipeline(url)
        assert created.status_code == 200, created.get_data(as_text=True)
        assert created.get_json()["name"] == "p.yaml"
        version = admin.create_version(created.get_json()["id"], url)
        assert version.status_code == 200, version.get_data(as_text=True)
        assert seen == [("/p.yaml", f"{host}:{port}")] * 2
        # What the list does not name stays refused.
        _refusal(admin.create_pipeline(f"http://[::1]:{port}/p.yaml"))


def test_every_redirect_is_checked(settings: Settings, packages: RouteServer,
                                   seen: list[tuple[str, str | None]]) -> None:
    port = packages.port
    with multi_user(settings, "localhost") as admin:
        url = f"http://localhost:{port}/to-loopback.yaml"
        message = _refusal(admin.create_pipeline(url))
        assert message.startswith(
            f"Invalid Pipeline URL {url}. {REFUSED}, and 127.0.0.1 (redirected to http://127.0.0.1:{port}/p.yaml) "
            "resolves to one."), message
        assert [path for path, _ in seen] == ["/to-loopback.yaml"]  # the redirect was not followed
        assert "Failed to download the pipeline" in _refusal(admin.create_pipeline(f"http://localhost:{port}/to-file"))
    with multi_user(settings, "localhost, 127.0.0.1") as admin:
        created = admin.create_pipeline(f"http://localhost:{port}/to-loopback.yaml")
        assert created.status_code == 200, created.get_data(as_text=True)
        assert created.get_json()["name"] == "to-loopback.yaml"


def test_the_connection_goes_to_the_checked_address(settings: Settings, packages: RouteServer,
                                                    seen: list[tuple[str, str | None]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name resolves to an allowed address when checked and to another one afterwards; the
    download still goes to the checked address, with the URL's Host header."""
    port = packages.port
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return real(next(answers, "127.0.0.2"), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with multi_user(settings, "127.0.0.1") as admin:
        created = admin.create_pipeline(f"http://rebind.test:{port}/p.yaml")
        assert created.status_code == 200, created.get_data(as_text=True)
        assert seen == [("/p.yaml", f"rebind.test:{port}")]
        # Checked again at the next download: now it resolves to an address the list does not cover.
        message = _refusal(admin.create_pipeline(f"http://rebind.test:{port}/p.yaml", name="again"))
        assert "and rebind.test resolves to one" in message
        assert len(seen) == 1


def test_limits_and_failures_in_multi_user_mode(settings: Settings, packages: RouteServer) -> None:
    port = packages.port
    with multi_user(settings, "127.0.0.1", max_upload_bytes=4096) as admin:
        assert _refusal(admin.create_pipeline(f"http://127.0.0.1:{port}/big.yaml")) == (
            "File size too large. Maximum supported size: 4096")
        for path in ("/broken.yaml", "/missing.yaml"):
            assert _refusal(admin.create_pipeline(f"http://127.0.0.1:{port}{path}")).startswith(
                f"Failed to download the pipeline from http://127.0.0.1:{port}{path}")
        unresolvable = "http://no-such-host.invalid/p.yaml"
        assert _refusal(admin.create_pipeline(unresolvable)).startswith("Failed to download the pipeline")


def test_single_user_mode_downloads_from_anywhere(settings: Settings, packages: RouteServer) -> None:
    app = create_app(settings.replace(auth="disabled"))
    try:
        url = f"http://127.0.0.1:{packages.port}/to-localhost.yaml"
        created = app.test_client().post(f"{API}/pipelines", json={"url": {"pipeline_url": url}})
        assert created.status_code == 200, created.get_data(as_text=True)
    finally:
        shutdown(app)
