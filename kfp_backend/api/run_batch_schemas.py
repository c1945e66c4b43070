"""Our run extensions on the wire: the batch status request and answer (v1beta1 and v2beta1 names), and the
`start` query parameter of CreateRun."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from flask import request

from kfp_backend.api.request_parsing import json_body
from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.run_batches import BatchRequest, EntryError, NodeKey, NodeStatus, OutputArtifact, RunStatus
from kfp_backend.services.run_states import phase_state
from kfp_backend.store.states import STORAGE_ARCHIVED

# What grpc-gateway's bool query parameters accept (Go's strconv.ParseBool).
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def start_parameter() -> bool:
    """CreateRun's `start` query parameter: absent or true starts the run; false stores it held."""
    raw = request.args.get("start")
    if raw is None or raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidArgument(f"Invalid value for query parameter start: {raw!r} (expected true or false).")


def batch_request() -> BatchRequest:
    """The body, read by hand: a schema library costs more than the rest of the call for 200 ids. Keys in
    lowerCamelCase are read too (`runIds`, `nodeId`), as the gateway reads them; unknown keys are ignored."""
    body = json_body()
    run_ids = _field(body, "run_ids", "runIds")
    nodes = _field(body, "nodes", "nodes")
    if not isinstance(run_ids, list) or not all(isinstance(item, str) for item in run_ids):
        raise InvalidArgument("Invalid request body: run_ids must be a list of strings.")
    if not isinstance(nodes, list):
        raise InvalidArgument("Invalid request body: nodes must be a list of {run_id, node_id} objects.")
    keys = []
    for index, node in enumerate(nodes):
        run_id = _field(node, "run_id", "runId", "") if isinstance(node, dict) else None
        node_id = _field(node, "node_id", "nodeId", "") if isinstance(node, dict) else None
        if not isinstance(run_id, str) or not isinstance(node_id, str):
            raise InvalidArgument(f"Invalid request body: nodes[{index}] must be a {{run_id, node_id}} object.")
        keys.append(NodeKey(run_id, node_id))
    return BatchRequest(run_ids=tuple(run_ids), nodes=tuple(keys))


def _field(body: dict[str, Any], name: str, camel: str, default: Any = None) -> Any:
    """A field by its proto name, else its JSON name; null counts as not set (as jsonpb reads it)."""
    value = body.get(name)
    if value is None:
        value = body.get(camel)
    if value is None:
        return [] if default is None else default
    return value


def _timestamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _error(error: EntryError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message}


def _set(body: dict[str, Any], key: str, value: Any) -> None:
    """Sets `key` unless `value` is empty (jsonpb leaves unset fields out); cheaper than omit_zero per entry."""
    if value:
        body[key] = value


def _artifact(node_path: str, artifact: OutputArtifact) -> dict[str, Any]:
    body: dict[str, Any] = {"name": artifact.name}
    _set(body, "type", artifact.type)
    _set(body, "uri", artifact.uri)
    if artifact.metadata:
        body["metadata"] = dict(artifact.metadata)
    if artifact.stored:  # the ReadArtifact path of this API
        body["read_path"] = f"{node_path}/artifacts/{quote(artifact.name, safe='')}:read"
    return body


def _outputs(node: NodeStatus, prefix: str) -> dict[str, Any] | None:
    body: dict[str, Any] = {}
    if node.parameters:
        body["parameters"] = [{"name": name, "value": value} for name, value in node.parameters]
    if node.artifacts:
        node_path = f"{prefix}/runs/{quote(node.run_id, safe='')}/nodes/{quote(node.node_id, safe='')}"
        body["artifacts"] = [_artifact(node_path, artifact) for artifact in node.artifacts]
    return body or None


def _node(entry: NodeStatus, prefix: str, names: tuple[str, str, str], state: str) -> dict[str, Any]:
    """A node entry; `names` are the API's names of the phase, start and end fields."""
    if entry.error is not None:
        return {"run_id": entry.run_id, "node_id": entry.node_id, "error": _error(entry.error)}
    body: dict[str, Any] = {"run_id": entry.run_id, "node_id": entry.node_id}
    _set(body, "display_name", entry.display_name)
    _set(body, names[0], state)
    _set(body, names[1], entry.started_at)
    _set(body, names[2], entry.finished_at)
    _set(body, "message", entry.message)
    _set(body, "outputs", _outputs(entry, prefix))
    return body


def dump_v1(entries: list[RunStatus] | list[NodeStatus], prefix: str) -> dict[str, Any]:
    if entries and isinstance(entries[0], NodeStatus):
        return {"nodes": [_v1_node(entry, prefix) for entry in entries if isinstance(entry, NodeStatus)]}
    return {"runs": [_v1_run(entry) for entry in entries if isinstance(entry, RunStatus)]}


def _v1_run(entry: RunStatus) -> dict[str, Any]:
    if entry.error is not None:
        return {"run_id": entry.run_id, "error": _error(entry.error)}
    body: dict[str, Any] = {"run_id": entry.run_id, "name": entry.name}
    if entry.status:
        body["status"] = entry.status
    body["storage_state"] = entry.storage_state
    body["created_at"] = _timestamp(entry.created_at)
    body["finished_at"] = _timestamp(entry.finished_at)  # the epoch while unfinished, as an api.Run shows it
    return body


def _v1_node(entry: NodeStatus, prefix: str) -> dict[str, Any]:
    return _node(entry, prefix, ("phase", "started_at", "finished_at"), entry.phase)


def dump_v2(entries: list[RunStatus] | list[NodeStatus], prefix: str) -> dict[str, Any]:
    if entries and isinstance(entries[0], NodeStatus):
        return {"nodes": [_v2_node(entry, prefix) for entry in entries if isinstance(entry, NodeStatus)]}
    return {"runs": [_v2_run(entry) for entry in entries if isinstance(entry, RunStatus)]}


def _v2_run(entry: RunStatus) -> dict[str, Any]:
    if entry.error is not None:
        return {"run_id": entry.run_id, "error": _error(entry.error)}
    state = phase_state(entry.status, terminated=entry.terminate_requested)
    body: dict[str, Any] = {
        "run_id": entry.run_id, "display_name": entry.name, "state": state.name,
        "storage_state": "ARCHIVED" if entry.storage_state == STORAGE_ARCHIVED else "AVAILABLE",
        "created_at": _timestamp(entry.created_at),
    }
    if entry.finished_at:
        body["finished_at"] = _timestamp(entry.finished_at)
    return body


def _v2_node(entry: NodeStatus, prefix: str) -> dict[str, Any]:
    return _node(entry, prefix, ("state", "start_time", "end_time"), phase_state(entry.phase).name)
