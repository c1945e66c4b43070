"""What every page shares: the services, the namespace key of lists, list requests, and formatting."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from flask import request

from kfp_backend.api import services as api_services
from kfp_backend.services.all_services import Services
from kfp_backend.services.errors import FailedPrecondition
from kfp_backend.services.listing import ListRequest
from kfp_backend.services.references import ResourceKey, ResourceType
from kfp_backend.store.states import ERROR, FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED, TERMINATING
from kfp_backend.ui.session import auth_required, current_namespace

PAGE_SIZE = 25
RUN_STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, ERROR, SKIPPED, TERMINATING)
# The status a row shows as text, and the class that colours it (text first: colour is never the only sign).
_STATUS_CLASS = {
    SUCCEEDED: "ok", SKIPPED: "ok", FAILED: "bad", ERROR: "bad", RUNNING: "busy", PENDING: "wait",
    TERMINATING: "wait", "": "wait", "Omitted": "wait",
}
_STATUS_ICON = {"ok": "✓", "bad": "✗", "busy": "●", "wait": "○"}


def services() -> Services:
    return api_services()


def namespace_key() -> ResourceKey | None:
    """The NAMESPACE key of lists: None in single-user mode. In multi-user mode a namespace must be picked."""
    if not auth_required():
        return None
    namespace = current_namespace()
    if namespace is None:
        raise FailedPrecondition("Pick a namespace to work in (the namespace field at the top of the page).")
    return ResourceKey(ResourceType.NAMESPACE, namespace)


def predicate_filter(predicates: list[dict[str, Any]]) -> str | None:
    return json.dumps({"predicates": predicates}) if predicates else None


def list_request(default_sort: str, sortable: set[str], predicates: list[dict[str, Any]] | None = None,
                 page_size: int = PAGE_SIZE) -> tuple[ListRequest, str, bool]:
    """A ListRequest from the page's query (`sort`, `desc`, `page_token`); returns it with the sort used."""
    sort = request.args.get("sort", default_sort)
    if sort not in sortable and not sort.startswith("metric:"):
        sort = default_sort
    descending = request.args.get("desc", "1" if sort == default_sort else "0") == "1"
    return ListRequest(
        page_token=request.args.get("page_token") or None,
        page_size=page_size,
        sort_by=f"{sort} desc" if descending else sort,
        filter=predicate_filter(predicates or []),
    ), sort, descending


def format_time(seconds: int | None) -> str:
    if not seconds:
        return "-"
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(start: int | None, end: int | None, now: int | None = None) -> str:
    if not start:
        return "-"
    stop = end or now
    if not stop or stop < start:
        return "-"
    seconds = stop - start
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def status_class(status: str | None) -> str:
    return _STATUS_CLASS.get(status or "", "wait")


def status_icon(status: str | None) -> str:
    return _STATUS_ICON[status_class(status)]


def parameters_of(text: str | None) -> list[dict[str, str]]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [p for p in value if isinstance(p, dict)] if isinstance(value, list) else []
