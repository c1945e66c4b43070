"""Create a run, or a recurring run, from a pipeline version (or as a clone of a run): the form, prefilled
with the version's parameters and their defaults, and what its submission becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import request

from kfp_backend.services.listing import ListRequest
from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType
from kfp_backend.ui.common import namespace_key, parameters_of, services
from kfp_backend.ui.session import current_caller

PARAMETER_PREFIX = "param."


@dataclass
class RunForm:
    """What the create form shows and sends back."""

    name: str = ""
    description: str = ""
    experiment_id: str = ""
    pipeline_id: str = ""
    version_id: str = ""
    clone_of: str = ""
    pipeline_label: str = ""
    parameters: list[dict[str, str]] = field(default_factory=list)
    experiments: list[Any] = field(default_factory=list)


def _experiments() -> list[Any]:
    result = services().experiments.list(
        ListRequest(page_size=200, sort_by="created_at desc"), namespace_key(), caller=current_caller())
    return [item for item in result.items if getattr(item, "storage_state", "").endswith("AVAILABLE")]


def form_from_query() -> RunForm:
    """`?clone=<run>`, or `?pipeline_id=&version_id=` (`experiment_id=` preselects an experiment)."""
    form = RunForm(experiment_id=request.args.get("experiment_id", ""))
    clone = request.args.get("clone", "")
    caller = current_caller()
    if clone:
        run = services().runs.get(clone, caller=caller).view.run
        form.name, form.description, form.clone_of = f"Clone of {run.name}", run.description, run.id
        form.experiment_id = form.experiment_id or run.experiment_id
        form.pipeline_id, form.version_id = run.pipeline_id, run.pipeline_version_id or ""
        form.parameters = parameters_of(run.parameters)
        form.pipeline_label = run.pipeline_name or "the cloned run's pipeline"
    else:
        form.pipeline_id, form.version_id = request.args.get("pipeline_id", ""), request.args.get("version_id", "")
        if form.version_id:
            version = services().pipelines.get_version(form.version_id, caller=caller)
            form.pipeline_id = form.pipeline_id or version.pipeline_id
            form.parameters = parameters_of(version.parameters)
            form.pipeline_label = version.name
        elif form.pipeline_id:
            detail = services().pipelines.get(form.pipeline_id, caller=caller)
            form.pipeline_label = detail.pipeline.name
            if detail.default_version is not None:
                form.version_id = detail.default_version.id
                form.parameters = parameters_of(detail.default_version.parameters)
        form.name = f"Run of {form.pipeline_label}" if form.pipeline_label else ""
    form.parameters = [{"name": p.get("name", ""), "value": p.get("value", "") or ""} for p in form.parameters]
    form.experiments = _experiments()
    return form


def form_from_post() -> RunForm:
    names = [key[len(PARAMETER_PREFIX):] for key in request.form if key.startswith(PARAMETER_PREFIX)]
    form = RunForm(
        name=request.form.get("name", "").strip(), description=request.form.get("description", ""),
        experiment_id=request.form.get("experiment_id", ""), pipeline_id=request.form.get("pipeline_id", ""),
        version_id=request.form.get("version_id", ""), clone_of=request.form.get("clone_of", ""),
        pipeline_label=request.form.get("pipeline_label", ""),
        parameters=[{"name": name, "value": request.form.get(PARAMETER_PREFIX + name, "")} for name in names],
    )
    form.experiments = _experiments()
    return form


def spec_of(form: RunForm) -> dict[str, Any]:
    """The NewRun / NewJob fields that say what runs: a version, or the cloned run's own manifest."""
    references = [ResourceReference(ResourceKey(ResourceType.EXPERIMENT, form.experiment_id), Relationship.OWNER)]
    fields: dict[str, Any] = {"parameters": form.parameters}
    if form.version_id:
        references.append(ResourceReference(ResourceKey(ResourceType.PIPELINE_VERSION, form.version_id),
                                            Relationship.CREATOR))
        fields["pipeline_id"] = form.pipeline_id
    elif form.clone_of:
        original = services().runs.get(form.clone_of, caller=current_caller())
        fields["workflow_manifest"] = original.view.pipeline_spec_manifest or ""
    else:
        fields["pipeline_id"] = form.pipeline_id
    fields["resource_references"] = tuple(references)
    return fields
