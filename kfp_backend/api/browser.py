"""Which requests belong to the web UI (kfp_backend/ui): its blueprints are `ui` and `ui_*`.

They authenticate from the UI's signed session cookie (or, with authentication off, as everyone does) in
the UI's own hook, and send HTML forms protected by a CSRF token: the API's bearer-token hook and JSON
Content-Type check leave them to it."""

from __future__ import annotations

from flask import request

BROWSER_BLUEPRINT = "ui"


def is_browser_request() -> bool:
    blueprint = request.blueprint or ""
    return blueprint == BROWSER_BLUEPRINT or blueprint.startswith(BROWSER_BLUEPRINT + "_")
