"""The web UI, served by the API server itself at `/` (docs/ui.md).

Server-rendered Jinja pages over the same services as the API, a little vanilla JavaScript, every asset
served from `static/` (no build step, no CDN). HTTP like `api/`: it calls services, never the store.
"""

from __future__ import annotations

from flask import Flask

from kfp_backend.config import Settings
from kfp_backend.services.all_services import Services
from kfp_backend.services.schedule_preview import SchedulePreview
from kfp_backend.ui import (  # noqa: F401 - each module adds its routes to the blueprint
    auth_pages,
    compare,
    errors,
    experiments,
    pipelines,
    recurring_runs,
    run_create,
    runs,
)
from kfp_backend.ui.blueprint import blueprint
from kfp_backend.ui.recurring_runs import PREVIEW_EXTENSION
from kfp_backend.ui.session import configure as configure_session
from kfp_backend.ui.templating import install_template_helpers

__all__ = ["blueprint", "install"]


def install(app: Flask, settings: Settings, services: Services, *, schedule_preview: SchedulePreview) -> None:
    """Register the `ui` blueprint, its session and its template helpers (after the API's hooks)."""
    app.extensions[PREVIEW_EXTENSION] = schedule_preview
    configure_session(app, settings, services)
    install_template_helpers(app)
    app.register_blueprint(blueprint)
