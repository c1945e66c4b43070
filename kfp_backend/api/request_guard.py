"""Refuse what a web page could make a developer's browser send to this server (cross-site requests, DNS
rebinding): a `Host` that does not name this server (400), a state-changing request from another `Origin`
(403), a body that is not the endpoint's `Content-Type` (415). Host and Origin are checked before
authentication, Content-Type after it. The rules and their reasons: docs/auth.md, "Browsers and cross-site
requests"."""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from flask import Flask, current_app, request

from kfp_backend.api.browser import is_browser_request
from kfp_backend.api.errors import UPLOAD_ENDPOINTS, RequestRefused
from kfp_backend.config import Settings, split_host

log = logging.getLogger(__name__)

EXTENSION = "kfp_backend.request_guard"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Endpoints that read no body at all (healthz answers any method).
BODILESS_ENDPOINTS = frozenset({"healthz.healthz", "v2_healthz.healthz"})
JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RequestGuard:
    """The three checks, configured once from the settings."""

    def __init__(self, settings: Settings) -> None:
        entries = settings.allowed_host_list
        self.any_host = "*" in entries
        # With authentication required and no list, Host is not checked (see the module's docstring).
        self.check_host = not self.any_host and (bool(entries) or not settings.auth_required)
        self.listed = [parsed for entry in entries if entry != "*" and (parsed := split_host(entry))]
        bound = split_host(settings.host)
        self.bound_name = bound[0] if bound and settings.host.strip() not in _WILDCARD_BINDS else None

    def describe(self) -> str:
        if not self.check_host:
            return "Host header not checked" + (" (KFP_BACKEND_ALLOWED_HOSTS=*)" if self.any_host else "")
        names = ["localhost", "IP addresses"]
        if self.bound_name:
            names.append(self.bound_name)
        names += [name if port is None else f"{name}:{port}" for name, port in self.listed]
        return "Host header must name " + ", ".join(names)

    def host_allowed(self, name: str, port: int | None) -> bool:
        if not self.check_host or name in ("localhost", self.bound_name) or _is_ip_address(name):
            return True
        return self._listed(name, port)

    def _listed(self, name: str, port: int | None) -> bool:
        return any(name == entry and (entry_port is None or port == entry_port) for entry, entry_port in self.listed)

    def origin_allowed(self, origin: str, host: tuple[str, int | None] | None) -> bool:
        """Whether `origin` (an Origin header) is this server's own: the Host's name and port (an absent
        port being the origin scheme's default), or a listed name."""
        try:
            parts = urlsplit(origin.strip())
            name, port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            return False
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not name:
            return False  # "null" (a sandboxed frame, a file: page) and other schemes are never ours
        default = _DEFAULT_PORTS[scheme]
        if host is not None and name == host[0] and (port or default) == (host[1] or default):
            return True
        return self._listed(name, port)


def _is_ip_address(name: str) -> bool:
    # An address is never a rebinding: the browser connects to exactly that address.
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _guard() -> RequestGuard:
    return current_app.extensions[EXTENSION]


def check_host_and_origin() -> None:
    guard = _guard()
    raw_host = request.headers.get("Host")
    host = split_host(raw_host) if raw_host is not None else None
    if raw_host is not None and (host is None or not guard.host_allowed(*host)):
        log.warning("refused %s %s: Host %r is not a name of this server", request.method, request.path, raw_host)
        raise RequestRefused(
            400,
            f"Invalid Host header {raw_host!r}: this server answers to localhost, its IP addresses and the names "
            "set in KFP_BACKEND_ALLOWED_HOSTS.",
        )
    origin = request.headers.get("Origin")
    if request.method in UNSAFE_METHODS and origin is not None and not guard.origin_allowed(origin, host):
        log.warning("refused %s %s: cross-origin request from %r", request.method, request.path, origin)
        raise RequestRefused(
            403,
            f"Cross-origin request refused: Origin {origin!r} is not this server. Requests that change state "
            "are accepted from this server's own pages and from clients that send no Origin.",
        )


def check_content_type() -> None:
    """A body must be of the endpoint's type; a request without a body may omit Content-Type."""
    if request.method not in UNSAFE_METHODS or request.endpoint is None or request.endpoint in BODILESS_ENDPOINTS:
        return
    if is_browser_request():
        return  # the web UI's HTML forms, each checked against the session's CSRF token instead
    expected = MULTIPART_TYPE if request.endpoint in UPLOAD_ENDPOINTS else JSON_TYPE
    sent = request.headers.get("Content-Type")
    if sent is None:
        if not _has_body():
            return
    elif request.mimetype == expected:
        return
    described = f"Content-Type {sent!r}" if sent is not None else "a body without a Content-Type"
    raise RequestRefused(415, f"Unsupported media type: {described}. This endpoint takes '{expected}'.")


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def install(app: Flask, settings: Settings) -> RequestGuard:
    """Register the Host and Origin check (call before authentication is installed); the Content-Type
    check is registered by `install_content_type_check`, after it."""
    guard = RequestGuard(settings)
    app.extensions[EXTENSION] = guard
    app.before_request(check_host_and_origin)
    return guard


def install_content_type_check(app: Flask) -> None:
    app.before_request(check_content_type)
