"""Where a finished step's log is stored (`log_key`), and the cap on a step's stored log: a log longer than
the cap keeps its head and its tail, with one line between them saying how many bytes were cut there.

The step's wrapper writes the log itself (see `launch_records`), so the cap is applied when the driver collects
the step's result, once every process of the step is gone. The capped log is written beside the original
and renamed over it: a crash midway leaves the original whole (collecting again caps it again), a reader
already streaming the original goes on reading it, and a log within the cap (one capped before, too) is
left alone, so capping twice cuts nothing more. Memory stays bounded: the kept bytes are copied in chunks.

The cut falls on line boundaries when a newline is near (within `ALIGN_WINDOW` bytes), else on a UTF-8
character boundary, so the kept text stays readable; that only shortens the kept parts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import BinaryIO

from kfp_backend.config import STEP_LOG_MIN_MAX_BYTES

log = logging.getLogger(__name__)

ALIGN_WINDOW = 4096  # how far from the cut a newline is looked for
CHUNK_BYTES = 1 << 20  # the copy buffer
_SUFFIX = ".capping"  # the capped log while it is written, beside the log


def log_key(run_id: str, node_id: str) -> str:
    """A finished step's log in an artifact store that keeps logs: under the run's prefix (deleted with the
    run), beside the step's `<name>.tgz` outputs, named as Argo names archived logs."""
    return f"artifacts/{run_id}/{node_id}/main.log"


def marker(cut_bytes: int, max_bytes: int) -> bytes:
    """The line that stands where `cut_bytes` bytes of a log were cut (without a leading newline)."""
    return (f"[kfp-backend: {cut_bytes} bytes cut here: the log was longer than KFP_BACKEND_STEP_LOG_MAX_BYTES "
            f"({max_bytes} bytes); its head and tail are kept]\n").encode()


def cap_log(path: Path, max_bytes: int, *, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Cap the log at `path` to `max_bytes` (0: no cap); how many bytes were cut (0 when the log fits,
    or there is none). The step writing it must have ended. OSError when the log cannot be rewritten."""
    if max_bytes <= 0:
        return 0
    if max_bytes < STEP_LOG_MIN_MAX_BYTES:
        raise ValueError(f"a log cap below {STEP_LOG_MIN_MAX_BYTES} bytes leaves no room for the log: {max_bytes}")
    path = Path(path)
    try:
        if os.stat(path).st_size <= max_bytes:  # the common case, in one system call per step
            return 0
        source = open(path, "rb")  # noqa: SIM115 - closed below, after the rename
    except FileNotFoundError:
        return 0
    with source:
        size = os.fstat(source.fileno()).st_size
        if size <= max_bytes:
            return 0
        # The marker's length for the largest count it can hold: the kept parts fit beside any count.
        budget = max_bytes - len(marker(size, max_bytes)) - 1  # -1: a newline that may precede it
        fd = source.fileno()
        head_end = _head_end(fd, budget // 2)
        tail_start = _tail_start(fd, size - (budget - budget // 2), size)
        cut = tail_start - head_end
        separator = marker(cut, max_bytes)
        if head_end > 0 and os.pread(fd, 1, head_end - 1) != b"\n":
            separator = b"\n" + separator
        temporary = path.with_name(path.name + _SUFFIX)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)  # left by a capping that did not finish
        try:
            # A new file (never one found there, nor a link's target), with the log's permissions.
            created = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(created, "wb") as target:
                os.fchmod(created, os.fstat(fd).st_mode & 0o777)
                _copy(fd, target, 0, head_end, chunk_bytes)
                target.write(separator)
                _copy(fd, target, tail_start, size, chunk_bytes)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    return cut


def _is_continuation(byte: int) -> bool:
    return byte & 0xC0 == 0x80  # 10xxxxxx: inside a UTF-8 character


def _head_end(fd: int, wanted: int) -> int:
    """Where the kept head ends: just after the last newline within ALIGN_WINDOW before `wanted`, else at
    the start of the character `wanted` falls in."""
    window = min(ALIGN_WINDOW, wanted // 8)
    data = os.pread(fd, window + 1, wanted - window)  # includes the first cut byte
    newline = data.rfind(b"\n", 0, window)
    if newline >= 0:
        return wanted - window + newline + 1
    end = window
    while end > 0 and end < len(data) and _is_continuation(data[end]) and window - end < 3:
        end -= 1
    return wanted - window + end


def _tail_start(fd: int, wanted: int, size: int) -> int:
    """Where the kept tail starts: at the first line start within ALIGN_WINDOW from `wanted`, else at the
    first character start."""
    window = min(ALIGN_WINDOW, (size - wanted) // 8)
    data = os.pread(fd, window + 1, wanted - 1)  # from the last cut byte: `wanted` may start a line
    newline = data.find(b"\n")
    if newline >= 0:
        return wanted + newline
    start = 1
    while start < len(data) and start < 4 and _is_continuation(data[start]):
        start += 1
    return wanted + start - 1


def _copy(fd: int, target: BinaryIO, start: int, end: int, chunk_bytes: int) -> None:
    """Bytes [start, end) of the file `fd` appended to `target`, one chunk in memory at a time."""
    buffer = bytearray(min(chunk_bytes, max(end - start, 1)))
    view = memoryview(buffer)
    offset = start
    while offset < end:
        count = os.preadv(fd, [view[: min(len(buffer), end - offset)]], offset)
        if count == 0:
            raise OSError(f"the log ended at {offset} bytes, before {end}")
        target.write(view[:count])
        offset += count
