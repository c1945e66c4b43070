"""File bodies streamed to the client, whole or by one byte range, never read into memory at once.

Ranges follow RFC 9110 §14 for a single range: `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes;
the whole file when it is shorter) get 206 with that part; a range that starts at or past the end gets 416
(`RequestedRangeNotSatisfiable`, rendered by errors.py with `Content-Range: bytes */<length>`). What the
RFC lets a server ignore is ignored (the whole file, 200): another unit, a malformed or multi-range header,
`If-Range` (the file has no validator to compare it with), and any range of an empty file.

`stream_base64_json` streams a file as ReadArtifact's answer, `{"data": "<base64>"}`, a block at a time.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from flask import Response, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from kfp_backend.byte_windows import ByteWindow

_BLOCK_BYTES = 256 * 1024  # what one connection's response holds in memory at most
_ONE_RANGE = re.compile(r"bytes=[ \t]*(\d*)-(\d*)[ \t]*", re.IGNORECASE)


def stream_file(file: BinaryIO, size: int, content_type: str) -> Response:
    """A response streaming the first `size` bytes of `file` (closed once sent), or the part the request's
    `Range` asks for; RequestedRangeNotSatisfiable (file closed) for a range past the end."""
    try:
        wanted = requested_range(request.headers.get("Range"), size) if "If-Range" not in request.headers else None
    except RequestedRangeNotSatisfiable:
        file.close()
        raise
    start, end = wanted or (0, size)
    # The WSGI server's own file sending (waitress's reads the window as the socket takes it).
    response = Response(wrap_file(request.environ, FileWindow(file, start, end)), content_type=content_type,
                        direct_passthrough=True)
    if wanted is not None:
        response.status_code = 206
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start
    response.headers["Accept-Ranges"] = "bytes"
    return response


def stream_base64_json(file: BinaryIO, size: int) -> Response:
    """`{"data": "<the first size bytes of file, base64>"}` (`{}` for none), encoded a block at a time as it is
    sent; `file` is closed once sent."""
    if size == 0:
        file.close()
        return Response(b"{}", content_type="application/json")
    head, tail = b'{"data":"', b'"}'
    window = FileWindow(file, 0, size)

    def body() -> Iterator[bytes]:
        with window:
            yield head
            pending = b""
            while block := window.read():
                pending += block
                whole = len(pending) - len(pending) % 3  # base64 encodes 3-byte groups on their own
                if whole:
                    yield base64.b64encode(pending[:whole])
                    pending = pending[whole:]
            if window.tell() != size:
                raise OSError(f"the stored object ended at {window.tell()} bytes, before {size}")
            yield base64.b64encode(pending) + tail

    response = Response(body(), content_type="application/json", direct_passthrough=True)
    response.content_length = len(head) + 4 * ((size + 2) // 3) + len(tail)
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


class FileWindow(ByteWindow):
    """Bytes [start, end) of `file` as a read-only file of their own, whose reads return one block at most.

    The bound keeps a file that grows meanwhile (a running step's log) from sending more than the
    Content-Length said. The block keeps the memory of a response small: a WSGI server reads as much as
    it asks for (waitress: the socket's send buffer, megabytes on loopback) per connection at once."""

    def __init__(self, file: BinaryIO, start: int, end: int) -> None:
        super().__init__(end - start)
        self._file = file
        self._start = start

    def read(self, size: int | None = -1) -> bytes:
        wanted = _BLOCK_BYTES if size is None or size < 0 else min(size, _BLOCK_BYTES)
        wanted = min(wanted, self._length - self._position)
        if wanted <= 0:
            return b""
        self._file.seek(self._start + self._position)
        block = self._file.read(wanted)
        self._position += len(block)
        return block

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[: len(block)] = block
        return len(block)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
