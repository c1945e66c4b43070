"""The v2beta1 API (what the kfp 2.x SDK speaks): thin handlers over the same services, and so the same rows,
as the v1beta1 API. Only the wire differs: field names, enum names, the error body (see errors.py)."""

from __future__ import annotations

from flask import request

V2_PREFIX = "/apis/v2beta1"


def is_v2_request() -> bool:
    """Whether the current request is addressed to the v2beta1 API (answered in its error shape)."""
    return request.path == V2_PREFIX or request.path.startswith(V2_PREFIX + "/")
