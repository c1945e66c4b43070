"""How the workflow package reads a document's values (scalars, objects, optional strings) for both of its
documents, Argo manifests and KFP v2 pipeline specs, and shows one in an error message."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kfp_backend.workflow.errors import WorkflowError

INVALID = "Invalid workflow"


def scalar(value: Any, what: str) -> str | None:
    """A parameter-like value as Argo reads it: strings as they are, numbers and booleans as their JSON text,
    None (absent) as None; WorkflowError naming `what` for anything else. (NaN and infinities never get
    here: a document is serialized to JSON before it is read.)"""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    raise WorkflowError(f"{INVALID}: {what} must be a string, number or boolean.")


def mapping(value: Any, what: str, invalid: str = INVALID) -> Mapping[str, Any]:
    """An object field: {} when absent, else WorkflowError `<invalid>: <what> must be an object.` if it is not
    one (`invalid` is the wording of the document it is in, as below)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WorkflowError(f"{invalid}: {what} must be an object.")
    return value


def optional_string(value: Any, what: str, invalid: str = INVALID) -> str | None:
    """A string field: None when absent, else WorkflowError `<invalid>: <what> must be a string.` if it is
    not one."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise WorkflowError(f"{invalid}: {what} must be a string.")
    return value


def quoted(value: Any) -> str:
    """A value as an error message shows it: text cut at 200 characters, `<dict>` or `<list>` for a structure."""
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, dict | list):
        return f"<{type(value).__name__}>"
    return str(value)
