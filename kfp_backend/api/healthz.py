"""HealthzService: answers on any method, with the real server's exact body."""

from __future__ import annotations

import json

from flask import Blueprint, Response

from kfp_backend.api import API_PREFIX, services
from kfp_backend.services.authorization import multi_user_mode

blueprint = Blueprint("healthz", __name__, url_prefix=API_PREFIX)
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@blueprint.route("/healthz", methods=ANY_METHOD)
def healthz() -> Response:
    settings = services().settings
    # Hand-written like upstream's (note the spacing); clients read `multi_user`: true when namespaces
    # are isolated, which they are whenever authentication is on.
    sha, tag = json.dumps(settings.effective_commit_sha), json.dumps(settings.effective_tag_name)
    multi_user = json.dumps(multi_user_mode(settings))
    body = f'{{"commit_sha":{sha}, "tag_name":{tag}, "multi_user":{multi_user}}}'
    return Response(body, mimetype="application/json")
