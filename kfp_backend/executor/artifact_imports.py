"""Reading the artifacts a KFP v2 importer (`dsl.importer`) names, for the tasks that consume them.

The importer task itself only names the artifact (as upstream, where it registers the URI in the metadata
store); each consuming task gets the bytes at the artifact's local path before it starts, as the upstream
launcher downloads its inputs. Where the bytes come from, by URI:

- an artifact this server produced (`<any root>/<run id>/<node id>/<output>`, whatever the pipeline root):
  from the artifact store, as any task output (in multi-user mode only from a run of the same namespace);
- `s3://bucket/key` and `minio://bucket/key` (the upstream launcher reads minio:// from its MinIO
  service; here from the same S3-compatible service as s3://): through boto3 with
  `KFP_BACKEND_S3_ENDPOINT_URL` and the usual credential chain; an object, or every object under
  `key/` as a directory. In multi-user mode the artifact store's own bucket prefix is refused (tenants'
  artifacts live there);
- `file:///path` or `/path`: the host's file or directory, in single-user mode only (a tenant must not
  read the server's files);
- anything else (gs://, http...): the consuming task fails saying so.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kfp_backend.config import Settings
from kfp_backend.executor.artifacts import ArtifactStore

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_PRODUCED = re.compile(rf"/(?P<run>{_UUID})/(?P<node>[^/]+)/(?P<name>[^/]+)$")  # `<root>/<run>/<node>/<output>`
_S3_SCHEMES = ("s3", "minio")


class ArtifactImportError(Exception):
    """The artifact cannot be read; the message says why (the consuming task fails with it)."""


def local_uri(uri: str) -> str:
    """The URI an imported local file is given: `file:///p` as the path `/p`, which is what the kfp SDK
    reads a local artifact's path from (it maps only gs://, minio:// and s3:// URIs to paths)."""
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return unquote(parts.path)
    return uri


@dataclass
class ArtifactImports:
    store: ArtifactStore
    multi_user: bool
    s3_endpoint_url: str | None = None
    # The artifact store's own bucket and key prefix when it is S3 ("" for a file store).
    store_bucket: str = ""
    store_prefix: str = ""
    # The namespace of a run (None: no such run): in multi-user mode a tenant imports only its own artifacts.
    run_namespace: Callable[[str], str | None] | None = None
    s3_client: Any = None

    @staticmethod
    def from_settings(settings: Settings, store: ArtifactStore,
                      run_namespace: Callable[[str], str | None]) -> ArtifactImports:
        """The imports of a process with these settings (an executor, or a Celery worker for its steps)."""
        location = settings.artifact_location
        return ArtifactImports(store, multi_user=settings.auth_required,
                               s3_endpoint_url=settings.s3_endpoint_url or None, store_bucket=location.bucket,
                               store_prefix=location.prefix, run_namespace=run_namespace)

    def check(self, uri: str) -> None:
        """ArtifactImportError when `uri` is of a kind this server does not read at all."""
        parts = urlsplit(uri)
        if parts.scheme not in _S3_SCHEMES and not _is_local(uri):
            raise ArtifactImportError(
                f"cannot read the imported artifact {uri!r}: this server reads s3:// and minio:// URIs"
                + ("" if self.multi_user else " and local paths") + f", not {parts.scheme or 'relative'} ones")

    def fetch(self, uri: str, destination: Path, *, namespace: str) -> None:
        """Place the artifact `uri` names at `destination` (a file or a directory). ArtifactImportError."""
        self.check(uri)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if self._fetch_produced(uri, destination, namespace):
            return
        parts = urlsplit(uri)
        if parts.scheme in _S3_SCHEMES:
            self._fetch_s3(uri, parts.netloc, parts.path.lstrip("/"), destination)
        else:
            self._fetch_local(uri, Path(local_uri(uri)), destination)

    def _fetch_produced(self, uri: str, destination: Path, namespace: str) -> bool:
        match = _PRODUCED.search(urlsplit(uri).path or uri)
        if match is None:
            return False
        key = f"artifacts/{match['run']}/{match['node']}/{match['name']}.tgz"
        if not self.store.exists(key):
            return False
        if self.multi_user and self.run_namespace is not None and self.run_namespace(match["run"]) != namespace:
            raise ArtifactImportError(f"the imported artifact {uri!r} belongs to a run of another namespace")
        self.store.get(key, destination)
        return True

    def _fetch_s3(self, uri: str, bucket: str, key: str, destination: Path) -> None:
        if not bucket or not key:
            raise ArtifactImportError(f"the imported artifact {uri!r} names no bucket and key")
        if self.multi_user and bucket == self.store_bucket and (key + "/").startswith(self.store_prefix):
            raise ArtifactImportError(
                f"the imported artifact {uri!r} is inside this server's artifact store; import an artifact of one "
                "of your runs by the URI that run gave it")
        client = self._client()
        missing = client.exceptions.ClientError
        try:
            client.head_object(Bucket=bucket, Key=key)
            self._download(client, bucket, key, destination)
            return
        except missing as exc:
            code = str(((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code", ""))
            if code not in ("404", "NoSuchKey", "NotFound"):
                raise ArtifactImportError(f"cannot read the imported artifact {uri!r}: {exc}") from None
        except Exception as exc:  # no credentials, an unreachable endpoint...
            raise ArtifactImportError(f"cannot read the imported artifact {uri!r}: {exc}") from None
        # No object: a directory, as the launcher downloads every object under `key/`.
        prefix = key.rstrip("/") + "/"
        found = False
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents") or ():
                    relative = item["Key"][len(prefix):]
                    if not relative or relative.endswith("/"):
                        continue
                    if any(part in ("", ".", "..") for part in relative.split("/")):
                        continue  # not a path inside the directory
                    if not found:
                        _clear(destination)
                        destination.mkdir(parents=True)
                    found = True
                    target = destination / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self._download(client, bucket, item["Key"], target)
        except Exception as exc:
            raise ArtifactImportError(f"cannot read the imported artifact {uri!r}: {exc}") from None
        if not found:
            raise ArtifactImportError(f"the imported artifact {uri!r} does not exist (no object, nothing under it)")

    @staticmethod
    def _download(client: Any, bucket: str, key: str, target: Path) -> None:
        partial = target.with_name(f".{target.name}.part")
        client.download_file(bucket, key, str(partial))
        _clear(target)
        partial.replace(target)

    def _client(self) -> Any:
        if self.s3_client is None:
            try:
                import boto3  # an optional dependency: `pip install kfp-backend[s3]`
            except ImportError:
                raise ArtifactImportError("reading s3:// artifacts needs boto3 (pip install kfp-backend[s3])") from None
            self.s3_client = boto3.client("s3", endpoint_url=self.s3_endpoint_url or None)
        return self.s3_client

    def _fetch_local(self, uri: str, source: Path, destination: Path) -> None:
        if self.multi_user:
            raise ArtifactImportError(
                f"the imported artifact {uri!r} is a path on the server: multi-user mode does not read host files")
        if not source.is_absolute():
            raise ArtifactImportError(f"the imported artifact {uri!r} is not an absolute path")
        _clear(destination)
        try:
            if source.is_dir():
                shutil.copytree(source, destination, symlinks=True)
            else:
                shutil.copyfile(source, destination)
        except OSError as exc:
            raise ArtifactImportError(f"cannot read the imported artifact {uri!r}: {exc.strerror or exc}") from None


def _is_local(uri: str) -> bool:
    return uri.startswith(("/", "file://"))


def _clear(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
