"""Recurring run pages: the list, one recurring run (its schedule and the runs it created), create (cron or
periodic, the next fire times shown before saving), enable, disable, delete."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kfp_backend.services.errors import ApiError, InvalidArgument
from kfp_backend.services.jobs import TRIGGER_CRON, TRIGGER_PERIODIC, NewJob, NewTrigger
from kfp_backend.services.references import ResourceKey, ResourceType
from kfp_backend.services.schedule_preview import SchedulePreview
from kfp_backend.ui.blueprint import blueprint
from kfp_backend.ui.common import format_time, list_request, namespace_key, services
from kfp_backend.ui.run_forms import form_from_post, form_from_query, spec_of
from kfp_backend.ui.run_lists import run_table
from kfp_backend.ui.session import current_caller

PREVIEW_EXTENSION = "kfp_backend.ui.schedule_preview"
JOB_SORTS = {"name", "created_at"}


@dataclass
class ScheduleForm:
    kind: str = TRIGGER_CRON
    cron: str = "0 0 * * * *"
    interval_seconds: str = "3600"
    max_concurrency: str = "1"
    catchup: bool = True


def _schedule_form(source: dict) -> ScheduleForm:  # type: ignore[type-arg]
    return ScheduleForm(
        kind=TRIGGER_PERIODIC if source.get("kind") == TRIGGER_PERIODIC else TRIGGER_CRON,
        cron=str(source.get("cron", ScheduleForm.cron)).strip(),
        interval_seconds=str(source.get("interval_seconds", ScheduleForm.interval_seconds)).strip(),
        max_concurrency=str(source.get("max_concurrency", "1")).strip(),
        catchup=source.get("catchup", "on") == "on",
    )


def _trigger(form: ScheduleForm) -> NewTrigger:
    if form.kind == TRIGGER_PERIODIC:
        try:
            interval = int(form.interval_seconds)
        except ValueError:
            raise InvalidArgument(f"The interval {form.interval_seconds!r} is not a whole number of seconds.") from None
        return NewTrigger(kind=TRIGGER_PERIODIC, interval_seconds=interval)
    return NewTrigger(kind=TRIGGER_CRON, cron=form.cron)


def _preview(form: ScheduleForm) -> list[str]:
    preview: SchedulePreview = current_app.extensions[PREVIEW_EXTENSION]
    return [format_time(slot) for slot in preview.next_fire_times(_trigger(form))]


@blueprint.get("/ui/api/schedule-preview")
def schedule_preview() -> Response:
    try:
        times = _preview(_schedule_form(request.args.to_dict()))
    except InvalidArgument as exc:
        return jsonify({"error": exc.external_message, "times": []})
    return jsonify({"times": times})


@blueprint.get("/recurring-runs")
def recurring_runs() -> str:
    listing, sort, descending = list_request("created_at", JOB_SORTS)
    result = services().jobs.list(listing, namespace_key(), caller=current_caller())
    return render_template("recurring_runs.html", jobs=result.items, sort=sort, descending=descending, query={},
                           next_page_token=result.next_page_token)


@blueprint.get("/recurring-runs/<job_id>")
def recurring_run_page(job_id: str) -> str:
    job = services().jobs.get(job_id, caller=current_caller())
    return render_template("recurring_run.html", job=job.job, table=run_table(ResourceKey(ResourceType.JOB, job_id)))


@blueprint.get("/recurring-runs/new")
def new_recurring_run() -> str:
    schedule = ScheduleForm()
    return render_template("recurring_run_new.html", form=form_from_query(), schedule=schedule,
                           times=_safe_preview(schedule))


def _safe_preview(schedule: ScheduleForm) -> list[str]:
    try:
        return _preview(schedule)
    except InvalidArgument:
        return []


@blueprint.post("/recurring-runs/new")
def create_recurring_run() -> Response | tuple[str, int]:
    form, schedule = form_from_post(), _schedule_form(request.form.to_dict())
    if request.form.get("preview"):
        try:
            times, error = _preview(schedule), None
        except InvalidArgument as exc:
            times, error = [], exc.external_message
        return render_template("recurring_run_new.html", form=form, schedule=schedule, times=times, error=error), 200
    try:
        try:
            concurrency = int(schedule.max_concurrency)
        except ValueError:
            raise InvalidArgument(f"Max concurrency {schedule.max_concurrency!r} is not a whole number.") from None
        job = services().jobs.create(NewJob(
            name=form.name, description=form.description, **spec_of(form), max_concurrency=concurrency,
            trigger=_trigger(schedule), enabled=True, no_catchup=not schedule.catchup,
        ), caller=current_caller())
    except ApiError as exc:
        return render_template("recurring_run_new.html", form=form, schedule=schedule,
                               times=_safe_preview(schedule), error=exc.external_message), 400
    flash("Recurring run created.", "info")
    return redirect(url_for("ui.recurring_run_page", job_id=job.job.id))


@blueprint.post("/recurring-runs/<job_id>/<action>")
def recurring_run_action(job_id: str, action: str) -> Response:
    if action not in {"enable", "disable", "delete"}:
        abort(404)
    getattr(services().jobs, action)(job_id, caller=current_caller())
    flash({"enable": "Recurring run enabled.", "disable": "Recurring run disabled.",
           "delete": "Recurring run deleted."}[action], "info")
    if action == "delete":
        return redirect(url_for("ui.recurring_runs"))
    return redirect(url_for("ui.recurring_run_page", job_id=job_id))
