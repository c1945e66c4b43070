"""The graph JSON the web UI draws (kfp_backend/ui/static/graph.js): a run's, live, and a pipeline version's.

The caller is the one the API's request hook authenticated (api/auth.py: a bearer token, the trusted user
header, or the UI's session cookie), and the graph is authorized as GetRun / GetPipelineVersion are. Errors
are the API's JSON errors (404 for an unknown id, 401, 403).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from kfp_backend.api import services
from kfp_backend.api.auth import current_caller
from kfp_backend.services.authorization import Authorizer
from kfp_backend.services.run_graph import RunGraphService

blueprint = Blueprint("ui_graph", __name__, url_prefix="/ui/api")
EXTENSION = "kfp_backend.run_graph"


def _graphs() -> RunGraphService:
    """The app's graph service, made on first use from its services (one per app)."""
    service = current_app.extensions.get(EXTENSION)
    if service is None:
        built = services()
        service = current_app.extensions[EXTENSION] = RunGraphService(
            built.db, Authorizer.from_settings(built.settings))
    return service


def _no_store(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    # A live run's graph changes every few seconds: never cached.
    return body, 200, {"Cache-Control": "no-store"}


@blueprint.get("/runs/<run_id>/graph")
def run_graph(run_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    return _no_store(_graphs().run_graph(run_id, caller=current_caller()))


@blueprint.get("/pipeline-versions/<version_id>/graph")
def version_graph(version_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    return _no_store(_graphs().version_graph(version_id, caller=current_caller()))
