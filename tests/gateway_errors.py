"""The gateway's JSON error body as every test checks it: `{"error", "code", "message", "details"}` with one
api.Error detail (`{"@type", "error_message", "error_details"}`), `message` and `error_details` repeating
`error`."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import TestResponse

GATEWAY_ERROR_KEYS = ["error", "code", "message", "details"]
API_ERROR_KEYS = ["@type", "error_message", "error_details"]
API_ERROR_TYPE = "type.googleapis.com/api.Error"


def check_gateway_body(body: Any, code: int | None = None, message: str | None = None) -> dict[str, Any]:
    """`body` is a gateway error (of gRPC `code` and with `error` equal to `message`, when given); returns it."""
    assert isinstance(body, dict) and list(body) == GATEWAY_ERROR_KEYS, body
    assert isinstance(body["code"], int) and body["code"] > 0, body
    if code is not None:
        assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"], body
    assert body["message"] == body["error"], body
    assert isinstance(body["details"], list) and len(body["details"]) == 1, body
    (detail,) = body["details"]
    assert list(detail) == API_ERROR_KEYS, body
    assert detail["@type"] == API_ERROR_TYPE, body
    assert detail["error_details"] == body["error"], body
    assert isinstance(detail["error_message"], str) and detail["error_message"], body
    if message is not None:
        assert body["error"] == message, body
    return body


def gateway_error(
    response: TestResponse, status: int, code: int | None = None, message: str | None = None
) -> dict[str, Any]:
    """A Flask test response that is a gateway error with HTTP `status` (see check_gateway_body); returns the
    body."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.headers["Content-Type"] == "application/json", response.headers
    assert "<html" not in text.lower() and "Traceback" not in text, text
    return check_gateway_body(json.loads(text), code, message)


def error_message(body: dict[str, Any]) -> str:
    """The message meant for the user (details[0].error_message)."""
    return body["details"][0]["error_message"]
