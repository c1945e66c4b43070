"""Run and job parameters as both APIs read them from one stored list.

A row stores its parameters as JSON `[{"name", "value"}]` with text values (what v1beta1 sends and shows).
v2beta1 sends typed JSON values (`runtime_config.parameters`); each is stored with its text form in `value`
(a string as it is, anything else as compact JSON: 3 -> "3", true -> "true") and the value itself under
TYPED_KEY, so that v1beta1 shows the text and v2beta1 gets the value back as it was sent. An entry without
TYPED_KEY (written through v1beta1) reads back on v2beta1 as its text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

TYPED_KEY = "typed_value"
V1_KEYS = ("name", "value")


def text_form(value: Any) -> str:
    """What v1beta1 shows of a typed value."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def stored_parameters(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stored entries of v2beta1's typed parameter values."""
    return [{"name": name, "value": text_form(value), TYPED_KEY: value} for name, value in values.items()]


def v1_parameters(stored: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The entries as v1beta1 shows them (name and text value only)."""
    return [{key: entry[key] for key in V1_KEYS if key in entry} for entry in stored]


def parameter_values(stored: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The entries as v2beta1's `runtime_config.parameters`: typed where v2beta1 sent them, else text."""
    return {
        str(entry.get("name", "")): entry[TYPED_KEY] if TYPED_KEY in entry else entry.get("value", "")
        for entry in stored
    }
