"""The OpenAPI 3 description of the v2beta1 API (openapi/v2beta1.yaml), served as JSON at
/apis/v2beta1/openapi.json like the v1beta1 one."""

from __future__ import annotations

import functools
import json
from typing import Any

import yaml
from flask import Blueprint, Response

from kfp_backend.api.openapi import OPENAPI_PATH
from kfp_backend.api.v2 import V2_PREFIX

V2_OPENAPI_PATH = OPENAPI_PATH.with_name("v2beta1.yaml")

blueprint = Blueprint("v2_openapi", __name__, url_prefix=V2_PREFIX)


@functools.cache
def load_v2_document() -> dict[str, Any]:
    """The document, parsed once per process."""
    with V2_OPENAPI_PATH.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    return Response(json.dumps(load_v2_document(), ensure_ascii=False, separators=(",", ":")),
                    mimetype="application/json")
