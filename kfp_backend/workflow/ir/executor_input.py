"""What one container task of a KFP v2 pipeline runs, and what it produced: pure, no I/O.

`build_executor_input` makes the `ExecutorInput` (the JSON `{{$}}` stands for) from the task's resolved
inputs and the paths its outputs go to; `resolve_command` turns a container's command and args into argv
(every placeholder, `Concat` and `IfPresent`); `typed_parameter` casts a value to its declared type (JSON
numbers arrive as doubles); `merge_outputs` reads what a step wrote (output parameter files and the
executor output file, as the kfp launcher merges them).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.model import (
    BOOLEAN,
    LIST,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    STRING,
    STRUCT,
    TASK_FINAL_STATUS,
    ArtifactSpec,
    Interface,
)

# Where a task's outputs go inside its step (its private /tmp): the kfp launcher's own layout.
OUTPUT_PARAMETERS_DIR = "/tmp/kfp/outputs/parameters"
EXECUTOR_OUTPUT_FILE = "/tmp/kfp_outputs/output_metadata.json"
# Remote URI schemes and the local mount a step sees them under (what kfp's Artifact.path maps).
URI_MOUNTS = (("gs://", "/gcs/"), ("minio://", "/minio/"), ("s3://", "/s3/"))
_PLACEHOLDER = re.compile(r"\{\{\$(?:\.[^{}]*)?\}\}")
_INPUT_PARAMETER = re.compile(r"inputs\.parameters\['([^']*)'\]")
_OUTPUT_PARAMETER_FILE = re.compile(r"outputs\.parameters\['([^']*)'\]\.output_file")
_ARTIFACT = re.compile(r"(inputs|outputs)\.artifacts\['([^']*)'\](?:\.(path|uri|metadata)(?:\['([^']*)'\])?)?")


class PlaceholderError(WorkflowError):
    """A placeholder that names nothing the task has."""


@dataclass(frozen=True)
class RuntimeArtifact:
    """An artifact as a task sees it: its URI (the store's name for it), type and metadata."""

    name: str
    uri: str
    schema_title: str = "system.Artifact"
    schema_version: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        kind: dict[str, Any] = {"schemaTitle": self.schema_title}
        if self.schema_version:
            kind["schemaVersion"] = self.schema_version
        return {"name": self.name, "type": kind, "uri": self.uri, "metadata": dict(self.metadata)}

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> RuntimeArtifact:
        kind = raw.get("type") or {}
        return RuntimeArtifact(
            name=str(raw.get("name", "")), uri=str(raw.get("uri", "")),
            schema_title=str(kind.get("schemaTitle") or "system.Artifact"), schema_version=kind.get("schemaVersion"),
            metadata=dict(raw.get("metadata") or {}),
        )


@dataclass(frozen=True)
class TaskContext:
    """A task's identity as its placeholders name it."""

    job_name: str  # the run's workflow name
    job_uuid: str  # the run id
    task_name: str
    task_uuid: str  # the node id
    pipeline_root: str = ""
    create_time: str = ""  # the run's start, RFC 3339


def local_path(uri: str) -> str:
    """The path a step reads or writes an artifact at, from its URI (`minio://b/k` -> `/minio/b/k`)."""
    for scheme, mount in URI_MOUNTS:
        if uri.startswith(scheme):
            return mount + uri[len(scheme):]
    return uri


def typed_parameter(value: Any, declared: str | None, where: str = "parameter") -> Any:
    """`value` (a JSON value, or the text of one) as its declared parameter type, as the SDK expects it:
    a NUMBER_INTEGER given as `3.0` is 3, a BOOLEAN given as "True" is true. STRING keeps non-strings
    (a loop item is declared STRING whatever it holds); undeclared values stay as they are."""
    if value is None or declared in (None, STRING):
        return value
    if isinstance(value, str):
        text = value.strip()
        if declared == BOOLEAN and text.lower() in ("true", "false"):
            return text.lower() == "true"
        try:
            value = json.loads(text)
        except ValueError:
            raise WorkflowError(f"{where}: {value[:100]!r} is not a {declared}.") from None
    if declared == NUMBER_INTEGER:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not float(value).is_integer():
            raise WorkflowError(f"{where}: {_show(value)} is not a whole number (NUMBER_INTEGER).")
        return int(value)
    if declared == NUMBER_DOUBLE:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WorkflowError(f"{where}: {_show(value)} is not a number (NUMBER_DOUBLE).")
        return float(value)
    expected = {BOOLEAN: bool, LIST: list, STRUCT: dict, TASK_FINAL_STATUS: dict}.get(declared)
    if expected is not None and not isinstance(value, expected):
        raise WorkflowError(f"{where}: {_show(value)} is not a {declared}.")
    return value


def parameter_text(value: Any) -> str:
    """A parameter value as a command-line argument: strings as they are, anything else as JSON
    (booleans `true`/`false`, integers without `.0`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def output_parameter_file(name: str) -> str:
    return f"{OUTPUT_PARAMETERS_DIR}/{name}"


def build_executor_input(
    inputs: Interface,
    outputs: Interface,
    parameter_values: Mapping[str, Any],
    input_artifacts: Mapping[str, Sequence[RuntimeArtifact]],
    output_artifacts: Mapping[str, RuntimeArtifact],
) -> dict[str, Any]:
    """The ExecutorInput of a task: typed inputs, the files output parameters go to, the output artifacts'
    URIs, and the executor output file."""
    values = {}
    for name, value in parameter_values.items():
        spec = inputs.parameters.get(name)
        declared = spec.type if spec is not None else None
        values[name] = parameter_text(value) if declared == STRING and not isinstance(value, str) else value
    executor_input: dict[str, Any] = {
        "inputs": {
            "parameterValues": values,
            "artifacts": {name: {"artifacts": [a.to_json() for a in artifacts]}
                          for name, artifacts in input_artifacts.items()},
        },
        "outputs": {
            "parameters": {name: {"outputFile": output_parameter_file(name)} for name in outputs.parameters},
            "artifacts": {name: {"artifacts": [artifact.to_json()]} for name, artifact in output_artifacts.items()},
            "outputFile": EXECUTOR_OUTPUT_FILE,
        },
    }
    if not values:
        del executor_input["inputs"]["parameterValues"]
    if not input_artifacts:
        del executor_input["inputs"]["artifacts"]
    return executor_input


def resolve_command(
    parts: Sequence[str],
    executor_input: Mapping[str, Any],
    context: TaskContext,
) -> list[str]:
    """Command and args with every placeholder replaced; `{"Concat": [...]}` joins its parts,
    `{"IfPresent": {"InputName", "Then", "Else"}}` expands to the parts of its branch."""
    resolved: list[str] = []
    for part in parts:
        resolved.extend(_resolve_part(part, executor_input, context))
    return resolved


def _resolve_part(part: Any, executor_input: Mapping[str, Any], context: TaskContext) -> list[str]:
    if isinstance(part, str):
        structure = _structure(part)
        if structure is None:
            return [_substitute(part, executor_input, context)]
        part = structure
    if isinstance(part, Mapping) and "Concat" in part:
        return ["".join("".join(_resolve_part(item, executor_input, context)) for item in part["Concat"] or ())]
    if isinstance(part, Mapping) and "IfPresent" in part:
        spec = part["IfPresent"] or {}
        name = spec.get("InputName", "")
        present = name in (executor_input.get("inputs", {}).get("parameterValues") or {}) \
            or name in (executor_input.get("inputs", {}).get("artifacts") or {})
        branch = spec.get("Then") if present else spec.get("Else")
        if branch is None:
            return []
        items = branch if isinstance(branch, list) else [branch]
        return [text for item in items for text in _resolve_part(item, executor_input, context)]
    if isinstance(part, list):
        return [text for item in part for text in _resolve_part(item, executor_input, context)]
    return [parameter_text(part)]


def _structure(text: str) -> Any:
    stripped = text.strip()
    if not (stripped.startswith("{") and ('"Concat"' in stripped or '"IfPresent"' in stripped)):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, Mapping) and ("Concat" in value or "IfPresent" in value) else None


def _substitute(text: str, executor_input: Mapping[str, Any], context: TaskContext) -> str:
    if "{{$" not in text:
        return text
    return _PLACEHOLDER.sub(lambda match: _value_of(match.group(0)[3:-2], executor_input, context), text)


def substitute_context(text: str, context: TaskContext) -> str:
    """A constant input's text with the run's and the task's placeholders (`{{$.pipeline_job_uuid}}`...)
    replaced, as the kfp driver resolves them; other text stays as it is."""
    if "{{$." not in text:
        return text
    simple = _context_values(context)
    return _PLACEHOLDER.sub(lambda match: simple.get(match.group(0)[4:-2], match.group(0)), text)


def input_references(text: str) -> set[str]:
    """The input parameters a constant's text names (`{{$.inputs.parameters['x']}}`): the kfp compiler
    writes an f-string of pipeline channels so, passing each channel as an extra task input."""
    return {match.group(1) for match in _INPUT_PARAMETER.finditer(text)} if "{{$.inputs" in text else set()


def substitute_inputs(text: str, values: Mapping[str, Any]) -> str:
    """`text` with each `{{$.inputs.parameters['x']}}` naming one of `values` replaced by its text."""
    if "{{$.inputs" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name = _INPUT_PARAMETER.fullmatch(match.group(0)[4:-2])
        return parameter_text(values[name.group(1)]) if name and name.group(1) in values else match.group(0)

    return _PLACEHOLDER.sub(replace, text)


def _context_values(context: TaskContext) -> dict[str, str]:
    return {
        "pipeline_job_name": context.job_name, "pipeline_job_resource_name": context.job_name,
        "pipeline_job_uuid": context.job_uuid, "pipeline_task_name": context.task_name,
        "pipeline_task_uuid": context.task_uuid, "pipeline_root": context.pipeline_root,
        "pipeline_job_create_time_utc": context.create_time, "pipeline_job_schedule_time_utc": context.create_time,
    }


def _value_of(path: str, executor_input: Mapping[str, Any], context: TaskContext) -> str:
    """The text of one placeholder (`path` is what follows `{{$`: "" or ".inputs...")."""
    if path == "":
        return json.dumps(executor_input, separators=(",", ":"))
    path = path[1:]
    simple = _context_values(context)
    if path in simple:
        return simple[path]
    inputs = executor_input.get("inputs") or {}
    outputs = executor_input.get("outputs") or {}
    match = _INPUT_PARAMETER.fullmatch(path)
    if match:
        values = inputs.get("parameterValues") or {}
        if match.group(1) not in values:
            raise PlaceholderError(f"{{{{$.{path}}}}}: the task has no input parameter {match.group(1)!r}")
        return parameter_text(values[match.group(1)])
    match = _OUTPUT_PARAMETER_FILE.fullmatch(path)
    if match:
        files = outputs.get("parameters") or {}
        if match.group(1) not in files:
            raise PlaceholderError(f"{{{{$.{path}}}}}: the task has no output parameter {match.group(1)!r}")
        return files[match.group(1)]["outputFile"]
    match = _ARTIFACT.fullmatch(path)
    if match:
        side, name, attribute, key = match.groups()
        found = ((inputs if side == "inputs" else outputs).get("artifacts") or {}).get(name)
        if not found or not found.get("artifacts"):
            raise PlaceholderError(f"{{{{$.{path}}}}}: the task has no {side[:-1]} artifact {name!r}")
        artifact = found["artifacts"][0]
        if attribute in (None, "uri"):
            return str(artifact["uri"])
        if attribute == "path":
            return local_path(str(artifact["uri"]))
        metadata = artifact.get("metadata") or {}
        if key is not None:
            return parameter_text(metadata.get(key))
        return json.dumps(metadata, separators=(",", ":"))
    raise PlaceholderError(f"unsupported placeholder {{{{$.{path}}}}}")


@dataclass
class StepOutputs:
    """What a finished task produced: typed output parameters and its output artifacts."""

    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[RuntimeArtifact]] = field(default_factory=dict)


def merge_outputs(
    outputs: Interface,
    parameter_files: Mapping[str, str],
    executor_output: Mapping[str, Any] | None,
    output_artifacts: Mapping[str, RuntimeArtifact],
) -> StepOutputs:
    """The task's outputs as the kfp launcher reads them: each output parameter from its file, or from the
    executor output's `parameterValues` (which wins when both exist); artifacts with the metadata (and a
    changed URI) the executor output gives. Parameters are typed as declared. Raises WorkflowError for a
    declared, non-optional output parameter that is missing or of the wrong type."""
    executor_output = executor_output or {}
    values = dict(executor_output.get("parameterValues") or {})
    result = StepOutputs()
    for name, spec in outputs.parameters.items():
        if name in values:
            raw: Any = values[name]
        elif name in parameter_files:
            raw = parameter_files[name]
            if spec.type == STRING:
                result.parameters[name] = raw
                continue
        elif spec.optional or spec.has_default:
            if spec.has_default:
                result.parameters[name] = spec.default
            continue
        else:
            raise WorkflowError(f"output parameter {name!r} was not written")
        result.parameters[name] = typed_parameter(raw, spec.type, f"output parameter {name!r}")
    written = executor_output.get("artifacts") or {}
    for name, artifact in output_artifacts.items():
        reported = ((written.get(name) or {}).get("artifacts") or [None])[0]
        if isinstance(reported, Mapping):
            metadata = {**artifact.metadata, **(reported.get("metadata") or {})}
            uri = str(reported.get("uri") or artifact.uri)
            artifact = RuntimeArtifact(artifact.name, uri, artifact.schema_title, artifact.schema_version, metadata)
        result.artifacts[name] = [artifact]
    return result


def output_artifact(name: str, spec: ArtifactSpec, uri: str) -> RuntimeArtifact:
    return RuntimeArtifact(name, uri, spec.type.schema_title, spec.type.schema_version)


def _show(value: Any) -> str:
    return json.dumps(value, default=str)[:100]
