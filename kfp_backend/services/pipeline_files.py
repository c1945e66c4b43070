"""Turn an uploaded or downloaded pipeline package into the manifest text it holds.

The format is decided as the real server decides it: by file name first (`.yaml`, `.yml`, `.json` are the
manifest itself), else by magic bytes (`PK` a zip, `1F 8B` a gzipped tarball). An archive yields its
`pipeline.yaml` entry, else its first file, which must be a YAML file. Every refusal is InvalidArgument.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

from kfp_backend.services.errors import InvalidArgument

PIPELINE_ENTRY = "pipeline.yaml"
UNEXPECTED_FORMAT = "Unexpected pipeline file format. Support .zip, .tar.gz, .json or YAML."
_ZIP = "Error extracting pipeline from the zip file."
_TARBALL = "Error extracting pipeline from the tarball file."
# A tarball may decompress to at most this many times the size limit before we stop reading it.
_MAX_EXPANSION = 8


def too_large(limit: int) -> InvalidArgument:
    return InvalidArgument(f"File size too large. Maximum supported size: {limit}")


def extract_manifest(filename: str, data: bytes, limit: int) -> bytes:
    """The manifest bytes inside `data` (a package named `filename`), at most `limit` bytes of it."""
    if len(data) > limit:
        raise too_large(limit)
    if _is_manifest_name(filename) or filename.lower().endswith(".json"):
        return data
    if data[:2] == b"PK":
        return _from_zip(data, limit)
    if data[:2] == b"\x1f\x8b":
        return _from_tarball(data, limit)
    raise InvalidArgument(UNEXPECTED_FORMAT)


def _is_manifest_name(name: str) -> bool:
    return name.lower().endswith((".yaml", ".yml"))


def _entry_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _from_zip(data: bytes, limit: int) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [entry for entry in archive.infolist() if not entry.is_dir()]
            if not entries:
                raise InvalidArgument(f"{_ZIP} Empty zip file.")
            chosen = next((e for e in entries if _entry_name(e.filename) == PIPELINE_ENTRY), entries[0])
            if not _is_manifest_name(chosen.filename):
                raise InvalidArgument(
                    f"{_ZIP} Expecting a pipeline.yaml file inside the zip. Got: {chosen.filename}"
                )
            with archive.open(chosen) as entry:
                content = entry.read(limit + 1)
    except InvalidArgument:
        raise
    except Exception:  # zipfile reports damage in many ways (BadZipFile, zlib.error, EOFError, ...)
        raise InvalidArgument(f"{_ZIP} Not a valid zip file.") from None
    if len(content) > limit:
        raise too_large(limit)
    return content


class _ArchiveTooLarge(Exception):
    pass


class _LimitedReader(io.RawIOBase):
    """Reads a stream but refuses to go past `limit` bytes (a decompression bomb stops here)."""

    def __init__(self, stream: io.BufferedIOBase, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(self._left + 1 if size is None or size < 0 else min(size, self._left + 1))
        self._left -= len(chunk)
        if self._left < 0:
            raise _ArchiveTooLarge
        return chunk


def _from_tarball(data: bytes, limit: int) -> bytes:
    archive_limit = limit * _MAX_EXPANSION
    first: tuple[str, bytes | None] | None = None
    chosen: bytes | None = None
    try:
        stream = _LimitedReader(gzip.GzipFile(fileobj=io.BytesIO(data)), archive_limit)
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = _entry_name(member.name)
                if name == PIPELINE_ENTRY:
                    chosen = _read_member(archive, member, limit)
                    break
                if first is None:
                    content = _read_member(archive, member, limit) if _is_manifest_name(name) else None
                    first = (member.name, content)
    except _ArchiveTooLarge:
        raise InvalidArgument(
            f"{_TARBALL} The tarball decompresses to more than {archive_limit} bytes."
        ) from None
    except InvalidArgument:
        raise
    except Exception:  # gzip/tarfile report damage in many ways (BadGzipFile, EOFError, ReadError, ...)
        raise InvalidArgument(f"{_TARBALL} Not a valid tarball file.") from None
    if chosen is not None:
        return chosen
    if first is None:
        raise InvalidArgument(f"{_TARBALL} Empty tarball file.")
    name, content = first
    if content is None:
        raise InvalidArgument(f"{_TARBALL} Expecting a pipeline.yaml file inside the tarball. Got: {name}")
    return content


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise too_large(limit)
    entry = archive.extractfile(member)
    return entry.read() if entry is not None else b""
