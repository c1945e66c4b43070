"""Errors on pages are pages (the message, the status, a way back); the page scripts' JSON routes answer
the API's JSON errors."""

from __future__ import annotations

from flask import Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kfp_backend.api.errors import api_error_response
from kfp_backend.services.errors import ApiError
from kfp_backend.ui.blueprint import blueprint

_GRPC_TO_HTTP = {3: 400, 5: 404, 6: 409, 7: 403, 9: 400, 10: 409, 16: 401}
_TITLES = {400: "That request cannot be done", 401: "Sign in first", 403: "Not allowed", 404: "Not found",
           409: "Conflict"}


def _is_json_route() -> bool:
    return request.path.startswith("/ui/api/")


@blueprint.app_template_global()
def status_title(status: int) -> str:
    return _TITLES.get(status, "Something went wrong")


@blueprint.errorhandler(ApiError)
def api_error_page(error: ApiError) -> Response | tuple[str, int]:
    if _is_json_route():
        return api_error_response(error)
    status = _GRPC_TO_HTTP.get(error.grpc_code, 500)
    return render_template("error.html", status=status, message=error.external_message), status


@blueprint.errorhandler(HTTPException)
def http_error_page(error: HTTPException) -> tuple[Response | str, int]:
    status = error.code or 500
    if _is_json_route():
        return jsonify({"error": error.description or error.name, "code": status}), status
    return render_template("error.html", status=status, message=error.description or error.name), status
