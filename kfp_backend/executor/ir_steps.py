"""One container task of a KFP v2 pipeline as a step: what it runs, where its artifacts go, what it left.

`build_step` (called by the walk) resolves the task's command into argv with its `ExecutorInput`, names
its output artifacts (URI `<pipeline root>/<run id>/<node id>/<output>`, stored under the run's key prefix
in the artifact store) and lists what to place before it starts. The driver then makes the `StepSpec`
(`step_spec`), places the input artifacts at the local paths their URIs map to (`place_inputs`), and
reads the outputs after it ends (`collect`). The step is kept on its node (`_ir_step`), so a restarted
driver adopts or collects it from the row alone.

The programs a step runs are found on PATH; a `StepEnvironment` (the executor's `step_environment`) lets
the server prepare an environment per step instead (e.g. a venv for the task's kfp version) and run the
step there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from kfp_backend.executor import step_io as io
from kfp_backend.executor.artifacts import ArtifactStore
from kfp_backend.executor.launcher import StepIO, StepLauncher, StepResult, StepSpec
from kfp_backend.store.states import ERROR, FAILED, SUCCEEDED
from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.executor_input import (
    EXECUTOR_OUTPUT_FILE,
    OUTPUT_PARAMETERS_DIR,
    URI_MOUNTS,
    RuntimeArtifact,
    TaskContext,
    build_executor_input,
    local_path,
    merge_outputs,
    output_artifact,
    output_parameter_file,
    parameter_text,
    resolve_command,
)
from kfp_backend.workflow.ir.model import Component, ContainerExecutor

TERMINATED_MESSAGE = "Step exceeded its deadline"


class PreparedStep(Protocol):
    """A step ready to run in its environment: the argv to run, and its PATH given the server's. It may
    also name `read_only_paths`: the host directories the environment lives in, which the multi-user
    sandbox shows to the step read-only (an environment under the hidden data dir)."""

    argv: list[str]

    def path(self, path: str | None) -> str | None: ...


class StepEnvironment(Protocol):
    """Where a step's programs come from (e.g. a venv per kfp version for lightweight Python components):
    `prepare_step(argv)` readies the environment the step needs and says how to run it there. May take
    long the first time; raises when the environment cannot be made (the step then fails with why)."""

    def prepare_step(self, argv: Sequence[str]) -> PreparedStep: ...


class StepPreparationError(Exception):
    """The step's environment could not be prepared; the message says why."""


@dataclass(frozen=True)
class IrStep:
    component: str  # the component's name (its outputs are read as it declares them)
    image: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[str]  # in-step directories the artifacts live under (/minio, /s3, /gcs...)
    placements: list[tuple[str, str]]  # (store key, in-step path) of each input artifact
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> runtime artifact JSON + key

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "image": self.image, "argv": self.argv, "env": self.env,
                "mounts": self.mounts, "placements": [list(p) for p in self.placements], "outputs": self.outputs}

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> IrStep:
        return IrStep(
            component=str(raw.get("component", "")), image=str(raw.get("image", "")),
            argv=list(raw.get("argv") or []), env=dict(raw.get("env") or {}), mounts=list(raw.get("mounts") or []),
            placements=[(str(k), str(p)) for k, p in raw.get("placements") or []],
            outputs=dict(raw.get("outputs") or {}),
        )


def artifact_key(run_id: str, node_id: str, name: str) -> str:
    """Where an output artifact is stored: under the run's prefix, as v1 outputs are (deleted with the run)."""
    return f"artifacts/{run_id}/{node_id}/{name}.tgz"


def build_step(
    node: Mapping[str, Any], component: Component, executor: ContainerExecutor, parameters: Mapping[str, Any],
    input_artifacts: Mapping[str, list[dict]], *, run_id: str, job_name: str, pipeline_root: str,
    create_time: str = "",
) -> IrStep:
    """The step of a container task whose inputs are resolved. Raises WorkflowError for a placeholder that
    names nothing the task has."""
    node_id = node["id"]
    outputs: dict[str, RuntimeArtifact] = {}
    stored: dict[str, dict[str, Any]] = {}
    for name, spec in component.outputs.artifacts.items():
        artifact = output_artifact(name, spec, f"{pipeline_root}/{run_id}/{node_id}/{name}")
        outputs[name] = artifact
        stored[name] = {**artifact.to_json(), "key": artifact_key(run_id, node_id, name)}
    inputs = {name: [RuntimeArtifact.from_json(a) for a in artifacts] for name, artifacts in input_artifacts.items()}
    executor_input = build_executor_input(component.inputs, component.outputs, parameters, inputs, outputs)
    context = TaskContext(job_name=job_name, job_uuid=run_id, task_name=str(node.get("displayName", "")),
                          task_uuid=node_id, pipeline_root=pipeline_root, create_time=create_time)
    argv = resolve_command([*executor.command, *executor.args], executor_input, context)
    env = {name: "".join(resolve_command([value], executor_input, context)) for name, value in executor.env}
    placements = [(a["key"], local_path(str(a.get("uri", ""))))
                  for artifacts in input_artifacts.values() for a in artifacts if a.get("key")]
    paths = [path for _, path in placements] + [local_path(a.uri) for a in outputs.values()]
    return IrStep(component=component.name, image=executor.image, argv=argv, env=env, mounts=_mounts(paths),
                  placements=placements, outputs=stored)


def _mounts(paths: list[str]) -> list[str]:
    """The directories a step's artifact paths live under: the URI mounts, or the parent of a local path
    outside /tmp (the step's own /tmp is private anyway)."""
    mounts: set[str] = set()
    for path in paths:
        mount = next((m.rstrip("/") for _, m in URI_MOUNTS if path.startswith(m)), None)
        if mount is None and path.startswith("/") and not path.startswith("/tmp/"):
            mount = str(Path(path).parent)
        if mount:
            mounts.add(mount)
    return sorted(mounts)


def step_spec(step: IrStep, *, key: str, work_dir: Path, environment: StepEnvironment | None,
              output_parameters: Sequence[str] = (), prepare_remotely: bool = False) -> StepSpec:
    """The step to launch; with `environment`, run in the environment it prepares (StepPreparationError
    when it cannot). `prepare_remotely`: the worker that runs it prepares the environment (`prepared`)."""
    spec = StepSpec(key=key, argv=list(step.argv), env=dict(step.env), work_dir=work_dir,
                    private_paths=list(step.mounts), deadline_seconds=None, io=step_io(step, output_parameters),
                    prepare_environment=prepare_remotely)
    return prepared(spec, environment) if environment is not None else spec


def prepared(spec: StepSpec, environment: StepEnvironment) -> StepSpec:
    """The step run in the environment `environment` prepares for it (StepPreparationError when it cannot)."""
    argv, env = list(spec.argv), dict(spec.env)
    try:
        ready = environment.prepare_step(argv)
    except Exception as exc:
        raise StepPreparationError(str(exc) or type(exc).__name__) from exc
    server_path = os.environ.get("PATH")
    path = ready.path(server_path)
    if path and path != server_path and "PATH" not in env:
        env["PATH"] = path
    return dataclasses.replace(spec, argv=list(ready.argv), env=env, prepare_environment=False,
                               read_only_paths=list(getattr(ready, "read_only_paths", ())))


def step_io(step: IrStep, output_parameters: Sequence[str]) -> StepIO:
    """Each mount made a directory (a bind source), each input artifact unpacked at its path, and the
    directories of the output files made, as the kfp launcher makes them before the step runs (a container
    component may write `> {{$.outputs...}}` without a `mkdir -p`); after it, the outputs archived and the
    output parameters and executor output read."""
    outputs = [OUTPUT_PARAMETERS_DIR] + [str(PurePosixPath(local_path(str(a.get("uri", "")))).parent)
                                         for a in step.outputs.values()]
    directories = list(step.mounts) + [d for d in outputs if d.startswith("/")]
    return StepIO(
        inputs=tuple(step.placements), directories=tuple(directories),
        outputs=tuple((local_path(str(a["uri"])), str(a["key"])) for a in step.outputs.values()),
        files=(*(output_parameter_file(name) for name in output_parameters), EXECUTOR_OUTPUT_FILE),
    )


def place_inputs(step: IrStep, spec: StepSpec, launcher: StepLauncher, artifacts: ArtifactStore) -> None:
    """What `step_io` says is done before the step, on this machine (a local launcher's step)."""
    io.place_inputs(spec.io, lambda path: launcher.host_path(spec, path), artifacts)


def collect(
    step: IrStep, component: Component, result: StepResult, stopping: bool, files: io.StepFiles,
) -> tuple[str, str, dict | None]:
    """The node's phase, message and outputs (Argo's view, with the typed outputs under `_ir`)."""
    outputs: dict[str, Any] = {}
    if result.exit_code is not None:
        outputs["exitCode"] = str(result.exit_code)
    if stopping or result.terminated:
        return FAILED, TERMINATED_MESSAGE, outputs or None
    if result.vanished:
        return ERROR, "the step's process vanished without an exit code (was the server killed?)", outputs or None
    if result.exit_code != 0 or result.deadline_exceeded:
        return FAILED, result.message or f"Error (exit code {result.exit_code})", outputs or None
    texts: dict[str, str] = {}
    for name in component.outputs.parameters:
        data = files.read(output_parameter_file(name))
        if data is not None:
            texts[name] = data.decode("utf-8", errors="replace")
    executor_output = None
    data = files.read(EXECUTOR_OUTPUT_FILE)
    if data is not None:
        try:
            executor_output = json.loads(data.decode("utf-8"))
        except ValueError:
            return ERROR, f"the executor output {EXECUTOR_OUTPUT_FILE} is not JSON", outputs or None
    declared = {name: RuntimeArtifact.from_json(raw) for name, raw in step.outputs.items()}
    try:
        merged = merge_outputs(component.outputs, texts, executor_output, declared)
    except WorkflowError as exc:
        return ERROR, str(exc), outputs or None
    typed_artifacts: dict[str, list[dict]] = {}
    rendered_artifacts: list[dict[str, Any]] = []
    for name, produced in merged.artifacts.items():
        artifact = produced[0]
        key = step.outputs[name]["key"]
        present = files.store(local_path(step.outputs[name]["uri"]), key)
        if present:
            typed_artifacts[name] = [{**artifact.to_json(), "key": key}]
        else:
            typed_artifacts[name] = [artifact.to_json()]  # nothing written (metrics held in metadata, say)
        rendered = {"name": name, "uri": artifact.uri}
        if present:
            rendered["s3"] = {"key": key}
        rendered_artifacts.append(rendered)
    if merged.parameters:
        outputs["parameters"] = [{"name": n, "value": parameter_text(v)} for n, v in merged.parameters.items()]
    if rendered_artifacts:
        outputs["artifacts"] = rendered_artifacts
    outputs["_ir"] = {"parameters": merged.parameters, "artifacts": typed_artifacts}
    return SUCCEEDED, "", outputs
