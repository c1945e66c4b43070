"""What a pipeline version stores as its template, and how either API shows it.

A version holds one of two kinds of pipeline, told apart by the stored template itself:
- an Argo Workflow (kfp 1.x), stored re-serialized as compact JSON, as it always was;
- a KFP v2 pipeline spec (IR, kfp 2.x), validated with workflow.ir and stored as uploaded (YAML or JSON, a
  platform spec as a second document), so that GET .../templates returns the uploaded text.
Both APIs read the same rows: v1beta1 shows the template as text, v2beta1 as a struct (`pipeline_spec`).
"""

from __future__ import annotations

import json
from typing import Any

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.text_fields import check_text
from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir import is_pipeline_spec, parse_pipeline_spec
from kfp_backend.workflow.ir.document import load_documents, split_documents
from kfp_backend.workflow.manifest import parse_workflow

MAX_PARAMETER_BYTES = 10000
# An IR version reports no parameters on v1beta1, as upstream's (its inputs live in the spec's root).
NO_PARAMETERS = "[]"


def template_and_parameters(manifest: bytes) -> tuple[str, str]:
    """The template to store for an uploaded or downloaded manifest and its v1 parameters' JSON;
    InvalidArgument naming what is wrong."""
    documents = _documents(manifest)
    if documents is not None and is_pipeline_spec(documents):
        return _ir_template(manifest, documents), NO_PARAMETERS
    try:
        workflow = parse_workflow(manifest)
    except WorkflowError as exc:
        raise InvalidArgument(str(exc)) from None
    parameters = json.dumps([p.to_dict() for p in workflow.parameters], separators=(",", ":"))
    if len(parameters.encode()) > MAX_PARAMETER_BYTES:
        raise InvalidArgument(f"The input parameter length exceed maximum size of {MAX_PARAMETER_BYTES}.")
    return workflow.json, parameters


def manifest_of_struct(spec: Any) -> bytes:
    """The manifest of a `pipeline_spec` given as a JSON struct (a v2beta1 request body), as JSON text."""
    if not isinstance(spec, dict) or not (is_pipeline_spec(spec) or "apiVersion" in spec or "kind" in spec):
        raise InvalidArgument(
            "pipeline_spec must be a KFP v2 pipeline spec (an object with pipelineInfo and root, as the kfp 2.x "
            "SDK compiles; with a platform spec: {pipeline_spec, platform_spec}) or an Argo Workflow."
        )
    return json.dumps(spec, ensure_ascii=False).encode()


def is_ir_template(template: str | None) -> bool:
    """Whether a stored template is a KFP v2 pipeline spec (else an Argo Workflow, or nothing)."""
    if not template:
        return False
    documents = _documents(template)
    return documents is not None and is_pipeline_spec(documents)


def spec_struct(template: str | None) -> dict[str, Any] | None:
    """A stored template as v2beta1's `pipeline_spec` struct: the pipeline spec, or `{"pipeline_spec",
    "platform_spec"}` when it has a platform spec; an Argo template is its workflow document."""
    if not template:
        return None
    documents = _documents(template)
    if documents is None:
        return None
    if is_pipeline_spec(documents):
        split = split_documents(documents)
        if split.platform_spec is None:
            return split.pipeline_spec
        return {"pipeline_spec": split.pipeline_spec, "platform_spec": split.platform_spec}
    document = documents[0] if len(documents) == 1 else None
    return document if isinstance(document, dict) else None


def _documents(text: str | bytes) -> list[Any] | None:
    try:
        return load_documents(text)
    except WorkflowError:
        return None


def _ir_template(manifest: bytes, documents: list[Any]) -> str:
    try:
        parse_pipeline_spec(documents)
    except WorkflowError as exc:
        raise InvalidArgument(str(exc)) from None
    try:
        text = manifest.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("The pipeline spec is not UTF-8 text.") from None
    check_text("pipeline_spec", text, max_bytes=None)
    return text
