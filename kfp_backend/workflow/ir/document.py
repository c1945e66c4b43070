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

from kfp_backend.workflow.documents import read_documents
from kfp_backend.workflow.errors import WorkflowError

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
    return read_documents(text, _PARSE_FAILED)


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
