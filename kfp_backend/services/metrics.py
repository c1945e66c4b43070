"""Run metrics: ReportRunMetrics' rules and the mlpipeline-metrics file format.

A metric is keyed by (run, node, name); the primary key makes the first report win, whatever the
number of reporters. `report_node_metrics` is what the executor calls for a finished node: it caps a
run at MAX_METRICS_PER_RUN metrics, as the persistence agent does. One ReportRunMetrics call carries
at most as many (the most the agent ever sends at once); upstream's server sets no limit of its own.
"""

from __future__ import annotations

import enum
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller
from kfp_backend.services.authorization import SINGLE_USER, Authorizer
from kfp_backend.services.errors import InvalidArgument, NotFound
from kfp_backend.services.text_fields import text_problem
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import runs_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.errors import MissingReferenceError
from kfp_backend.store.models import RunMetric

METRIC_NAME_PATTERN = "^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$"
_METRIC_NAME = re.compile(METRIC_NAME_PATTERN[1:-1])
MAX_NODE_ID_LENGTH = 128
MAX_METRICS_PER_RUN = 50
MAX_METRICS_PER_REPORT = MAX_METRICS_PER_RUN


class MetricFormat(enum.IntEnum):
    UNSPECIFIED = 0
    RAW = 1
    PERCENTAGE = 2


class ReportStatus(enum.IntEnum):
    UNSPECIFIED = 0
    OK = 1
    INVALID_ARGUMENT = 2
    DUPLICATE_REPORTING = 3
    INTERNAL_ERROR = 4


@dataclass(frozen=True)
class ReportedMetric:
    name: str
    node_id: str
    number_value: float = 0.0
    format: MetricFormat = MetricFormat.UNSPECIFIED


@dataclass(frozen=True)
class ReportResult:
    metric_name: str
    metric_node_id: str
    status: ReportStatus
    message: str = ""


def validate_metric(metric: ReportedMetric) -> str | None:
    """The INVALID_ARGUMENT message for a metric upstream refuses (or a database could not store), or None."""
    if not _METRIC_NAME.fullmatch(metric.name):
        return f"metric.name '{metric.name}' doesn't match with the pattern '{METRIC_NAME_PATTERN}'"
    if not metric.node_id:
        return "metric.node_id must not be empty"
    if len(metric.node_id.encode("utf-8", "surrogatepass")) > MAX_NODE_ID_LENGTH:
        return f"metric.node_id '{metric.node_id}' cannot be longer than {MAX_NODE_ID_LENGTH} characters"
    stored = text_problem("metric.node_id", metric.node_id)
    if stored is not None:
        return stored
    if not math.isfinite(metric.number_value):
        return f"metric.number_value of '{metric.name}' must be a finite number"
    return None


class MetricsService:
    def __init__(self, db: Database, authorizer: Authorizer = SINGLE_USER) -> None:
        self._db = db
        self._authz = authorizer

    def report(self, run_id: str, metrics: Sequence[ReportedMetric], *, caller: Caller) -> list[ReportResult]:
        """ReportRunMetrics: one result per metric, in order; an unknown run fails the whole call (404)."""
        base = time.time_ns()
        results: list[ReportResult] = []
        with transaction(self._db) as session:
            self._authz.run(session, caller, run_id, authz.REPORT_METRICS)
            if len(metrics) > MAX_METRICS_PER_REPORT:
                raise InvalidArgument(
                    f"metrics: at most {MAX_METRICS_PER_REPORT} metrics per report, got {len(metrics)}."
                )
            if not repo.run_exists(session, run_id):
                raise NotFound.resource("Run", run_id)
            for index, metric in enumerate(metrics):
                invalid = validate_metric(metric)
                if invalid is not None:
                    results.append(ReportResult(metric.name, metric.node_id, ReportStatus.INVALID_ARGUMENT, invalid))
                    continue
                row = RunMetric(
                    run_id=run_id,
                    node_id=metric.node_id,
                    name=metric.name,
                    number_value=float(metric.number_value),
                    format=MetricFormat(metric.format).name,
                    reported_at_ns=base + index,
                )
                try:
                    added = repo.add_metric(session, row)
                except MissingReferenceError:  # the run was deleted meanwhile
                    raise NotFound.resource("Run", run_id) from None
                if added:
                    results.append(ReportResult(metric.name, metric.node_id, ReportStatus.OK))
                else:
                    results.append(ReportResult(
                        metric.name, metric.node_id, ReportStatus.DUPLICATE_REPORTING,
                        f"same metric has been reported before: {metric.node_id}/{metric.name}",
                    ))
        return results

    def report_node_metrics(
        self, run_id: str, node_id: str, metrics: Sequence[ReportedMetric | dict[str, Any]], *, caller: Caller
    ) -> list[ReportResult]:
        """Report a finished node's metrics (as parse_metrics_file gives them), within the run's cap.

        The node id of every metric is `node_id` (a file's own node_id is ignored, as upstream). Once the
        run holds MAX_METRICS_PER_RUN metrics nothing more is reported.
        """
        with transaction(self._db, write=False) as session:
            if not repo.run_exists(session, run_id):
                raise NotFound.resource("Run", run_id)
            quota = MAX_METRICS_PER_RUN - repo.count_metrics(session, run_id)
        if quota <= 0 or not metrics:
            return []
        taken = [_as_reported(item, node_id) for item in list(metrics)[:quota]]
        return self.report(run_id, taken, caller=caller)


def _as_reported(item: ReportedMetric | dict[str, Any], node_id: str) -> ReportedMetric:
    if isinstance(item, ReportedMetric):
        return ReportedMetric(item.name, node_id, item.number_value, item.format)
    return ReportedMetric(
        name=str(item.get("name", "")),
        node_id=node_id,
        number_value=float(item.get("number_value", 0.0)),
        format=MetricFormat[item["format"]] if isinstance(item.get("format"), str) else MetricFormat(
            item.get("format", 0)
        ),
    )


# -- the mlpipeline-metrics file -----------------------------------------------------------------------------

_TOP_KEYS = {"metrics": "metrics", "run_id": "run_id", "runId": "run_id"}
_METRIC_KEYS = {
    "name": "name", "node_id": "node_id", "nodeId": "node_id",
    "number_value": "number_value", "numberValue": "number_value", "format": "format",
}
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


class _Invalid(ValueError):
    pass


def parse_metrics_file(data: bytes) -> list[dict[str, Any]] | None:
    """The metrics of an mlpipeline-metrics file, or None when the file is invalid.

    The file is read as jsonpb reads a ReportRunMetricsRequest: top-level keys `metrics` (and `run_id`,
    ignored) only; each metric has `name`, `node_id` (ignored by the reporter), `numberValue` /
    `number_value` (a number or a numeric string) and `format` (`RAW`, `PERCENTAGE`, `UNSPECIFIED` or
    0/1/2, absent = UNSPECIFIED). Any other key, or a value of the wrong type, invalidates the whole file.
    Each metric comes back as {"name", "node_id", "number_value", "format"} (format by name).
    """
    try:
        document = json.loads(data.decode("utf-8-sig"), parse_constant=_reject)
        return _parse_document(document)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


def _reject(name: str) -> Any:
    raise _Invalid(name)


def _parse_document(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise _Invalid("not an object")
    metrics: Any = None
    for key, value in document.items():
        canonical = _TOP_KEYS.get(key)
        if canonical is None:
            raise _Invalid(f"unknown field {key!r}")
        if canonical == "run_id":
            if value is not None and not isinstance(value, str):
                raise _Invalid("run_id")
        else:
            metrics = value
    if metrics is None:
        return []
    if not isinstance(metrics, list):
        raise _Invalid("metrics is not a list")
    return [_parse_metric(item) for item in metrics]


def _parse_metric(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _Invalid("a metric is not an object")
    metric: dict[str, Any] = {"name": "", "node_id": "", "number_value": 0.0, "format": "UNSPECIFIED"}
    for key, value in item.items():
        canonical = _METRIC_KEYS.get(key)
        if canonical is None:
            raise _Invalid(f"unknown field {key!r}")
        if value is None:
            continue
        if canonical in ("name", "node_id"):
            if not isinstance(value, str):
                raise _Invalid(canonical)
            metric[canonical] = value
        elif canonical == "number_value":
            metric["number_value"] = _number(value)
        else:
            metric["format"] = _format(value)
    return metric


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _Invalid("number_value")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()) and value.strip() == value:
        return float(value)
    raise _Invalid("number_value")


def _format(value: Any) -> str:
    if isinstance(value, bool):
        raise _Invalid("format")
    if isinstance(value, int) and value in MetricFormat._value2member_map_:
        return MetricFormat(value).name
    if isinstance(value, str) and value in MetricFormat.__members__:
        return value
    raise _Invalid("format")
