"""The `ui` blueprint itself, which the page modules add their routes to."""

from __future__ import annotations

from flask import Blueprint

# Pages at `/...`, assets at `/ui/static/...`, small JSON routes for the page scripts at `/ui/api/...`.
blueprint = Blueprint("ui", __name__, template_folder="templates", static_folder="static", static_url_path="/ui/static")
