"""A tiny HTTP server in a thread, answering GET requests from a table of routes, for the tests in which the
server downloads a pipeline package from a URL; and `served_app`, a WSGI app behind a real threaded HTTP server,
for tests of concurrent requests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from werkzeug.serving import make_server

# What a route answers: status, body, extra headers.
Route = tuple[int, bytes, Mapping[str, str]]
NOT_FOUND: Route = (404, b"not found", {})
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class RouteServer(ThreadingHTTPServer):
    """Serves `routes` by path (the query included) on 127.0.0.1 and records each request in `seen`."""

    daemon_threads = True

    def __init__(self, handler: type[RouteHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, str | None]] = []  # (path, Host header) of every request

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RouteHandler(BaseHTTPRequestHandler):
    """Answers a GET with its route (NOT_FOUND without one); subclasses may answer some paths otherwise."""

    server: RouteServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host")))
        status, body, headers = self.server.routes.get(self.path, NOT_FOUND)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def route_server(
    routes: Mapping[str, Route] | Callable[[int], Mapping[str, Route]], handler: type[RouteHandler] = RouteHandler
) -> Iterator[RouteServer]:
    """A running RouteServer; `routes` may be a function of its port (for redirects that name it)."""
    server = RouteServer(handler)
    server.routes.update(routes(server.port) if callable(routes) else routes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the environment: downloads from 127.0.0.1 go straight to the route server."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@contextmanager
def served_app(app: Any) -> Iterator[str]:
    """`app` served on 127.0.0.1 by a threaded HTTP server (a thread per connection) until exit; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
