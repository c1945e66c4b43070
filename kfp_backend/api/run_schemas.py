"""Wire schemas of RunService (see api/schemas.py for the conventions)."""

from __future__ import annotations

import math
from typing import Any

from marshmallow import ValidationError, fields

from kfp_backend.api.schemas import Enum, ProtoSchema, format_timestamp, number_from_text, omit_zero
from kfp_backend.api.spec_schemas import SpecRequestSchema, dump_spec_fields
from kfp_backend.services.experiments import STORAGE_AVAILABLE
from kfp_backend.services.metrics import MetricFormat, ReportedMetric, ReportResult
from kfp_backend.services.runs import NewRun, RunDetail, RunMetric, RunView


class Double(fields.Field):
    """A proto double: a JSON number, or (as jsonpb reads it) a numeric string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool):
            raise ValidationError("expected a number")
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            number = number_from_text(value, float, "a number")
        else:
            raise ValidationError("expected a number")
        if not math.isfinite(number):
            raise ValidationError(f"expected a finite number, got {value!r}")
        return number


class RunRequestSchema(SpecRequestSchema):
    """The body of CreateRun (an api.Run); output-only fields are ignored."""

    def to_new_run(self, body: dict[str, Any]) -> NewRun:
        return NewRun(**self.spec_fields(body))


class RunMetricRequestSchema(ProtoSchema):
    name = fields.String(load_default="")
    node_id = fields.String(load_default="")
    number_value = Double(load_default=0.0)
    format = Enum(MetricFormat, load_default=MetricFormat.UNSPECIFIED)


class ReportMetricsRequestSchema(ProtoSchema):
    run_id = fields.String(load_default="")
    metrics = fields.List(fields.Nested(RunMetricRequestSchema), load_default=list)

    def to_metrics(self, body: dict[str, Any]) -> list[ReportedMetric]:
        return [
            ReportedMetric(m["name"], m["node_id"], m["number_value"], MetricFormat(m["format"]))
            for m in body["metrics"]
        ]


def _dump_metric(metric: RunMetric) -> dict[str, Any]:
    body: dict[str, Any] = {"name": metric.name, "node_id": metric.node_id}
    if metric.number_value:
        body["number_value"] = metric.number_value
    if metric.format and metric.format != MetricFormat.UNSPECIFIED.name:
        body["format"] = metric.format
    return body


def dump_run(view: RunView) -> dict[str, Any]:
    """An api.Run in the gateway's field order, zero values omitted."""
    run = view.run
    body: dict[str, Any] = {"id": run.id, "name": run.name}
    if run.storage_state and run.storage_state != STORAGE_AVAILABLE:
        body["storage_state"] = run.storage_state
    body.update(dump_spec_fields(view))
    body["created_at"] = format_timestamp(run.created_at)
    body["scheduled_at"] = format_timestamp(run.scheduled_at)
    body["finished_at"] = format_timestamp(run.finished_at)
    if run.status:
        body["status"] = run.status
    if view.metrics:
        body["metrics"] = [_dump_metric(m) for m in view.metrics]
    return body


def dump_run_detail(detail: RunDetail) -> dict[str, Any]:
    runtime = {"workflow_manifest": detail.workflow_manifest} if detail.workflow_manifest else {}
    return {"run": dump_run(detail.view), "pipeline_runtime": runtime}


def dump_report_results(results: list[ReportResult]) -> dict[str, Any]:
    rendered = [
        omit_zero({
            "metric_name": result.metric_name,
            "metric_node_id": result.metric_node_id,
            "status": result.status.name if result.status else "",
            "message": result.message,
        })
        for result in results
    ]
    return {"results": rendered} if rendered else {}

