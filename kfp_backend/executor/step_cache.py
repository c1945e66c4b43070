"""The cache of KFP v2 task outputs (`cachingOptions.enableCache`): a task whose cache key (what it runs
and what it is given, `workflow.ir.executor_input.cache_key`) matches an earlier successful one reuses
that one's outputs instead of running.

Entries are small JSON files under `<data dir>/cache/v2/`, written atomically; an entry whose artifacts
are no longer in the artifact store (their run was deleted) is a miss.
"""

from __future__ import annotations

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

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry for `key`: {"outputs": {"parameters", "artifacts"}, "run_id", "node_id"}, or None."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
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

    def put(self, key: str, outputs: dict[str, Any], run_id: str, node_id: str) -> None:
        path = self._path(key)
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
