"""The artifact store: step outputs archived under keys, the way Argo archives them to S3/MinIO.

An artifact is stored as a gzipped tar holding the single file or directory tree, named by its
basename (Argo's `.tgz` archive). The driver stores a step's outputs under
`artifacts/<run-id>/<node-id>/<artifact-name>.tgz` (Argo puts the workflow name where the run id is:
with the run id, a deleted run's artifacts go with one prefix). The interface is key-based:
`LocalArtifactStore` keeps the objects as files below a root, `s3_artifacts.S3ArtifactStore` in a bucket.
Reads stream (`open`): an object is never held whole in memory by the store.
"""

from __future__ import annotations

import abc
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_COMPRESS_LEVEL = 6  # what Argo's Go gzip writer uses by default


class ArtifactKeyError(ValueError):
    """A key that is not a clean relative path (absolute, `..`, empty segments...)."""


class ArtifactStoreUnavailable(RuntimeError):
    """The configured store cannot be used (a missing library, an unreachable bucket): the server does not start."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key or "\x00" in key or "\\" in key:
        raise ArtifactKeyError(f"invalid artifact key: {key!r}")
    parts = key.split("/")
    if key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ArtifactKeyError(f"invalid artifact key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A key prefix: a key, a key ending with "/", or "" for everything."""
    if prefix == "":
        return prefix
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


class ArtifactStore(abc.ABC):
    # Whether finished steps' logs are copied into the store (a store other hosts reach). The local store's
    # objects live in the data dir beside the logs: copying them there would write each log twice.
    keeps_logs: bool = False

    @abc.abstractmethod
    def put(self, key: str, source: Path) -> None:
        """Archive the file or directory `source` under `key` (replacing what was there)."""

    @abc.abstractmethod
    def get(self, key: str, destination: Path) -> None:
        """Unpack the artifact at `destination` (a file stays a file, a directory a directory);
        creates missing parents and replaces what was there. KeyError when there is no such key."""

    @abc.abstractmethod
    def put_file(self, key: str, source: Path) -> None:
        """Store the bytes of the file `source` as they are (no archive) under `key`: a step's log."""

    @abc.abstractmethod
    def read(self, key: str) -> bytes | None:
        """The stored .tgz bytes, or None. Whole in memory: for small objects; see `open`."""

    @abc.abstractmethod
    def open(self, key: str) -> tuple[BinaryIO, int] | None:
        """The stored object open for reading (seekable, read in blocks, closed by the caller) and its
        length in bytes; None when there is no such key."""

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """The stored .tgz's length in bytes, or None when there is no such key."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with `prefix`; returns how many."""


def write_tgz(source: Path, fileobj_path: Path) -> None:
    """A gzipped tar of `source` with the single top-level entry named by its basename."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"artifact source {source} does not exist")
    with tarfile.open(fileobj_path, "w:gz", compresslevel=_COMPRESS_LEVEL, format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(source), arcname=source.name, recursive=True)


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for member in members:
        name = posixpath.normpath(member.name)
        if name.startswith(("/", "../")) or name == ".." or not (member.isfile() or member.isdir()):
            raise ValueError(f"refusing archive entry {member.name!r}")
    return members


def extract_tgz(archive: Path, destination: Path) -> None:
    """Unpack an archive made by `write_tgz` (or by Argo) so that its single top-level entry becomes
    `destination`. An archive with several top-level entries unpacks them into `destination` as a
    directory."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=destination.parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _safe_members(tar)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(scratch, members=members)
        entries = list(scratch.iterdir())
        unpacked = entries[0] if len(entries) == 1 else scratch
        if os.path.lexists(destination):
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            else:
                destination.unlink()
        if unpacked is scratch:
            os.replace(scratch, destination)
            scratch = None  # type: ignore[assignment]
        else:
            os.replace(unpacked, destination)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


class LocalArtifactStore(ArtifactStore):
    """Objects as files below `root`: key `a/b/c.tgz` is the file `<root>/a/b/c.tgz`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        path = self.root / check_key(key)
        if self.root not in path.resolve().parents:  # a symlink inside the root pointing out of it
            raise ArtifactKeyError(f"invalid artifact key: {key!r}")
        return path

    def put(self, key: str, source: Path) -> None:
        self._write(key, lambda tmp: write_tgz(Path(source), tmp))

    def _write(self, key: str, write: Callable[[Path], None]) -> None:
        """`write` fills a temporary file beside the key's, renamed over it once whole."""
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".put-", dir=target.parent)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str, destination: Path) -> None:
        path = self.path_for(key)
        if not path.is_file():
            raise KeyError(key)
        extract_tgz(path, Path(destination))

    def put_file(self, key: str, source: Path) -> None:
        self._write(key, lambda tmp: shutil.copyfile(source, tmp))

    def read(self, key: str) -> bytes | None:
        try:
            return self.path_for(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def open(self, key: str) -> tuple[BinaryIO, int] | None:
        try:
            file = open(self.path_for(key), "rb")  # noqa: SIM115 - handed to the caller, who closes it
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        try:
            status = os.fstat(file.fileno())
        except OSError:
            file.close()
            raise
        if not stat.S_ISREG(status.st_mode):
            file.close()
            return None
        return file, status.st_size

    def size(self, key: str) -> int | None:
        try:
            status = self.path_for(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return status.st_size if stat.S_ISREG(status.st_mode) else None

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        directory, _, start = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
        if not base.is_dir() or (directory and self.root not in base.resolve().parents):
            return 0
        deleted = 0
        for entry in list(base.iterdir()):
            if not entry.name.startswith(start) or entry.name.startswith((".put-", ".unpack-")):
                continue
            if entry.is_dir() and not entry.is_symlink():
                deleted += sum(1 for p in entry.rglob("*") if p.is_file())
                shutil.rmtree(entry)
            else:
                entry.unlink()
                deleted += 1
        # Drop directories left empty up to the root.
        while base != self.root:
            try:
                base.rmdir()
            except OSError:
                break
            base = base.parent
        return deleted
