"""The shape of every list response: omitted keys when empty, as jsonpb with EmitDefaults=false."""

from __future__ import annotations

from typing import Any, Protocol


class _ListResult(Protocol):
    total_size: int
    next_page_token: str


def list_response(plural: str, items: list[dict[str, Any]], result: _ListResult) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if items:
        body[plural] = items
    if result.total_size:
        body["total_size"] = result.total_size
    if result.next_page_token:
        body["next_page_token"] = result.next_page_token
    return body
