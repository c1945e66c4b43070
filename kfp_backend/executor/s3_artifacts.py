"""The artifact store in an S3-compatible bucket (AWS S3, MinIO, Ceph...), through boto3.

Key `a/b.tgz` is the object `<prefix>a/b.tgz` of the bucket (`KFP_BACKEND_ARTIFACT_STORE=s3://bucket/prefix`).
Nothing is held whole in memory: archives are written to a temporary file and uploaded from it (multipart
above `PART_BYTES`), downloads go to a temporary file beside their destination, and `open` reads the object
in ranged GETs as the reader asks for blocks. A missing object reads as None / False / KeyError, as in the
local store; any other failure of the service raises (botocore's ClientError and friends).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from kfp_backend.byte_windows import ByteWindow
from kfp_backend.executor.artifacts import (
    ArtifactStore,
    ArtifactStoreUnavailable,
    check_key,
    check_prefix,
    extract_tgz,
    write_tgz,
)

PART_BYTES = 8 << 20  # multipart threshold and part size: what one upload thread holds at most
_TRANSFER_THREADS = 4
_POOL_CONNECTIONS = 64
_DELETE_BATCH = 1000  # DeleteObjects' limit per request
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


def _missing(exc: Exception) -> bool:
    """Whether a ClientError says that the object is not there."""
    response = getattr(exc, "response", None)
    code = str(((response or {}).get("Error") or {}).get("Code", ""))
    return code in _MISSING


class S3ArtifactStore(ArtifactStore):
    """Objects of `bucket` under `prefix` ("" or ending with "/")."""

    keeps_logs = True  # other hosts (API replicas, workers) read finished steps' logs from here

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, client: Any = None,
                 scratch_dir: Path | None = None) -> None:
        """`scratch_dir`: where archives are written before they are uploaded (None: the system's temp dir,
        often a small tmpfs; the server passes its data dir's `tmp/`)."""
        import boto3  # an optional dependency: `pip install kfp-backend[s3]`
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.scratch_dir = scratch_dir
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        if client is None:
            # One client for every thread (request threads, drivers, transfer threads): a pool that fits them.
            config = Config(max_pool_connections=_POOL_CONNECTIONS, retries={"mode": "standard"})
            client = boto3.client("s3", endpoint_url=endpoint_url or None, config=config)
        self.client = client
        self._transfer = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES,
                                        max_concurrency=_TRANSFER_THREADS)
        self._client_error: type[Exception] = self.client.exceptions.ClientError

    def __repr__(self) -> str:
        return f"S3ArtifactStore(s3://{self.bucket}/{self.prefix})"

    def check(self) -> None:
        """Raise ArtifactStoreUnavailable, saying why, when the bucket cannot be reached (called once, at start)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise ArtifactStoreUnavailable(
                f"the artifact store s3://{self.bucket}/{self.prefix} cannot be reached: {exc}") from exc

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, source: Path) -> None:
        name = self._name(key)
        if self.scratch_dir is not None:
            self.scratch_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kfp-artifact-", dir=self.scratch_dir) as scratch:
            archive = Path(scratch) / "artifact.tgz"
            write_tgz(Path(source), archive)
            self.client.upload_file(str(archive), self.bucket, name, Config=self._transfer)

    def put_file(self, key: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self._name(key), Config=self._transfer)

    def get(self, key: str, destination: Path) -> None:
        name = self._name(key)
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, archive = tempfile.mkstemp(prefix=".download-", suffix=".tgz", dir=destination.parent)
        os.close(fd)
        try:
            try:
                self.client.download_file(self.bucket, name, archive, Config=self._transfer)
            except self._client_error as exc:
                if _missing(exc):
                    raise KeyError(key) from None
                raise
            extract_tgz(Path(archive), destination)
        finally:
            Path(archive).unlink(missing_ok=True)

    def read(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self._client_error as exc:
            if _missing(exc):
                return None
            raise
        with response["Body"] as body:
            return body.read()

    def open(self, key: str) -> tuple[BinaryIO, int] | None:
        head = self._head(key)
        if head is None:
            return None
        size = int(head["ContentLength"])
        reader = S3ObjectReader(self.client, self.bucket, self._name(key), size, head.get("ETag"))
        return io.BufferedReader(reader, buffer_size=256 * 1024), size  # type: ignore[return-value]

    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except self._client_error as exc:
            if _missing(exc):
                return None
            raise

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return int(head["ContentLength"]) if head is not None else None

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        deleted = 0
        batch: list[dict[str, str]] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        for page in pages:
            for item in page.get("Contents") or ():
                batch.append({"Key": item["Key"]})
                if len(batch) == _DELETE_BATCH:
                    deleted += self._delete(batch)
                    batch = []
        if batch:
            deleted += self._delete(batch)
        return deleted

    def _delete(self, batch: list[dict[str, str]]) -> int:
        response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(f"could not delete {len(errors)} objects of s3://{self.bucket}, "
                          f"first {first.get('Key')}: {first.get('Code')} {first.get('Message')}")
        return len(batch)


class S3ObjectReader(ByteWindow):
    """One object read as a seekable file: a GET from the position read, continued while reads follow on,
    made again (a ranged GET) after a seek elsewhere. Reads only as much as asked for. A replaced object
    (another ETag) fails the read rather than mixing two versions."""

    def __init__(self, client: Any, bucket: str, name: str, size: int, etag: str | None = None) -> None:
        super().__init__(size)
        self._client = client
        self._bucket = bucket
        self._name = name
        self._size = size
        self._etag = etag
        self._body: Any = None
        self._body_position = -1

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        if self._body is None or self._body_position != self._position:
            self._close_body()
            extra = {"IfMatch": self._etag} if self._etag else {}
            response = self._client.get_object(Bucket=self._bucket, Key=self._name,
                                               Range=f"bytes={self._position}-{self._size - 1}", **extra)
            self._body = response["Body"]
            self._body_position = self._position
        data = self._body.read(wanted)
        if not data:
            raise OSError(f"s3://{self._bucket}/{self._name} ended at {self._position} bytes, before {self._size}")
        count = len(data)
        buffer[:count] = data
        self._position += count
        self._body_position += count
        return count

    def _close_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        if not self.closed:
            self._close_body()
        super().close()
