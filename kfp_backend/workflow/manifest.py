"""Parse and validate an Argo Workflow manifest (YAML or JSON text), as kfp 1.8 compiles pipelines.

Only what this server needs to trust a manifest is checked: the document is an `argoproj.io/v1alpha1`
`Workflow` whose spec has named templates, an entrypoint naming one of them and well-formed
`spec.arguments.parameters`, and that the executor can run it (`workflow.compile`). KFP v2 pipeline specs
(IR with `pipelineInfo` and `root`) are refused.
Every problem raises WorkflowError with a message that names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kfp_backend.workflow.compile import check_executable
from kfp_backend.workflow.documents import read_document
from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.values import INVALID, quoted, scalar

ARGO_API_VERSION = "argoproj.io/v1alpha1"
WORKFLOW_KIND = "Workflow"

_PARSE_FAILED = "Failed to parse the workflow template"


@dataclass(frozen=True)
class Parameter:
    """One of the workflow's `spec.arguments.parameters`; `value` is None when it has no default."""

    name: str
    value: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name} if self.value is None else {"name": self.name, "value": self.value}


@dataclass(frozen=True)
class Workflow:
    document: dict[str, Any]
    parameters: tuple[Parameter, ...]
    # The document re-serialized as compact JSON (what the API stores and returns as the template).
    json: str

    @property
    def entrypoint(self) -> str:
        return self.document["spec"]["entrypoint"]

    @property
    def templates(self) -> dict[str, dict[str, Any]]:
        return {template["name"]: template for template in self.document["spec"]["templates"]}


def parse_workflow(text: str | bytes) -> Workflow:
    """Parse YAML or JSON text into a validated Workflow."""
    return validate_workflow(load_document(text))


def load_document(text: str | bytes) -> Any:
    """The YAML/JSON document in `text`; WorkflowError when it cannot be read as one."""
    return read_document(text, _PARSE_FAILED)


def validate_workflow(document: Any) -> Workflow:
    """Check a parsed document; return the Workflow with its parameters and compact JSON."""
    if not isinstance(document, dict):
        raise WorkflowError(
            f"unknown template format: expected an Argo Workflow object, got {_describe(document)}."
        )
    if _is_v2_spec(document):
        raise WorkflowError(
            "KFP v2 pipeline specs (pipelineInfo/root) are not supported: upload an Argo Workflow compiled "
            "by the kfp 1.x SDK (v1 mode)."
        )
    api_version = document.get("apiVersion", "")
    if api_version != ARGO_API_VERSION:
        raise WorkflowError(
            f"Unsupported argo version. Expected: {ARGO_API_VERSION}. Received: {quoted(api_version)}"
        )
    kind = document.get("kind", "")
    if kind != WORKFLOW_KIND:
        raise WorkflowError(f"Unexpected resource type. Expected: {WORKFLOW_KIND}. Received: {quoted(kind)}")
    metadata = document.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise WorkflowError(f"{INVALID}: metadata must be an object.")
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise WorkflowError(f"{INVALID}: spec is missing or is not an object.")
    _check_templates(spec)
    try:
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WorkflowError(f"{_PARSE_FAILED}: it holds a value JSON cannot represent ({exc}).") from None
    except RecursionError:
        raise WorkflowError(f"{_PARSE_FAILED}: the document is nested too deeply.") from None
    parameters = _parameters(spec)
    check_executable(document)  # refuse what the executor cannot run (unknown step kinds, recursion...)
    return Workflow(document=document, parameters=parameters, json=text)


def _is_v2_spec(document: dict[str, Any]) -> bool:
    if "pipelineInfo" in document and "root" in document:
        return True
    inner = document.get("pipelineSpec")
    return isinstance(inner, dict) and "pipelineInfo" in inner


def _check_templates(spec: dict[str, Any]) -> None:
    templates = spec.get("templates")
    if not isinstance(templates, list) or not templates:
        raise WorkflowError(f"{INVALID}: spec.templates must be a non-empty list.")
    names: set[str] = set()
    for index, template in enumerate(templates):
        name = template.get("name") if isinstance(template, dict) else None
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"{INVALID}: spec.templates[{index}] must be an object with a non-empty name.")
        if name in names:
            raise WorkflowError(f'{INVALID}: template name "{name}" is used more than once.')
        names.add(name)
    entrypoint = spec.get("entrypoint")
    if entrypoint is None or entrypoint == "":
        raise WorkflowError(f"{INVALID}: spec.entrypoint is missing.")
    if not isinstance(entrypoint, str) or entrypoint not in names:
        raise WorkflowError(
            f'{INVALID}: spec.entrypoint "{quoted(entrypoint)}" is not the name of a template.'
        )


def _parameters(spec: dict[str, Any]) -> tuple[Parameter, ...]:
    arguments = spec.get("arguments")
    if arguments is None:
        return ()
    if not isinstance(arguments, dict):
        raise WorkflowError(f"{INVALID}: spec.arguments must be an object.")
    raw = arguments.get("parameters")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise WorkflowError(f"{INVALID}: spec.arguments.parameters must be a list.")
    parameters: list[Parameter] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise WorkflowError(
                f"{INVALID}: spec.arguments.parameters[{index}] must be an object with a non-empty name."
            )
        if name in names:
            raise WorkflowError(f'{INVALID}: parameter "{name}" is declared more than once.')
        names.add(name)
        parameters.append(Parameter(name=name, value=scalar(item.get("value"), f'the value of parameter "{name}"')))
    return tuple(parameters)


def _describe(document: Any) -> str:
    if document is None:
        return "an empty document"
    if isinstance(document, list):
        return "a list"
    if isinstance(document, str):
        return "a string"
    if isinstance(document, bool):
        return "a boolean"
    if isinstance(document, int | float):
        return "a number"
    return f"a {type(document).__name__}"
