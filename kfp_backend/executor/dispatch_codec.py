"""A remote step's spec and result as JSON, the form they take in the dispatch table (`step_dispatches`)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp_backend.executor.launcher import CollectedOutputs, StepIO, StepResult, StepSpec


def spec_to_json(spec: StepSpec, *, sandbox_required: bool = False, news_queue: str = "") -> str:
    """Everything but the work dir: that is the worker's own. `sandbox_required`: the step comes from a
    multi-user deployment and must run in the multi-user sandbox (a worker that cannot refuses it).
    `news_queue`: where the worker says that the step ended (the driver then reads its result at once)."""
    return json.dumps({
        "sandbox_required": sandbox_required, "news_queue": news_queue,
        "key": spec.key, "argv": spec.argv, "env": spec.env, "private_paths": spec.private_paths,
        "deadline_seconds": spec.deadline_seconds, "working_dir": spec.working_dir,
        "read_only_paths": spec.read_only_paths, "io": spec.io.to_json(), "queue": spec.queue,
        "prepare_environment": spec.prepare_environment,
    }, separators=(",", ":"))


@dataclass(frozen=True)
class DispatchedStep:
    """A dispatch's spec JSON as a worker reads it (once: it is on every step's path)."""

    spec: StepSpec
    sandbox_required: bool  # see `spec_to_json`
    news_queue: str  # "" when the driver reads no news


def dispatched_step_from_json(text: str, work_dir: Path) -> DispatchedStep:
    raw: dict[str, Any] = json.loads(text)
    spec = StepSpec(
        key=str(raw["key"]), argv=[str(a) for a in raw["argv"]], env={str(k): str(v) for k, v in raw["env"].items()},
        work_dir=work_dir, private_paths=[str(p) for p in raw.get("private_paths") or []],
        deadline_seconds=raw.get("deadline_seconds"), working_dir=raw.get("working_dir"),
        read_only_paths=[str(p) for p in raw.get("read_only_paths") or []], io=StepIO.from_json(raw.get("io") or {}),
        queue=str(raw.get("queue") or ""), prepare_environment=bool(raw.get("prepare_environment")),
    )
    return DispatchedStep(spec, bool(raw.get("sandbox_required")), str(raw.get("news_queue") or ""))


def spec_from_json(text: str, work_dir: Path) -> StepSpec:
    return dispatched_step_from_json(text, work_dir).spec


def result_to_json(result: StepResult) -> str:
    collected = result.collected
    return json.dumps({
        "exit_code": result.exit_code, "deadline_exceeded": result.deadline_exceeded,
        "terminated": result.terminated, "vanished": result.vanished, "message": result.message,
        "host": result.host,
        "files": {path: base64.b64encode(data).decode() for path, data in collected.files.items()}
        if collected is not None else None,
        "stored": sorted(collected.stored) if collected is not None else None,
    }, separators=(",", ":"))


def result_from_json(text: str) -> StepResult:
    raw: dict[str, Any] = json.loads(text)
    collected = None
    if raw.get("files") is not None or raw.get("stored") is not None:
        collected = CollectedOutputs(
            files={path: base64.b64decode(data) for path, data in (raw.get("files") or {}).items()},
            stored=frozenset(raw.get("stored") or ()),
        )
    return StepResult(
        exit_code=raw.get("exit_code"), deadline_exceeded=bool(raw.get("deadline_exceeded")),
        terminated=bool(raw.get("terminated")), vanished=bool(raw.get("vanished")),
        message=str(raw.get("message") or ""), host=str(raw.get("host") or ""),
        collected=collected or CollectedOutputs(files={}, stored=frozenset()),
    )
