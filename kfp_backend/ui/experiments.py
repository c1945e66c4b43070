"""Experiment pages: the list (filter, sort, page; create, archive, restore) and one experiment's runs and
recurring runs."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kfp_backend.services.errors import ApiError
from kfp_backend.services.experiments import NewExperiment
from kfp_backend.services.listing import ListRequest
from kfp_backend.services.references import Relationship, ResourceKey, ResourceReference, ResourceType
from kfp_backend.store.states import STORAGE_ARCHIVED, STORAGE_AVAILABLE
from kfp_backend.ui.blueprint import blueprint
from kfp_backend.ui.common import list_request, namespace_key, services
from kfp_backend.ui.run_lists import run_table
from kfp_backend.ui.session import current_caller, current_namespace

EXPERIMENT_SORTS = {"name", "description", "created_at"}


@blueprint.get("/experiments")
def experiments() -> str:
    name = request.args.get("name", "").strip()
    archived = request.args.get("archived") == "1"
    predicates: list[dict[str, Any]] = [
        {"key": "storage_state", "op": "EQUALS", "string_value": STORAGE_ARCHIVED if archived else STORAGE_AVAILABLE}
    ]
    if name:
        predicates.append({"key": "name", "op": "IS_SUBSTRING", "string_value": name})
    listing, sort, descending = list_request("created_at", EXPERIMENT_SORTS, predicates)
    result = services().experiments.list(listing, namespace_key(), caller=current_caller())
    query = {k: v for k, v in {"name": name, "archived": "1" if archived else ""}.items() if v}
    return render_template(
        "experiments.html", experiments=result.items, sort=sort, descending=descending, query=query,
        next_page_token=result.next_page_token, archived=archived,
    )


@blueprint.post("/experiments")
def create_experiment() -> Response:
    namespace = current_namespace()
    references = [ResourceReference(ResourceKey(ResourceType.NAMESPACE, namespace), Relationship.OWNER)] \
        if namespace else []
    try:
        created = services().experiments.create(NewExperiment(
            name=request.form.get("name", "").strip(), description=request.form.get("description", ""),
            resource_references=references), caller=current_caller())
    except ApiError as exc:
        flash(exc.external_message, "error")
        return redirect(url_for("ui.experiments"))
    flash(f"Experiment {created.name!r} created.", "info")
    return redirect(url_for("ui.experiment_page", experiment_id=created.id))


@blueprint.get("/experiments/<experiment_id>")
def experiment_page(experiment_id: str) -> str:
    caller = current_caller()
    experiment = services().experiments.get(experiment_id, caller=caller)
    key = ResourceKey(ResourceType.EXPERIMENT, experiment_id)
    jobs = services().jobs.list(ListRequest(page_size=100, sort_by="created_at desc"), key, caller=caller)
    return render_template("experiment.html", experiment=experiment, table=run_table(key), jobs=jobs.items,
                           archived=experiment.storage_state == STORAGE_ARCHIVED)


@blueprint.post("/experiments/<experiment_id>/<action>")
def experiment_action(experiment_id: str, action: str) -> Response:
    if action not in {"archive", "unarchive"}:
        abort(404)
    getattr(services().experiments, action)(experiment_id, caller=current_caller())
    flash("Experiment archived (with its runs)." if action == "archive" else "Experiment restored.", "info")
    return redirect(url_for("ui.experiment_page", experiment_id=experiment_id))
