"""The byte-range rules and the file window of streamed responses (api/streaming.py)."""

from __future__ import annotations

import io

import pytest
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from kfp_backend.api.streaming import FileWindow, requested_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None), ("", None),
        ("bytes=0-9", (0, 10)), ("bytes=10-", (10, 100)), ("bytes=90-200", (90, 100)), ("bytes=99-99", (99, 100)),
        ("bytes=-10", (90, 100)), ("bytes=-1000", (0, 100)), ("Bytes= 5-6 ", (5, 7)),
        # Ignored (the whole file): another unit, malformed, several ranges, an inverted range.
        ("lines=1-2", None), ("bytes=a-b", None), ("bytes=-", None), ("bytes=1-2,4-5", None), ("bytes=5-2", None),
        ("bytes=+1-2", None), ("bytes=1", None),
    ],
)
def test_requested_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert requested_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=1000-"])
def test_a_range_past_the_end_is_not_satisfiable(header: str) -> None:
    with pytest.raises(RequestedRangeNotSatisfiable) as caught:
        requested_range(header, 100)
    assert caught.value.length == 100


def test_an_empty_file_is_sent_whole_whatever_the_range() -> None:
    assert requested_range("bytes=-5", 0) is None and requested_range("bytes=3-", 0) is None


def test_a_window_reads_its_bytes_one_block_at_most() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    window = FileWindow(io.BytesIO(data), 100, 100 + 600_000)
    assert window.seekable() and window.seek(0, io.SEEK_END) == 600_000 and window.seek(0) == 0
    first = window.read(10 << 20)
    assert first == data[100:100 + 256 * 1024]  # one block, however much is asked
    rest = b"".join(iter(lambda: window.read(), b""))
    assert first + rest == data[100:600_100] and window.tell() == 600_000
    window.seek(-10, io.SEEK_END)
    assert window.read(100) == data[600_090:600_100] and window.read(5) == b""
    window.close()
    assert window.closed


def test_a_window_does_not_grow_with_its_file() -> None:
    file = io.BytesIO(b"0123456789")
    window = FileWindow(file, 0, 10)
    file.seek(0, io.SEEK_END)
    file.write(b"written later")
    assert window.read() == b"0123456789" and window.read() == b""


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 256 * 1024 - 1, 256 * 1024 + 1, 3 * 256 * 1024 + 2])
def test_base64_json_is_encoded_a_block_at_a_time(size: int) -> None:
    import base64
    import json

    from flask import Flask

    from kfp_backend.api.streaming import stream_base64_json

    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    file = io.BytesIO(data + b"beyond the size")
    with Flask(__name__).test_request_context():
        response = stream_base64_json(file, size)
        body = b"".join(response.response)  # type: ignore[arg-type]
    assert json.loads(body) == ({"data": base64.b64encode(data).decode()} if data else {})
    assert response.content_length == len(body) and response.mimetype == "application/json"
    assert file.closed
