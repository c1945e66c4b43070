"""The OpenAPI 3 description of this API, served as JSON at /apis/v1beta1/openapi.json."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response

from kfp_backend.api import API_PREFIX

# The document lives at the top of the source tree next to alembic/ (installed editable, as the Makefile does).
OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi" / "v1beta1.yaml"

blueprint = Blueprint("openapi", __name__, url_prefix=API_PREFIX)


@functools.cache
def load_document() -> dict[str, Any]:
    """The document, parsed once per process."""
    with OPENAPI_PATH.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


@functools.cache
def _document_json() -> str:
    return json.dumps(load_document(), ensure_ascii=False, separators=(",", ":"))


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    return Response(_document_json(), mimetype="application/json")
