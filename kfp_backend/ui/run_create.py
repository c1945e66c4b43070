"""The create-run page (`/runs/new`): from a pipeline version, or a clone of a run."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from kfp_backend.services.errors import ApiError
from kfp_backend.services.runs import NewRun
from kfp_backend.ui.blueprint import blueprint
from kfp_backend.ui.common import services
from kfp_backend.ui.run_forms import form_from_post, form_from_query, spec_of
from kfp_backend.ui.session import current_caller


@blueprint.get("/runs/new")
def new_run() -> str:
    return render_template("run_new.html", form=form_from_query())


@blueprint.post("/runs/new")
def create_run() -> Response | tuple[str, int]:
    form = form_from_post()
    try:
        detail = services().runs.create(
            NewRun(name=form.name, description=form.description, **spec_of(form)), caller=current_caller())
    except ApiError as exc:
        return render_template("run_new.html", form=form, error=exc.external_message), 400
    flash("Run created.", "info")
    return redirect(url_for("ui.run_page", run_id=detail.view.run.id))
