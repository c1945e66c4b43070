"""Authentication of every request, before routing decides anything.

One hook runs before every request. Healthz is the only endpoint open to all; anything else (every
route of every blueprint, every method, and paths that match no route) must authenticate when
authentication is on, so an unauthenticated caller learns nothing but 401, not even which routes
exist. The authenticated `Caller` is `flask.g.caller` (read it with `current_caller()`); services get it
passed explicitly. Credentials are never logged.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, request
from werkzeug.datastructures import Headers

from kfp_backend.api.browser import is_browser_request
from kfp_backend.config import Settings
from kfp_backend.services.all_services import Services
from kfp_backend.services.auth import ANONYMOUS, AuthService, Caller, caller_from_user_header, unauthenticated

log = logging.getLogger(__name__)

# healthz, and the metrics (counts by route template, status and state: nothing of any tenant).
PUBLIC_ENDPOINTS = frozenset({"healthz.healthz", "v2_healthz.healthz", "prometheus.metrics"})
EXTENSION = "kfp_backend.auth"


class Authenticator:
    """Turns a request's headers into a Caller, per the settings' mode."""

    def __init__(self, settings: Settings, service: AuthService) -> None:
        self.required = settings.auth_required
        self.trust_user_header = settings.trust_user_header
        self.user_header = settings.user_header
        self.service = service

    def describe(self) -> str:
        mode = "required (bearer token)" if self.required else "off"
        if self.trust_user_header:
            mode += f"; header '{self.user_header}' trusted"
        return f"authentication {mode}"

    def caller(self, headers: Headers) -> Caller:
        if self.trust_user_header:
            # A proxy in front authenticated the user: its header wins over any Authorization header,
            # which may carry the proxy's own credentials.
            values = headers.getlist(self.user_header)
            if values:
                return caller_from_user_header(values, self.user_header)
        if not self.required:
            return ANONYMOUS
        authorization = headers.getlist("Authorization")
        if not authorization:
            raise unauthenticated("Request header error: there is no Authorization header; send 'Authorization: "
                                  "Bearer <token>'.")
        scheme, _, credential = authorization[0].strip().partition(" ")
        credential = credential.strip()
        if len(authorization) != 1 or scheme.lower() != "bearer" or not credential:
            raise unauthenticated("Request header error: the Authorization header is not 'Bearer <token>'.")
        return self.service.authenticate(credential)


def current_caller() -> Caller:
    """The caller of the current request (set before any handler runs)."""
    return g.caller


def _authenticate() -> None:
    authenticator: Authenticator = current_app.extensions[EXTENSION]
    if request.endpoint in PUBLIC_ENDPOINTS:
        g.caller = ANONYMOUS
        return
    if is_browser_request():
        return  # the web UI authenticates its pages from its session (kfp_backend/ui/session.py)
    try:
        g.caller = authenticator.caller(request.headers)
    except Exception:
        log.debug("unauthenticated %s %s", request.method, request.path)
        raise


def _challenge(response: Response) -> Response:
    if response.status_code == 401:
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="kfp-backend"')
    return response


def install(app: Flask, settings: Settings, services: Services) -> Authenticator:
    authenticator = Authenticator(settings, AuthService(services.db))
    app.extensions[EXTENSION] = authenticator
    app.before_request(_authenticate)
    app.after_request(_challenge)
    return authenticator
