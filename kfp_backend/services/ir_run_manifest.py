"""What run creation makes of a KFP v2 pipeline spec (IR): the runtime document the executor runs, for a
one-off run and for a run the scheduler fires from a job (`fired_ir_document`).

The document wraps the pipeline spec as the v2beta1 API does (`pipeline_spec`, `platform_spec`) and adds
the run's `runtime_config` (parameter values typed as the root's inputDefinitions declare them, defaults
applied; the pipeline root) and `metadata` (the run's workflow name, run id label, run name annotation),
so that `workflow.ir.is_pipeline_spec` tells it from an Argo workflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.run_manifest import (
    ANNOTATION_RUN_NAME,
    LABEL_RUN_ID,
    random_suffix,
    substitute_macros,
)
from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.document import split_documents
from kfp_backend.workflow.ir.executor_input import typed_parameter
from kfp_backend.workflow.ir.model import STRING, PipelineSpec
from kfp_backend.workflow.ir.parse import parse_pipeline_spec


def wrapped_spec(source: Any) -> tuple[dict[str, Any], PipelineSpec]:
    """The pipeline spec of `source` (text, a document or the documents of a file) in its wrapped form
    `{"pipeline_spec", "platform_spec"}`, checked. Raises WorkflowError."""
    documents = split_documents(source)
    spec = parse_pipeline_spec(documents.pipeline_spec if documents.platform_spec is None
                               else [documents.pipeline_spec, documents.platform_spec])
    wrapped: dict[str, Any] = {"pipeline_spec": documents.pipeline_spec}
    if documents.platform_spec is not None:
        wrapped["platform_spec"] = documents.platform_spec
    return wrapped, spec


def runtime_pipeline_run(
    document: Mapping[str, Any],
    *,
    run_id: str,
    run_name: str,
    now: int,
    parameters: Sequence[Mapping[str, str]] = (),
    parameter_values: Mapping[str, Any] | None = None,
    pipeline_root: str = "",
) -> dict[str, Any]:
    """The runtime document of a run of `document` (a wrapped pipeline spec). `parameters` are the v1beta1
    form (`[{"name", "value"}]`, text), `parameter_values` the v2beta1 one (JSON values); either is typed
    per the root's inputDefinitions (a NUMBER_INTEGER given as `3.0` or "3" is 3). InvalidArgument for an
    undeclared parameter, a value of the wrong type, or a required parameter without a value."""
    try:
        wrapped, spec = wrapped_spec(document)
    except WorkflowError as exc:
        raise InvalidArgument(str(exc)) from None
    declared = spec.root.inputs.parameters
    given: dict[str, Any] = {p["name"]: p.get("value", "") for p in parameters}
    given.update(parameter_values or {})
    values: dict[str, Any] = {}
    for name, value in given.items():
        if name not in declared:
            raise InvalidArgument(f"Unrecognized input parameter: {name}")
        if isinstance(value, str):
            value = substitute_macros(value, run_id=run_id, now=now)
        try:
            values[name] = typed_parameter(value, declared[name].type, f"input parameter {name!r}")
        except WorkflowError as exc:
            raise InvalidArgument(f"Invalid input parameter: {exc}") from None
        if declared[name].type == STRING and not isinstance(values[name], str):
            raise InvalidArgument(f"Invalid input parameter: input parameter {name!r} is not a STRING.")
    for name, parameter in declared.items():
        if name in values:
            continue
        if parameter.has_default:
            values[name] = parameter.default
        elif not parameter.optional:
            raise InvalidArgument(f"Missing required input parameter: {name}")
    base = "".join(c if c.isalnum() or c == "-" else "-" for c in spec.name.lower()).strip("-") or "pipeline"
    return {
        **wrapped,
        "metadata": {
            "name": f"{base[:57]}-{random_suffix()}",
            "labels": {LABEL_RUN_ID: run_id},
            "annotations": {ANNOTATION_RUN_NAME: run_name},
        },
        "runtime_config": {"parameter_values": values, "pipeline_root": pipeline_root},
    }


def fired_ir_document(
    spec_manifest: str,
    *,
    run_id: str,
    run_name: str,
    now: int,
    parameter_values: Mapping[str, Any],
    pipeline_root: str = "",
) -> dict[str, Any]:
    """The runtime document of a run fired from a job of an IR spec (`spec_manifest` as the job stores it),
    its typed `parameter_values` with the job-run macros already substituted, and the job's `pipeline_root`
    (the scheduler's IrRunDocument). The workflow name is the fired run's name, as for a fired Argo run.
    InvalidArgument as runtime_pipeline_run."""
    try:
        document, _ = wrapped_spec(spec_manifest)
    except WorkflowError as exc:
        raise InvalidArgument(f"Invalid IR spec format. {exc}") from None
    run = runtime_pipeline_run(
        document, run_id=run_id, run_name=run_name, now=now, parameter_values=parameter_values,
        pipeline_root=pipeline_root,
    )
    run["metadata"]["name"] = run_name
    return run


def check_job_parameters(document: Mapping[str, Any], parameter_values: Mapping[str, Any], *, now: int) -> None:
    """What a job of an IR spec (`document`, wrapped) checks of its parameters at creation: as a run of it would,
    once the job-run macros of text values are substituted (its first fire's), so that `[[Index]]` may stand for
    an integer. InvalidArgument for an undeclared parameter, a value of the wrong type or a missing one."""
    values = {
        name: substitute_macros(value, run_id="", now=now, scheduled_at=now, index=1)
        if isinstance(value, str) else value
        for name, value in parameter_values.items()
    }
    runtime_pipeline_run(document, run_id="", run_name="", now=now, parameter_values=values)
