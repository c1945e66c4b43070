"""List parameters of the v2beta1 API, translated to the list request the services read.

The v2 filter is the v1 one (api.Filter) with two spellings changed: a predicate names its operation
`operation` (v1: `op`; `op` is an unknown field here, as protojson refuses it), and keys are v2 field names
(`display_name`, `experiment_id`, ...). Keys and `sort_by` fields are mapped to the names the services list
by; names both APIs share, and the v1 names (which upstream accepts on v2 too), pass unchanged. Enum values
of a field (`storage_state`: AVAILABLE/ARCHIVED) are mapped to the stored vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import request

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.listing import ListRequest, load_json

# Operation names of v2's Predicate.Operation that differ from v1's Op.
_OPERATIONS = {"OPERATION_UNSPECIFIED": 0}
_STRING_VALUE_KEYS = ("string_value", "stringValue")
_STRING_VALUES_KEYS = ("string_values", "stringValues")


class FieldNames:
    """How one resource's v2 field names map to the names its service lists by."""

    def __init__(self, names: Mapping[str, str], values: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.names = names
        self.values = values or {}

    def field(self, name: str) -> str:
        return self.names.get(name, name)

    def value(self, field: str, value: Any) -> Any:
        return self.values.get(field, {}).get(value, value) if isinstance(value, str) else value


def v2_list_request(fields: FieldNames) -> ListRequest:
    args = request.args
    raw_filter = args.get("filter")
    return ListRequest(
        page_token=args.get("page_token") or args.get("pageToken"),
        page_size=args.get("page_size") or args.get("pageSize"),
        sort_by=_sort_by(args.get("sort_by") or args.get("sortBy"), fields),
        filter=translate_filter(raw_filter, fields) if raw_filter else None,
    )


def _sort_by(sort_by: str | None, fields: FieldNames) -> str | None:
    words = (sort_by or "").split()
    if not words:
        return sort_by
    return " ".join([fields.field(words[0].lower()), *words[1:]])


def translate_filter(raw: str, fields: FieldNames) -> str:
    """The v2 filter `raw` as the v1 filter the services parse. Whatever is malformed beyond the v2 spellings
    is passed on as it came, for the services' parser to refuse with its message."""
    try:
        document = load_json(raw)
    except ValueError:
        return raw
    if not isinstance(document, dict) or not isinstance(document.get("predicates"), list):
        return raw
    predicates = []
    for predicate in document["predicates"]:
        if not isinstance(predicate, dict):
            return raw
        predicates.append(_translate_predicate(raw, predicate, fields))
    return json.dumps({**document, "predicates": predicates})


def _translate_predicate(raw: str, predicate: dict[str, Any], fields: FieldNames) -> dict[str, Any]:
    if "op" in predicate:
        raise InvalidArgument(
            f'failed to parse valid filter from "{raw}": unknown field "op" in predicate (v2beta1 names it '
            '"operation")'
        ).wrap("Failed to create list options")
    translated = {name: value for name, value in predicate.items() if name != "operation"}
    operation = predicate.get("operation", 0)
    translated["op"] = _OPERATIONS.get(operation, operation) if isinstance(operation, str) else operation
    key = predicate.get("key")
    if isinstance(key, str):
        field = translated["key"] = fields.field(key)
        for name in _STRING_VALUE_KEYS:
            if name in translated:
                translated[name] = fields.value(field, translated[name])
        for name in _STRING_VALUES_KEYS:
            values = translated.get(name)
            if isinstance(values, dict) and isinstance(values.get("values"), list):
                translated[name] = {**values, "values": [fields.value(field, v) for v in values["values"]]}
    return translated
