"""HTTP layer: Flask blueprints that parse requests, call services and render KFP JSON. No SQL here."""

from __future__ import annotations

from flask import current_app

from kfp_backend.services.all_services import Services

API_PREFIX = "/apis/v1beta1"


def services() -> Services:
    return current_app.extensions["kfp_backend.services"]
