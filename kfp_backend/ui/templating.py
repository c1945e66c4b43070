"""What every template can use: the caller, the namespace picker, the CSRF token, formatting."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Flask, request

from kfp_backend.ui.common import format_time, status_class, status_icon
from kfp_backend.ui.session import auth_required, csrf_token, current_namespace


def _page_url(**changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    args = request.args.to_dict()
    for key, value in changes.items():
        if value is None or value == "":
            args.pop(key, None)
        else:
            args[key] = value
    return request.path + ("?" + urlencode(args) if args else "")


def _context() -> dict[str, Any]:
    from flask import g

    caller = getattr(g, "caller", None)
    return {
        "caller": caller, "multi_user": auth_required(), "namespace": current_namespace() if caller else None,
        "namespaces": caller.namespaces if caller else (),
    }


def install_template_helpers(app: Flask) -> None:
    app.jinja_env.globals.update(csrf_token=csrf_token, page_url=_page_url)
    app.jinja_env.filters.update(time=format_time, status_class=status_class, status_icon=status_icon)
    app.context_processor(_context)
