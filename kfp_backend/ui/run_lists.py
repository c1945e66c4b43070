"""The runs list (also `/` and an experiment's runs): filter, sort (by any column, a metric too), page by page
token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import request

from kfp_backend.services.clock import now_seconds
from kfp_backend.services.references import ResourceKey
from kfp_backend.services.runs import RunView
from kfp_backend.store.states import STORAGE_ARCHIVED, STORAGE_AVAILABLE
from kfp_backend.ui.common import RUN_STATUSES, format_duration, list_request, services
from kfp_backend.ui.session import current_caller

RUN_SORTS = {"name", "created_at", "status", "scheduled_at", "duration", "pipeline_name"}
MAX_METRIC_COLUMNS = 5


@dataclass
class RunTable:
    """One page of runs as a table shows it."""

    rows: list[dict[str, Any]]
    metric_columns: list[str]
    sort: str
    descending: bool
    next_page_token: str
    query: dict[str, str] = field(default_factory=dict)
    statuses: tuple[str, ...] = RUN_STATUSES


def chosen_metrics() -> list[str]:
    names = [name.strip() for name in request.args.get("metrics", "").split(",") if name.strip()]
    return names[:MAX_METRIC_COLUMNS]


def run_row(view: RunView, now: int) -> dict[str, Any]:
    run = view.run
    metrics = {}
    for metric in view.metrics:
        metrics.setdefault(metric.name.lower(), metric.number_value)
    return {
        "id": run.id, "name": run.name, "status": run.status or "Pending", "created_at": run.created_at,
        "duration": format_duration(run.created_at, run.finished_at, now),
        "pipeline": run.pipeline_name, "pipeline_id": run.pipeline_id, "experiment_id": run.experiment_id,
        "metrics": metrics, "archived": run.storage_state == STORAGE_ARCHIVED,
    }


def run_table(key: ResourceKey | None) -> RunTable:
    """The page of runs the query asks for: `name` (substring), `status`, `archived=1`, `sort`, `desc`,
    `page_token`, `metrics` (columns, comma-separated)."""
    name = request.args.get("name", "").strip()
    status = request.args.get("status", "")
    archived = request.args.get("archived") == "1"
    predicates: list[dict[str, Any]] = [
        {"key": "storage_state", "op": "EQUALS", "string_value": STORAGE_ARCHIVED if archived else STORAGE_AVAILABLE}
    ]
    if name:
        predicates.append({"key": "name", "op": "IS_SUBSTRING", "string_value": name})
    if status in RUN_STATUSES:
        predicates.append({"key": "status", "op": "EQUALS", "string_value": status})
    listing, sort, descending = list_request("created_at", RUN_SORTS, predicates)

    result = services().runs.list(listing, key, caller=current_caller(), ui_sorts=True)
    now = now_seconds()
    query = {k: v for k, v in {
        "name": name, "status": status, "archived": "1" if archived else "", "metrics": request.args.get("metrics", ""),
    }.items() if v}
    return RunTable(
        rows=[run_row(view, now) for view in result.items], metric_columns=chosen_metrics(), sort=sort,
        descending=descending, next_page_token=result.next_page_token, query=query,
    )
