"""`/compare?runs=a,b,...`: parameters and metrics side by side, differences marked, and a bar chart (inline
SVG drawn by the template) of one metric across the runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import render_template, request

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.ui.blueprint import blueprint
from kfp_backend.ui.common import parameters_of, services, status_class
from kfp_backend.ui.session import current_caller

MAX_COMPARED = 10
CHART_WIDTH, BAR_HEIGHT, BAR_GAP, LABEL_WIDTH = 640, 22, 8, 200


@dataclass
class Row:
    name: str
    values: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


def _requested_ids() -> list[str]:
    ids = [part.strip() for value in request.args.getlist("runs") for part in value.split(",") if part.strip()]
    ids += [value for value in request.args.getlist("run") if value]
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_COMPARED:
        raise InvalidArgument(f"Compare at most {MAX_COMPARED} runs at once ({len(unique)} were given).")
    return unique


def _rows(per_run: list[dict[str, str]]) -> list[Row]:
    names = list(dict.fromkeys(name for values in per_run for name in values))
    return [Row(name, [values.get(name, "-") for values in per_run]) for name in names]


def _chart(runs: list[Any], metrics: list[dict[str, float]], metric: str) -> dict[str, Any] | None:
    values = [(run.name, m[metric]) for run, m in zip(runs, metrics, strict=True) if metric in m]
    if not values:
        return None
    top = max(abs(v) for _, v in values) or 1.0
    span = CHART_WIDTH - LABEL_WIDTH - 80
    bars = [{"label": name, "value": value, "y": i * (BAR_HEIGHT + BAR_GAP),
             "width": max(1.0, abs(value) / top * span)} for i, (name, value) in enumerate(values)]
    return {"metric": metric, "bars": bars, "width": CHART_WIDTH, "label_width": LABEL_WIDTH,
            "height": len(bars) * (BAR_HEIGHT + BAR_GAP), "bar_height": BAR_HEIGHT}


@blueprint.get("/compare")
def compare() -> str:
    caller = current_caller()
    details = [services().runs.get(run_id, caller=caller) for run_id in _requested_ids()]
    runs = [detail.view.run for detail in details]
    parameters = [{p.get("name", ""): str(p.get("value", "")) for p in parameters_of(run.parameters)} for run in runs]
    metrics: list[dict[str, float]] = []
    for detail in details:
        values: dict[str, float] = {}
        for metric in detail.view.metrics:
            values.setdefault(metric.name, metric.number_value)
        metrics.append(values)
    metric_rows = _rows([{name: f"{value:.6g}" for name, value in values.items()} for values in metrics])
    metric_names = [row.name for row in metric_rows]
    chosen = request.args.get("metric") or (metric_names[0] if metric_names else "")
    return render_template(
        "compare.html", runs=runs, statuses=[status_class(run.status) for run in runs],
        parameter_rows=_rows(parameters), metric_rows=metric_rows, metric_names=metric_names, chosen=chosen,
        chart=_chart(runs, metrics, chosen) if chosen else None, ids=",".join(run.id for run in runs),
    )
