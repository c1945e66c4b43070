"""Our run extensions on the wire: the batch status request and answer (v1beta1 and v2beta1 names), and the
`start` query parameter of CreateRun."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import request
from marshmallow import fields

from kfp_backend.api.request_parsing import load_body
from kfp_backend.api.schemas import ProtoSchema, format_timestamp, omit_zero
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


class _NodeKeySchema(ProtoSchema):
    run_id = fields.String(load_default="")
    node_id = fields.String(load_default="")


class BatchStatusRequestSchema(ProtoSchema):
    run_ids = fields.List(fields.String(), load_default=list)
    nodes = fields.List(fields.Nested(_NodeKeySchema), load_default=list)


_request_schema = BatchStatusRequestSchema()


def batch_request() -> BatchRequest:
    body = load_body(_request_schema)
    return BatchRequest(
        run_ids=tuple(body["run_ids"]), nodes=tuple(NodeKey(n["run_id"], n["node_id"]) for n in body["nodes"])
    )


def _error(error: EntryError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message}


def _artifact(node: NodeStatus, artifact: OutputArtifact, prefix: str) -> dict[str, Any]:
    read = ""
    if artifact.stored:  # the ReadArtifact path of this API
        parts = (quote(node.run_id, safe=""), quote(node.node_id, safe=""), quote(artifact.name, safe=""))
        read = "{}/runs/{}/nodes/{}/artifacts/{}:read".format(prefix, *parts)
    body = omit_zero({"name": artifact.name, "type": artifact.type, "uri": artifact.uri, "read_path": read})
    if artifact.metadata:
        body["metadata"] = dict(artifact.metadata)
    return body


def _outputs(node: NodeStatus, prefix: str) -> dict[str, Any]:
    return omit_zero({
        "parameters": [{"name": name, "value": value} for name, value in node.parameters],
        "artifacts": [_artifact(node, artifact, prefix) for artifact in node.artifacts],
    })


def dump_v1(entries: list[RunStatus] | list[NodeStatus], prefix: str) -> dict[str, Any]:
    if entries and isinstance(entries[0], NodeStatus):
        return {"nodes": [_v1_node(entry, prefix) for entry in entries if isinstance(entry, NodeStatus)]}
    return {"runs": [_v1_run(entry) for entry in entries if isinstance(entry, RunStatus)]}


def _v1_run(entry: RunStatus) -> dict[str, Any]:
    if entry.error is not None:
        return {"run_id": entry.run_id, "error": _error(entry.error)}
    return omit_zero({
        "run_id": entry.run_id, "name": entry.name, "status": entry.status, "storage_state": entry.storage_state,
        "created_at": format_timestamp(entry.created_at), "finished_at": format_timestamp(entry.finished_at),
    })


def _v1_node(entry: NodeStatus, prefix: str) -> dict[str, Any]:
    if entry.error is not None:
        return {"run_id": entry.run_id, "node_id": entry.node_id, "error": _error(entry.error)}
    return omit_zero({
        "run_id": entry.run_id, "node_id": entry.node_id, "display_name": entry.display_name, "phase": entry.phase,
        "started_at": entry.started_at, "finished_at": entry.finished_at, "message": entry.message,
        "outputs": _outputs(entry, prefix) or None,
    })


def dump_v2(entries: list[RunStatus] | list[NodeStatus], prefix: str) -> dict[str, Any]:
    if entries and isinstance(entries[0], NodeStatus):
        return {"nodes": [_v2_node(entry, prefix) for entry in entries if isinstance(entry, NodeStatus)]}
    return {"runs": [_v2_run(entry) for entry in entries if isinstance(entry, RunStatus)]}


def _v2_run(entry: RunStatus) -> dict[str, Any]:
    if entry.error is not None:
        return {"run_id": entry.run_id, "error": _error(entry.error)}
    state = phase_state(entry.status, terminated=entry.terminate_requested)
    return omit_zero({
        "run_id": entry.run_id, "display_name": entry.name, "state": state.name,
        "storage_state": "ARCHIVED" if entry.storage_state == STORAGE_ARCHIVED else "AVAILABLE",
        "created_at": format_timestamp(entry.created_at),
        "finished_at": format_timestamp(entry.finished_at) if entry.finished_at else "",
    })


def _v2_node(entry: NodeStatus, prefix: str) -> dict[str, Any]:
    if entry.error is not None:
        return {"run_id": entry.run_id, "node_id": entry.node_id, "error": _error(entry.error)}
    return omit_zero({
        "run_id": entry.run_id, "node_id": entry.node_id, "display_name": entry.display_name,
        "state": phase_state(entry.phase).name, "start_time": entry.started_at, "end_time": entry.finished_at,
        "message": entry.message, "outputs": _outputs(entry, prefix) or None,
    })
