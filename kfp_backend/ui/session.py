"""Who a page request acts as, its CSRF token, and the namespace it works in.

With authentication off every page just works (the anonymous caller). With it on, a person signs in once
with an API token at /signin: the token is checked by the token service and only its id is kept, in
Flask's signed session cookie (HttpOnly, SameSite=Strict). The token is read again on every request, so
a revoked or expired token ends the session at once. A trusted proxy's user header works as for the API.
Every POST of the UI carries the session's CSRF token (a form field, or the X-CSRF-Token header).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response

from kfp_backend.api.auth import EXTENSION as AUTHENTICATOR
from kfp_backend.api.auth import Authenticator
from kfp_backend.api.browser import is_browser_request
from kfp_backend.api.errors import RequestRefused
from kfp_backend.config import Settings
from kfp_backend.services.all_services import Services
from kfp_backend.services.auth import ANONYMOUS, AuthService, Caller
from kfp_backend.services.errors import Unauthenticated
from kfp_backend.services.ui_sessions import session_secret

AUTH_SERVICE = "kfp_backend.ui.auth_service"
COOKIE_NAME = "kfp_ui_session"
# Pages that need no caller: the sign-in page and the assets it shows.
OPEN_ENDPOINTS = frozenset({"ui.static", "ui.signin", "ui.signin_submit"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked `Secure` whenever the page came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def configure(app: Flask, settings: Settings, services: Services) -> None:
    app.secret_key = session_secret(services.db, settings)
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.extensions[AUTH_SERVICE] = AuthService(services.db)
    # After the API's hooks (Host/Origin, authentication, Content-Type), which leave UI requests to this one.
    app.before_request(_authenticate_page)


def auth_required() -> bool:
    authenticator: Authenticator = current_app.extensions[AUTHENTICATOR]
    return authenticator.required


def _page_caller() -> Caller:
    authenticator: Authenticator = current_app.extensions[AUTHENTICATOR]
    token_id = session.get("token_id")
    if token_id and authenticator.required:
        service: AuthService = current_app.extensions[AUTH_SERVICE]
        return service.caller_of_token(str(token_id))
    # No session: authentication off (anonymous), a trusted proxy's header, or a bearer token.
    return authenticator.caller(request.headers)


def _authenticate_page() -> Response | None:
    if not is_browser_request():
        return None
    if request.endpoint in OPEN_ENDPOINTS:
        g.caller = ANONYMOUS
    else:
        try:
            g.caller = _page_caller()
        except Unauthenticated:
            session.pop("token_id", None)
            if request.blueprint == "ui" and request.method == "GET" and not request.path.startswith("/ui/api/"):
                return redirect(url_for("ui.signin", next=request.full_path.rstrip("?")))
            raise
    if request.method == "POST":
        check_csrf()
    return None


def csrf_token() -> str:
    """The session's CSRF token, made on first use."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return str(token)


def check_csrf() -> None:
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), sent):
        raise RequestRefused(
            403, "This form has expired or did not come from this site (its CSRF token does not match the session). "
            "Reload the page and try again.",
        )


def sign_in(token_id: str) -> None:
    session.clear()  # a new session for the signed-in person (no fixation of an earlier one)
    session.permanent = True
    session["token_id"] = token_id
    csrf_token()


def sign_out() -> None:
    session.clear()


def current_caller() -> Caller:
    return g.caller


def namespaces_offered() -> tuple[str, ...]:
    """The namespaces the picker offers: those the credential is limited to (empty: any, typed in)."""
    return current_caller().namespaces


def current_namespace() -> str | None:
    """The namespace pages work in: None in single-user mode (no namespaces); in multi-user mode the one
    picked, else the credential's first; None when the caller may use any and has picked none yet."""
    if not auth_required():
        return None
    caller = current_caller()
    picked = session.get("namespace")
    if caller.namespaces:
        return picked if picked in caller.namespaces else caller.namespaces[0]
    return str(picked) if picked else None


def pick_namespace(namespace: str) -> None:
    session["namespace"] = namespace
