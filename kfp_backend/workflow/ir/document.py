"""Tell a KFP v2 pipeline spec (IR) from other documents and split it from its platform spec.

The kfp 2.x SDK writes a pipeline as one YAML document, or two when it has platform settings: the
`PipelineSpec` and then a `platforms:` document (a `PlatformSpec`). The v2beta1 API also carries both in
one object, `{"pipeline_spec": ..., "platform_spec": ...}`. Both forms are read here; Argo Workflows
(kfp 1.x) are not pipeline specs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.manifest import _ALIAS_SLACK, _check_size, _Loader, load_document

_PARSE_FAILED = "Failed to parse the pipeline spec"
_INVALID = "Invalid pipeline spec"
_WRAPPED_SPEC = ("pipeline_spec", "pipelineSpec")
_WRAPPED_PLATFORM = ("platform_spec", "platformSpec")


@dataclass(frozen=True)
class SpecDocuments:
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any] | None = None


def is_pipeline_spec(document: Any) -> bool:
    """Whether a parsed document is a KFP v2 pipeline spec (bare, wrapped with a platform spec, or the
    list of a multi-document YAML file) rather than an Argo Workflow or something else."""
    if isinstance(document, list) and document:
        document = document[0]
    if not isinstance(document, Mapping):
        return False
    if "pipelineInfo" in document and "root" in document:
        return True
    inner = _wrapped(document)
    return isinstance(inner, Mapping) and "pipelineInfo" in inner and "root" in inner


def load_documents(text: str | bytes) -> list[Any]:
    """The documents of a YAML (possibly several, separated by `---`) or JSON file, empty ones left out."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise WorkflowError(f"{_PARSE_FAILED}: the file is not UTF-8 text.") from None
    if text.lstrip().startswith(("{", "[")):
        return [load_document(text)]  # JSON, or YAML in flow style: always one document
    try:
        documents = [document for document in yaml.load_all(text, Loader=_Loader) if document is not None]
    except yaml.MarkedYAMLError as exc:
        # Never echo the offending line: the file may come from a URL.
        where = f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})" if exc.problem_mark else ""
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise WorkflowError(f"{_PARSE_FAILED}: {problem}{where}.") from None
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{_PARSE_FAILED}: {type(exc).__name__}.") from None
    except RecursionError:
        raise WorkflowError(f"{_PARSE_FAILED}: the document is nested too deeply.") from None
    _check_size(documents, budget=len(text) + _ALIAS_SLACK)  # YAML aliases can expand enormously
    return documents


def split_documents(source: str | bytes | Mapping[str, Any] | Sequence[Any]) -> SpecDocuments:
    """The pipeline spec and the platform spec (if any) of text, a parsed document or a list of them."""
    documents: Sequence[Any]
    if isinstance(source, str | bytes):
        documents = load_documents(source)
    elif isinstance(source, Mapping):
        documents = [source]
    else:
        documents = [document for document in source if document is not None]
    if not documents:
        raise WorkflowError(f"{_INVALID}: the document is empty.")
    if len(documents) > 2:
        raise WorkflowError(
            f"{_INVALID}: expected a pipeline spec, optionally followed by a platform spec, got {len(documents)} "
            "documents."
        )
    first = documents[0]
    platform = documents[1] if len(documents) == 2 else None
    if isinstance(first, Mapping) and _wrapped(first) is not None:
        if platform is not None:
            raise WorkflowError(f"{_INVALID}: a wrapped pipeline spec cannot be followed by another document.")
        platform = next((first[key] for key in _WRAPPED_PLATFORM if first.get(key) is not None), None)
        first = _wrapped(first)
    if not is_pipeline_spec(first):
        raise WorkflowError(
            f"{_INVALID}: expected a KFP v2 pipeline spec (an object with pipelineInfo and root, as the kfp 2.x "
            f"SDK compiles), got {_describe(first)}."
        )
    if platform is not None and not (isinstance(platform, Mapping) and isinstance(platform.get("platforms"), Mapping)):
        raise WorkflowError(f"{_INVALID}: the document after the pipeline spec must be a platform spec (platforms:).")
    return SpecDocuments(dict(first), dict(platform) if platform is not None else None)


def _wrapped(document: Mapping[str, Any]) -> Any:
    return next((document[key] for key in _WRAPPED_SPEC if key in document), None)


def _describe(document: Any) -> str:
    if isinstance(document, Mapping):
        if document.get("kind") == "Workflow":
            return "an Argo Workflow (a kfp 1.x pipeline)"
        return "an object without pipelineInfo and root"
    if isinstance(document, list):
        return "a list"
    if isinstance(document, str):
        return "a string"
    return "a " + type(document).__name__
