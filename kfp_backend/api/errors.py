"""The one place where errors become HTTP responses, in the real server's two body shapes.

Gateway endpoints answer `{"error", "code", "message", "details": [api.Error]}` with the HTTP status of the
gRPC code; the upload endpoints answer `{"error_message", "error_details"}`; the v2beta1 API answers its own
shape (api/v2/errors.py). Nothing ever leaks a traceback.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestedRangeNotSatisfiable

from kfp_backend.api.v2 import is_v2_request
from kfp_backend.api.v2.errors import routing_error, status_body
from kfp_backend.services.errors import ApiError, IdempotencyKeyReused, Internal

log = logging.getLogger(__name__)

# grpc-gateway's HTTPStatusFromCode.
GRPC_TO_HTTP = {
    0: 200, 1: 408, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}
# The gRPC code that best names a plain HTTP failure (unknown route, wrong method, ...).
HTTP_TO_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 408: 1, 409: 6, 413: 8, 415: 3, 416: 11, 429: 8}

UPLOAD_ENDPOINTS = {
    "pipelines.upload_pipeline", "pipelines.upload_pipeline_version",
    # v2beta1's uploads: upstream's one upload server answers both APIs in this shape.
    "v2_pipelines.upload_pipeline", "v2_pipelines.upload_pipeline_version",
}


class RequestRefused(HTTPException):
    """A request refused before any handler runs (see api/request_guard.py): an HTTP status that no
    gRPC code maps to (403 for a foreign Origin, 415), with a message saying what to change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(description=message)
        self.code = status


def gateway_error_body(code: int, message: str, external: str) -> dict:
    return {
        "error": message,
        "code": code,
        "message": message,
        "details": [
            {"@type": "type.googleapis.com/api.Error", "error_message": external, "error_details": message}
        ],
    }


def _json(body: dict, status: int) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def http_status(error: ApiError) -> int:
    if isinstance(error, IdempotencyKeyReused):
        return 422  # the IETF Idempotency-Key draft's status; no gRPC code maps to it
    return GRPC_TO_HTTP.get(error.grpc_code, 500)


def api_error_response(error: ApiError) -> Response:
    status = http_status(error)
    if request.endpoint in UPLOAD_ENDPOINTS:
        return _json({"error_message": error.internal_message, "error_details": error.internal_message}, status)
    if is_v2_request():
        return _json(status_body(error.grpc_code, error.internal_message, error.external_message), status)
    return _json(gateway_error_body(error.grpc_code, error.internal_message, error.external_message), status)


def _http_error_response(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_TO_GRPC.get(status, 2)
    explained = status == 400 or isinstance(error, RequestRefused)
    message = error.description if explained and error.description else (error.name or "Error")
    if request.endpoint in UPLOAD_ENDPOINTS:
        return _json({"error_message": message, "error_details": message}, status)
    if is_v2_request():
        return _json(*routing_error(status, code, message))
    response = _json(gateway_error_body(code, message, message), status)
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    if isinstance(error, RequestedRangeNotSatisfiable) and error.length is not None:
        response.headers["Content-Range"] = f"{error.units} */{error.length}"  # what the length is
    return response


def _unexpected_error_response(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return api_error_response(Internal(f"{type(error).__name__}: {error}"))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, api_error_response)
    app.register_error_handler(HTTPException, _http_error_response)
    app.register_error_handler(Exception, _unexpected_error_response)
