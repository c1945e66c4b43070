"""The `Idempotency-Key` request header on the create endpoints (an extension; the rules are
services/idempotency.py's, the wire is docs/compatibility.md's "Idempotent creation").

`@idempotent` wraps a create handler: without the header the handler runs as ever (one header lookup more);
with it, the request's fingerprint (method, path, query, and the body's bytes, or for a multipart upload its
fields and files) claims the key before the handler runs, and the handler's response is recorded for the
key's later requests, which get it again with `Idempotent-Replayed: true`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from kfp_backend.api import services
from kfp_backend.api.auth import current_caller
from kfp_backend.services.idempotency import Replay, check_key

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_CHUNK = 1 << 16


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def handle(*args: Any, **kwargs: Any) -> Any:
        # (A header sent twice arrives as one value, "a, b", as WSGI servers join repeated headers.)
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        check_key(key)
        fingerprint = request_fingerprint()
        if fingerprint is None:
            return view(*args, **kwargs)  # a body the handler cannot read either: it answers the error
        keyed = services().idempotency
        begun = keyed.begin(key, fingerprint, caller=current_caller())
        if isinstance(begun, Replay):
            return _replayed(begun)
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except BaseException:
            keyed.abandon(begun)
            raise
        keyed.finish(begun, response.status_code, response.content_type or "", response.get_data())
        return response

    return handle


def request_fingerprint() -> str | None:
    """SHA-256 (hex) of what makes two requests the same request; None for a multipart body that does not parse.

    A JSON body counts byte for byte (a retry sends the same bytes); a multipart body counts by its fields and
    files, as its boundary is new on every request.
    """
    digest = hashlib.sha256()
    _add(digest, request.method, request.path)
    for name, value in sorted(request.args.items(multi=True)):
        _add(digest, "query", name, value)
    if request.mimetype != "multipart/form-data":
        _add(digest, "body", request.get_data(cache=True))
        return digest.hexdigest()
    try:
        fields, files = request.form, request.files
    except (RequestEntityTooLarge, ValueError):
        return None
    # (A malformed part may lack its name: None counts as "".)
    for name, value in sorted((name or "", value or "") for name, value in fields.items(multi=True)):
        _add(digest, "field", name, value)
    for name, upload in sorted(files.items(multi=True), key=lambda item: item[0] or ""):
        _add(digest, "file", name or "", upload.filename or "", _file_digest(upload.stream))
    return digest.hexdigest()


def _file_digest(stream: Any) -> bytes:
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    stream.seek(0)  # the handler reads the file again
    return digest.digest()


def _add(digest: Any, *parts: str | bytes) -> None:
    # Each part length-prefixed: ("ab", "c") and ("a", "bc") differ.
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)


def _replayed(replay: Replay) -> Response:
    response = Response(replay.body, status=replay.status, content_type=replay.content_type)
    response.headers[REPLAYED_HEADER] = "true"
    return response
