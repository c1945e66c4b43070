"""The cache of KFP v2 task outputs (`cachingOptions.enableCache`): a task whose fingerprint (what it runs
and what it is given, `workflow.ir.cache_key`) matches an earlier successful one of a pipeline of the same
name in the same namespace reuses that one's outputs instead of running, as upstream KFP looks its cache
up by fingerprint, pipeline name and namespace.

Entries are small JSON files under `<data dir>/cache/v2/<scope>/`, one scope per (pipeline name,
namespace), written atomically; an entry whose artifacts are no longer in the artifact store (their run
was deleted) is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from kfp_backend.executor.artifacts import ArtifactStore


class StepCache:
    def __init__(self, root: Path, artifacts: ArtifactStore) -> None:
        self.root = root
        self.artifacts = artifacts

    def _path(self, fingerprint: str, pipeline_name: str, namespace: str) -> Path:
        scope = hashlib.sha256(json.dumps([f"pipeline/{pipeline_name}", namespace]).encode()).hexdigest()[:32]
        name = hashlib.sha256(fingerprint.encode()).hexdigest()  # a file name whatever the fingerprint holds
        return self.root / scope / name[:2] / f"{name}.json"

    def get(self, fingerprint: str, pipeline_name: str, namespace: str = "") -> dict[str, Any] | None:
        """The entry: {"outputs": {"parameters", "artifacts"}, "run_id", "node_id"}, or None."""
        try:
            entry = json.loads(self._path(fingerprint, pipeline_name, namespace).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        outputs = entry.get("outputs") if isinstance(entry, dict) else None
        if not isinstance(outputs, dict):
            return None
        for artifacts in (outputs.get("artifacts") or {}).values():
            for artifact in artifacts:
                if artifact.get("key") and not self.artifacts.exists(artifact["key"]):
                    return None
        return entry

    def put(self, fingerprint: str, pipeline_name: str, namespace: str, outputs: dict[str, Any], run_id: str,
            node_id: str) -> None:
        path = self._path(fingerprint, pipeline_name, namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"outputs": outputs, "run_id": run_id, "node_id": node_id}, separators=(",", ":"))
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".entry-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
