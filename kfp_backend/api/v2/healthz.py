"""GET /apis/v2beta1/healthz: answers any method, as upstream's, with the v2 body (adds `pipeline_store`)."""

from __future__ import annotations

from flask import Blueprint

from kfp_backend.api import services
from kfp_backend.api.healthz import ANY_METHOD
from kfp_backend.api.v2 import V2_PREFIX
from kfp_backend.services.authorization import multi_user_mode

blueprint = Blueprint("v2_healthz", __name__, url_prefix=V2_PREFIX)
# Pipelines live in the database (upstream's other choice, "kubernetes", stores them as custom resources).
PIPELINE_STORE = "database"


@blueprint.route("/healthz", methods=ANY_METHOD)
def healthz() -> dict:
    settings = services().settings
    return {
        "commit_sha": settings.effective_commit_sha,
        "tag_name": settings.effective_tag_name,
        "multi_user": multi_user_mode(settings),
        "pipeline_store": PIPELINE_STORE,
    }
