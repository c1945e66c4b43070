"""Reading request bodies and list query parameters; every malformed input becomes InvalidArgument."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import Schema, ValidationError

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.listing import ListRequest, load_json
from kfp_backend.services.references import ResourceKey, ResourceType, parse_enum


def json_body() -> dict[str, Any]:
    """The request's JSON object body; an empty body counts as `{}` as the gateway treats it."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = load_json(raw)
    except ValueError as exc:
        message = f"Malformed JSON request body: {exc}"
        raise InvalidArgument(message, internal=message) from None
    if not isinstance(body, dict):
        raise InvalidArgument("The request body must be a JSON object.")
    return body


def load_body(schema: Schema, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        return schema.load(json_body() if body is None else body)
    except ValidationError as exc:
        raise InvalidArgument(f"Invalid request body: {_describe(exc.messages)}") from None


def _describe(messages: Any) -> str:
    return json.dumps(messages, sort_keys=True)


def list_request() -> ListRequest:
    args = request.args
    return ListRequest(
        page_token=args.get("page_token") or args.get("pageToken"),
        page_size=args.get("page_size") or args.get("pageSize"),
        sort_by=args.get("sort_by") or args.get("sortBy"),
        filter=args.get("filter"),
    )


def resource_key(prefix: str = "resource_reference_key") -> ResourceKey | None:
    """The `<prefix>.type` / `<prefix>.id` query pair, or None when neither is given."""
    camel = "".join(part.title() if i else part for i, part in enumerate(prefix.split("_")))
    raw_type = request.args.get(f"{prefix}.type") or request.args.get(f"{camel}.type")
    raw_id = request.args.get(f"{prefix}.id") or request.args.get(f"{camel}.id")
    if raw_type is None and raw_id is None:
        return None
    kind = parse_enum(ResourceType, raw_type, "api.ResourceType") if raw_type else ResourceType(0)
    return ResourceKey(type=ResourceType(kind), id=raw_id or "")
