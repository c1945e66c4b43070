"""Sign-in with a token, sign-out, and the namespace picker."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kfp_backend.services.auth import AuthService, validate_namespace
from kfp_backend.services.errors import InvalidArgument, Unauthenticated
from kfp_backend.ui.blueprint import blueprint
from kfp_backend.ui.session import (
    AUTH_SERVICE,
    auth_required,
    check_csrf,
    current_caller,
    pick_namespace,
    sign_in,
    sign_out,
)


def _local_target(target: str | None) -> str:
    """Only a path of this site (no scheme, no host): never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return url_for("ui.runs")
    return target


@blueprint.get("/signin")
def signin() -> str | Response:
    if not auth_required():
        return redirect(url_for("ui.runs"))
    return render_template("signin.html", next=request.args.get("next", ""))


@blueprint.post("/signin")
def signin_submit() -> tuple[str, int] | Response:
    check_csrf()  # the sign-in form too: no other site signs a person in as someone else
    target = _local_target(request.form.get("next"))
    if not auth_required():
        return redirect(target)
    service: AuthService = current_app.extensions[AUTH_SERVICE]
    try:
        caller = service.authenticate(request.form.get("token", "").strip())
    except Unauthenticated as exc:
        return render_template("signin.html", next=target, error=exc.external_message), 401
    assert caller.token_id is not None
    sign_in(caller.token_id)
    return redirect(target)


@blueprint.post("/signout")
def signout() -> Response:
    sign_out()
    return redirect(url_for("ui.signin") if auth_required() else url_for("ui.runs"))


@blueprint.post("/namespace")
def choose_namespace() -> Response:
    namespace = request.form.get("namespace", "").strip()
    caller = current_caller()
    try:
        validate_namespace(namespace)
    except InvalidArgument as exc:
        flash(exc.external_message, "error")
        return redirect(_local_target(request.form.get("next")))
    if not caller.allows_namespace(namespace):
        flash(f"You may not use namespace {namespace!r}: your token is limited to "
              f"{', '.join(caller.namespaces)}.", "error")
    else:
        pick_namespace(namespace)
    return redirect(_local_target(request.form.get("next")))
