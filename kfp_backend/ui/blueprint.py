"""The `ui` blueprint itself, which the page modules add their routes to."""

from __future__ import annotations

from flask import Blueprint, Response

# Pages at `/...`, assets at `/ui/static/...`, small JSON routes for the page scripts at `/ui/api/...`.
blueprint = Blueprint("ui", __name__, template_folder="templates", static_folder="static", static_url_path="/ui/static")


# Pages load only this server's scripts and styles (no inline script or style: the templates have none, the
# graph's styles are graph.css, dagre needs no eval), post forms only here, and cannot be framed by another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


@blueprint.after_request
def _page_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")  # pages show a person's data
    return response
