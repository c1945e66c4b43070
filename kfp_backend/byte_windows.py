"""A read-only, seekable span of bytes of a known length, as a raw file: what a streamed response (a log
window, an object in S3) is read through. Subclasses say how the bytes at the position are read."""

from __future__ import annotations

import io


class ByteWindow(io.RawIOBase):
    """`length` bytes; the position stays within [0, length]."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(0, base + offset), self._length)
        return self._position
