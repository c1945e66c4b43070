"""The cache key of a KFP v2 task and its fingerprint, made of what upstream KFP's driver puts in its
`CacheKey` (api/v2alpha1 cache_key.proto), so two tasks hit each other's cache exactly when they would
upstream:

- `inputArtifactNames`: per input artifact, the names of the artifacts given (upstream, their metadata
  store names; here the artifact's URI, which names one produced artifact as uniquely);
- `inputParameterValues`: the ExecutorInput's parameter values (JSON values);
- `outputArtifactsSpec`: per output artifact, its name, type (schema title and version) and metadata, URI
  wiped;
- `outputParametersSpec`: per output parameter, its type name (`STRING`, `NUMBER_INTEGER`, ...);
- `containerSpec`: the image and the command and arguments as the spec has them (placeholders unresolved),
  and the environment variables when the task sets any.

The fingerprint is the SHA-256 (hex) of the key as JSON the way upstream writes it: protobuf's JSON form
(empty fields omitted) re-encoded by Go's encoding/json (compact, object keys sorted, `<`, `>`, `&`,
U+2028 and U+2029 escaped as \\uXXXX, numbers as Go formats a float64): the same bytes, so the same
fingerprint for the same key (tests/unit/test_ir_cache_key.py checks upstream's own test vectors).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from kfp_backend.workflow.ir.executor_input import RuntimeArtifact, parameter_text
from kfp_backend.workflow.ir.model import STRING, Interface


def cache_key(
    inputs: Interface, outputs: Interface, *, image: str, command: Sequence[Any], env: Sequence[tuple[str, str]],
    parameter_values: Mapping[str, Any], input_artifact_names: Mapping[str, Sequence[str]],
    output_artifacts: Mapping[str, RuntimeArtifact],
) -> dict[str, Any]:
    """The task's CacheKey as protobuf's JSON form of it: fields with no value left out."""
    values: dict[str, Any] = {}
    for name, value in parameter_values.items():
        spec = inputs.parameters.get(name)
        if spec is not None and spec.type == STRING and not isinstance(value, str):
            value = parameter_text(value)  # the ExecutorInput carries a STRING input as text
        values[name] = value
    key: dict[str, Any] = {}
    if input_artifact_names:
        key["inputArtifactNames"] = {
            name: ({"artifactNames": list(names)} if names else {}) for name, names in input_artifact_names.items()
        }
    if output_artifacts:
        key["outputArtifactsSpec"] = {name: _artifact_spec(a) for name, a in output_artifacts.items()}
    if outputs.parameters:
        key["outputParametersSpec"] = {name: spec.type for name, spec in outputs.parameters.items()}
    container: dict[str, Any] = {}
    if image:
        container["image"] = image
    parts = [part if isinstance(part, str) else json.dumps(part) for part in command]
    if parts:
        container["cmdArgs"] = parts
    if env:
        container["env"] = [{"name": n, "value": v} if v else {"name": n} for n, v in env]
    if container:
        key["containerSpec"] = container
    if values:
        key["inputParameterValues"] = values
    return key


def _artifact_spec(artifact: RuntimeArtifact) -> dict[str, Any]:
    kind: dict[str, Any] = {"schemaTitle": artifact.schema_title}
    if artifact.schema_version:
        kind["schemaVersion"] = artifact.schema_version
    spec: dict[str, Any] = {"type": kind}
    if artifact.name:
        spec["name"] = artifact.name  # the output's name, as the ExecutorInput names it
    if artifact.metadata:
        spec["metadata"] = dict(artifact.metadata)
    return spec


def fingerprint(key: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the key's JSON as Go's encoding/json writes it."""
    return hashlib.sha256(go_json(key).encode("utf-8")).hexdigest()


def go_json(value: Any) -> str:
    """`value` as Go's json.Marshal writes the same value decoded into interface{}: compact, keys sorted,
    every number a float64."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return _go_number(float(value))
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_go_string(str(k))}:{go_json(value[k])}" for k in sorted(value, key=str)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _go_number(number: float) -> str:
    """Go's float64 encoding: the shortest digits that read back, in plain notation unless the magnitude is
    below 1e-6 or at least 1e21 (then `1e-07` is written `1e-7`)."""
    if not math.isfinite(number):
        raise ValueError("JSON has no NaN or infinity")
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = repr(number).partition("e")
        sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
        return f"{mantissa}e{sign}{digits}"
    return format(Decimal(repr(number)).normalize(), "f")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _go_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char < " " or char in "<>&\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
