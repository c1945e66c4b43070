"""The v2beta1 error body: a google.rpc.Status, as grpc-gateway v2 writes it for the real server.

`{"code", "message", "details"}` and no `error` key (that was grpc-gateway v1's, which v1beta1 clients see):
`message` is the internal context chain, the one detail a google.rpc.Status with the user-facing message.
Routing failures carry no detail, and a wrong method is UNIMPLEMENTED (HTTP 501), not 405.
"""

from __future__ import annotations

from typing import Any

STATUS_TYPE = "type.googleapis.com/google.rpc.Status"
UNIMPLEMENTED = 12
NOT_IMPLEMENTED_STATUS = 501


def status_body(code: int, message: str, external: str | None = None) -> dict[str, Any]:
    """The body of a failed call; `external` (the user-facing message) becomes its one detail."""
    body: dict[str, Any] = {"code": code, "message": message}
    if external is not None:
        body["details"] = [{"@type": STATUS_TYPE, "code": code, "message": external}]
    return body


def routing_error(http_status: int, code: int, message: str) -> tuple[dict[str, Any], int]:
    """(body, HTTP status) of a request no handler took or a handler refused before reading it."""
    if http_status == 405:
        return status_body(UNIMPLEMENTED, message), NOT_IMPLEMENTED_STATUS
    return status_body(code, message), http_status
