"""Who a page request acts as, its CSRF token, and the namespace it works in.

With authentication off every page just works (the anonymous caller). With it on, a person signs in once
with an API token at /signin: the token is checked by the token service and a server-side session is started
(services/ui_sessions.py) whose random id is kept in Flask's signed session cookie (HttpOnly,
SameSite=Strict); the token itself never is. The session and its token are read again on every request, so
signing out (which deletes the session) or revoking or expiring the token ends it at once, copies of the
cookie included. A trusted proxy's user header works as for the API.
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
from kfp_backend.services.auth import ANONYMOUS, AuthService, Caller, unauthenticated
from kfp_backend.services.errors import Unauthenticated
from kfp_backend.services.ui_sessions import UiSessions, session_secret

AUTH_SERVICE = "kfp_backend.ui.auth_service"
SESSIONS = "kfp_backend.ui.sessions"
SESSION_LIFETIME = timedelta(hours=12)
SESSION_ID = "sid"
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
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.extensions[AUTH_SERVICE] = AuthService(services.db)
    app.extensions[SESSIONS] = UiSessions(services.db)
    # After the API's hooks (Host/Origin, authentication, Content-Type), which leave UI requests to this one.
    app.before_request(_authenticate_page)


def auth_required() -> bool:
    authenticator: Authenticator = current_app.extensions[AUTHENTICATOR]
    return authenticator.required


def _page_caller() -> Caller:
    authenticator: Authenticator = current_app.extensions[AUTHENTICATOR]
    session_id = session.get(SESSION_ID)
    if session_id and authenticator.required:
        token_id = _sessions().token_of(str(session_id))
        if token_id is None:
            raise unauthenticated("This session has ended (signed out, or expired): sign in again.")
        service: AuthService = current_app.extensions[AUTH_SERVICE]
        return service.caller_of_token(token_id)
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
            session.pop(SESSION_ID, None)
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


def _sessions() -> UiSessions:
    return current_app.extensions[SESSIONS]


def sign_in(token_id: str) -> None:
    session.clear()  # a new session for the signed-in person (no fixation of an earlier one)
    session.permanent = True
    session[SESSION_ID] = _sessions().start(token_id, int(SESSION_LIFETIME.total_seconds()))
    csrf_token()


def sign_out() -> None:
    """Ends the session on the server (a copy of the cookie stops working too), then forgets the cookie."""
    session_id = session.get(SESSION_ID)
    if session_id:
        _sessions().end(str(session_id))
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
