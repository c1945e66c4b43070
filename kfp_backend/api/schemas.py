"""Wire schemas: the real server's JSON (jsonpb with OrigName, EmitDefaults=false).

Loading accepts snake_case and lowerCamelCase keys, enums by name or number, int64 as string or number,
and ignores unknown keys. Dumping uses proto field names, writes int64 as strings and enums as names, and
omits zero values (empty string, 0, false, empty list, null) while keeping empty messages.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_dump, pre_load

from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType

_CAMEL = re.compile(r"(?<!^)([A-Z])")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NumberT = TypeVar("NumberT", int, float)


def to_snake(key: str) -> str:
    return _CAMEL.sub(lambda m: "_" + m.group(1).lower(), key)


def format_timestamp(seconds: int | None) -> str:
    return datetime.fromtimestamp(seconds or 0, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> int:
    # Python 3.10's fromisoformat does not know the "Z" suffix.
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in {"z", "Z"} else text)
    if moment.tzinfo is None:
        raise ValueError("missing time zone")
    return int(moment.timestamp())


def _is_zero(value: Any) -> bool:
    return value is None or value is False or value == "" or value == [] or (
        isinstance(value, int | float) and not isinstance(value, bool) and value == 0
    )


def omit_zero(body: dict[str, Any]) -> dict[str, Any]:
    """`body` without its zero values, as jsonpb writes a message (empty messages stay)."""
    return {key: value for key, value in body.items() if not _is_zero(value)}


def number_from_text(text: str, parse: Callable[[str], NumberT], expected: str) -> NumberT:
    """A number sent as a JSON string, as jsonpb reads int64 and double."""
    try:
        return parse(text.strip())
    except ValueError:
        raise ValidationError(f"expected {expected}, got {text!r}") from None


class ProtoSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _accept_camel_case(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("expected a JSON object")
        converted: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:
                continue  # jsonpb reads null as "not set": the field keeps its default.
            snake = to_snake(key) if isinstance(key, str) else key
            # The proto name wins when a body carries both spellings.
            if snake not in converted or snake == key:
                converted[snake] = value
        return converted

    @post_dump
    def _omit_defaults(self, data: dict, **_: Any) -> dict:
        return omit_zero(data)


class Timestamp(fields.Field):
    """Whole Unix seconds <-> RFC 3339 UTC with Z; always written, 0 as 1970-01-01T00:00:00Z."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str:
        return format_timestamp(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str):
            raise ValidationError("expected an RFC 3339 timestamp string")
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise ValidationError(f"bad RFC 3339 timestamp {value!r}: {exc}") from None


class Int64(fields.Field):
    """int64 as the gateway writes it: a JSON string; read from a string or a number."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if not value else str(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("expected an integer")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            value = number_from_text(value, int, "an integer")
        if not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError(f"expected a 64-bit integer, got {value!r}")
        return value


class Enum(fields.Field):
    """A proto enum: written as its name, read from its name or number."""

    def __init__(self, enum_type: type[enum.IntEnum], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enum_type = enum_type

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        member = self.enum_type(value) if not isinstance(value, str) else self.enum_type[value]
        return None if member.value == 0 else member.name

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> enum.IntEnum:
        try:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                return self.enum_type(value)
            if isinstance(value, str):
                return self.enum_type(int(value)) if value.lstrip("-").isdigit() else self.enum_type[value]
        except (KeyError, ValueError):
            pass
        raise ValidationError(f"invalid value for enum type {self.enum_type.__name__}: {value!r}")


class ResourceKeySchema(ProtoSchema):
    type = Enum(ResourceType, load_default=ResourceType.UNKNOWN_RESOURCE_TYPE)
    id = fields.String(load_default="")


class ResourceReferenceSchema(ProtoSchema):
    key = fields.Nested(ResourceKeySchema, load_default=None)
    name = fields.String(load_default="")
    relationship = Enum(Relationship, load_default=Relationship.UNKNOWN_RELATIONSHIP)

    def to_reference(self, data: dict) -> ResourceReference:
        key = data.get("key") or {}
        return ResourceReference(
            key=ResourceKey(key.get("type", ResourceType.UNKNOWN_RESOURCE_TYPE), key.get("id", "")),
            relationship=data["relationship"],
            name=data["name"],
        )


def load_references(raw: list[dict]) -> list[ResourceReference]:
    schema = ResourceReferenceSchema()
    return [schema.to_reference(item) for item in raw]


def dump_reference(reference: ResourceReference) -> dict:
    body: dict[str, Any] = {"key": {"type": reference.key.type.name, "id": reference.key.id}}
    if reference.name:
        body["name"] = reference.name
    if reference.relationship:
        body["relationship"] = reference.relationship.name
    return body


class ParameterSchema(ProtoSchema):
    name = fields.String(load_default="")
    value = fields.String(load_default="")


class UrlSchema(ProtoSchema):
    pipeline_url = fields.String(load_default="")


class ExperimentSchema(ProtoSchema):
    id = fields.String(dump_only=True)
    name = fields.String(load_default="")
    description = fields.String(load_default="")
    created_at = Timestamp(dump_only=True)
    resource_references = fields.List(fields.Nested(ResourceReferenceSchema), load_default=list)
    storage_state = fields.String(dump_only=True)
