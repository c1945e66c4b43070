"""GET /metrics: the server's Prometheus metrics (kfp_backend/observability.py), and the request hooks that
count and time every request by its route template.

Open like healthz (a scraper carries no user's token): every label value is a method, a route template, a
status code or a run state, so nothing here names a run, a user or a namespace. Runs by state are counted
by one query when scraped; requests cost an in-memory counter and histogram update, no database work.
With PROMETHEUS_MULTIPROC_DIR set, the scrape adds up the values every process of the server wrote there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from kfp_backend.api import services
from kfp_backend.observability import observe_request
from kfp_backend.services.server_stats import runs_by_state

blueprint = Blueprint("prometheus", __name__)
ENDPOINT = "prometheus.metrics"
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class _Scrape:
    """What one scrape serves: this process's metrics (or every process's, in multiprocess mode) and the
    runs by state, read from the database now."""

    def __init__(self, count_runs: Callable[[], dict[str, int]]) -> None:
        self.count_runs = count_runs

    def collect(self) -> Iterator[Metric]:
        if os.environ.get(MULTIPROC_DIR_VARIABLE):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        runs = GaugeMetricFamily("kfp_backend_runs", "Runs by state (all namespaces together).", labels=["state"])
        for state, count in self.count_runs().items():
            runs.add_metric([state], count)
        yield runs


@blueprint.route("/metrics", methods=["GET"])
def metrics() -> Response:
    db = services().db
    scrape = _Scrape(lambda: runs_by_state(db))
    return Response(generate_latest(scrape), content_type=CONTENT_TYPE_LATEST)  # type: ignore[arg-type]


def _start_clock() -> None:
    g.metrics_started = time.perf_counter()


def _count(response: Response) -> Response:
    started = g.get("metrics_started")
    if started is not None:
        rule = request.url_rule
        observe_request(request.method, rule.rule if rule is not None else None, response.status_code,
                        time.perf_counter() - started)
    return response


def install(app: Flask) -> None:
    """Register the request hooks; call before any other before_request hook, so refused requests count."""
    app.before_request(_start_clock)
    app.after_request(_count)
