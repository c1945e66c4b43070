"""File bodies streamed to the client, whole or by one byte range, never read into memory at once.

Ranges follow RFC 9110 §14 for a single range: `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes;
the whole file when it is shorter) get 206 with that part; a range that starts at or past the end gets 416
(`RequestedRangeNotSatisfiable`, rendered by errors.py with `Content-Range: bytes */<length>`). What the
RFC lets a server ignore is ignored (the whole file, 200): another unit, a malformed or multi-range header,
`If-Range` (the file has no validator to compare it with), and any range of an empty file.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from flask import Response, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

_BLOCK_BYTES = 64 * 1024
_ONE_RANGE = re.compile(r"bytes=[ \t]*(\d*)-(\d*)[ \t]*", re.IGNORECASE)


def stream_file(file: BinaryIO, size: int, content_type: str) -> Response:
    """A response streaming the first `size` bytes of `file` (closed once sent), or the part the request's
    `Range` asks for; RequestedRangeNotSatisfiable (file closed) for a range past the end."""
    try:
        wanted = requested_range(request.headers.get("Range"), size) if "If-Range" not in request.headers else None
    except RequestedRangeNotSatisfiable:
        file.close()
        raise
    if wanted is None:
        body = wrap_file(request.environ, file)  # the WSGI server's own file sending, if it has one
        response = Response(body, content_type=content_type, direct_passthrough=True)
    else:
        start, end = wanted
        response = Response(FileRange(file, start, end), status=206, content_type=content_type,
                            direct_passthrough=True)
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        size = end - start
    # The server sends no more than this, even when the file grows meanwhile (a running step's log).
    response.content_length = size
    response.headers["Accept-Ranges"] = "bytes"
    return response


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of the one byte range `header` asks of a file of `size` bytes; None for the whole file
    (no header, or one to ignore); RequestedRangeNotSatisfiable for a range past the end."""
    match = _ONE_RANGE.fullmatch(header.strip()) if header else None
    if match is None or size == 0 or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # a suffix: the last `last` bytes
        length = int(last)
        if length == 0:
            raise RequestedRangeNotSatisfiable(length=size)
        return max(0, size - length), size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # an invalid range: the header is ignored
    end = size if last == "" else int(last) + 1
    if start >= size:
        raise RequestedRangeNotSatisfiable(length=size)
    return start, min(end, size)


class FileRange:
    """The bytes [start, end) of `file`, as a WSGI body: blocks read as they are sent; `close` closes the
    file (the server calls it, sent or not)."""

    def __init__(self, file: BinaryIO, start: int, end: int) -> None:
        self._file = file
        self._position = start
        self._end = end

    def __iter__(self) -> FileRange:
        return self

    def __next__(self) -> bytes:
        if self._position >= self._end:
            raise StopIteration
        self._file.seek(self._position)
        block = self._file.read(min(_BLOCK_BYTES, self._end - self._position))
        if not block:
            raise StopIteration
        self._position += len(block)
        return block

    def close(self) -> None:
        self._file.close()
