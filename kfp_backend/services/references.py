"""Resource references (`resource_references` and `resource_reference_key`) as the v1beta1 API defines them."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from kfp_backend.services.errors import InvalidArgument

E = TypeVar("E", bound=enum.IntEnum)


class ResourceType(enum.IntEnum):
    UNKNOWN_RESOURCE_TYPE = 0
    EXPERIMENT = 1
    JOB = 2
    PIPELINE = 3
    PIPELINE_VERSION = 4
    NAMESPACE = 5


class Relationship(enum.IntEnum):
    UNKNOWN_RELATIONSHIP = 0
    OWNER = 1
    CREATOR = 2


@dataclass(frozen=True)
class ResourceKey:
    type: ResourceType
    id: str


@dataclass(frozen=True)
class ResourceReference:
    key: ResourceKey
    relationship: Relationship = Relationship.UNKNOWN_RELATIONSHIP
    name: str = ""


# The key types a list call of runs, jobs or experiments accepts (upstream's filter conversion).
FILTERABLE_KEY_TYPES = frozenset({
    ResourceType.EXPERIMENT, ResourceType.JOB, ResourceType.PIPELINE_VERSION, ResourceType.NAMESPACE,
})


def check_filter_key(key: ResourceKey | None) -> None:
    """A list call's resource_reference_key must be of a type upstream can filter by: else its 400."""
    if key is not None and key.type not in FILTERABLE_KEY_TYPES:
        raise (
            InvalidArgument(f"Unsupported resource type: {key.type.name}")
            .wrap("Unrecognized resource reference type.")
            .wrap("Validating filter failed.")
        )


def check_create_references(references: Sequence[ResourceReference]) -> None:
    """What a caller may reference when creating a run or a job: no JOB (only the scheduler links a run to
    the job that fired it: a run attached to another job would count against that job's max_concurrency),
    and at most one EXPERIMENT (the one the object lives in)."""
    if any(reference.key.type == ResourceType.JOB for reference in references):
        raise InvalidArgument(
            "Unsupported resource type: JOB. Only the scheduler links a run to the job that created it."
        )
    experiments = sum(1 for reference in references if reference.key.type == ResourceType.EXPERIMENT)
    if experiments > 1:
        raise InvalidArgument(f"Invalid resource references: more than one EXPERIMENT reference ({experiments}).")


def parse_enum(enum_type: type[enum.IntEnum], raw: object, what: str) -> enum.IntEnum:
    """Accept an enum by name or number, as the gateway does; anything else is a 400."""
    member = enum_member(enum_type, raw)
    if member is None:
        raise InvalidArgument(f"invalid value for enum type {what}: {raw!r}")
    return member


def enum_member(enum_type: type[E], raw: object) -> E | None:
    """The member of `enum_type` that `raw` names, by name or number (a JSON number or a string of digits)."""
    try:
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            return enum_type(raw)
        if isinstance(raw, str):
            return enum_type(int(raw)) if raw.lstrip("-").isdigit() else enum_type[raw]
    except (KeyError, ValueError):
        pass
    return None


def find_reference(
    references: list[ResourceReference], kind: ResourceType, relationship: Relationship | None = None
) -> ResourceReference | None:
    for reference in references:
        if reference.key.type == kind and (relationship is None or reference.relationship == relationship):
            return reference
    return None


def describe_key(key: ResourceKey) -> str:
    """A key as upstream's messages print a proto (`type:NAMESPACE id:"team-a"`)."""
    text = f"type:{key.type.name}" if key.type else ""
    if key.id:
        text += f'{" " if text else ""}id:"{key.id}"'
    return text


def encode_references(references: Sequence[ResourceReference]) -> str:
    """References as a run or job row stores them (a JSON list)."""
    return json.dumps(
        [
            {"type": r.key.type.name, "id": r.key.id, "name": r.name, "relationship": r.relationship.name}
            for r in references
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_references(text: str) -> list[ResourceReference]:
    return [
        ResourceReference(
            key=ResourceKey(ResourceType[item["type"]], item["id"]),
            relationship=Relationship[item["relationship"]],
            name=item.get("name", ""),
        )
        for item in (json.loads(text) if text else [])
    ]
