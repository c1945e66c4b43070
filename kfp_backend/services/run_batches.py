"""Batch status (our extension, `POST .../runs:batchGetStatus`): the state of up to 200 runs, or of up to 200
nodes of runs, in a constant number of statements (one SELECT with IN, whatever the count).

Each entry is answered on its own: an unknown id (a deleted run is one too: its rows are gone) or a run of a
namespace the caller may not read becomes that entry's error, never the failure of the whole call. Only a
malformed request (no entries, too many, an empty id) fails as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller
from kfp_backend.services.authorization import Authorizer
from kfp_backend.services.errors import ApiError, InvalidArgument, NotFound
from kfp_backend.services.run_status import load_object
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import runs_repo as repo
from kfp_backend.store.db import Database

MAX_ENTRIES = 200
# Artifacts of kfp 1.8 (Argo) steps whose type the name tells; other Argo artifacts have no known type.
_ARGO_ARTIFACT_TYPES = {"mlpipeline-metrics": "Metrics", "mlpipeline-ui-metadata": "UIMetadata"}


@dataclass(frozen=True)
class NodeKey:
    run_id: str
    node_id: str


@dataclass(frozen=True)
class EntryError:
    """Why one entry has no status: a google.rpc.Status (code 5 NOT_FOUND, 7 PERMISSION_DENIED)."""

    code: int
    message: str


@dataclass(slots=True)
class RunStatus:
    run_id: str
    error: EntryError | None = None
    name: str = ""
    status: str = ""  # the v1 status ("" before the executor first reports; "Pending" while held)
    created_at: int = 0
    finished_at: int = 0
    storage_state: str = ""
    terminate_requested: bool = False
    held: bool = False  # created with start=false, not started yet


@dataclass(slots=True)
class OutputArtifact:
    name: str
    type: str = ""  # "Model", "Dataset", "Metrics", ... ; "" when not known
    uri: str = ""
    stored: bool = False  # in the artifact store: ReadArtifact reads it
    metadata: Mapping[str, Any] = field(default_factory=dict)


# Built 200 times per call: plain slotted classes, cheaper to construct than frozen ones.
@dataclass(slots=True)
class NodeStatus:
    run_id: str
    node_id: str
    error: EntryError | None = None
    display_name: str = ""
    phase: str = ""
    started_at: str = ""  # RFC 3339, as the node records it; "" when not started
    finished_at: str = ""
    message: str = ""
    parameters: list[tuple[str, str]] = field(default_factory=list)
    artifacts: list[OutputArtifact] = field(default_factory=list)


@dataclass(frozen=True)
class BatchRequest:
    run_ids: Sequence[str] = ()
    nodes: Sequence[NodeKey] = ()


class BatchStatusReader:
    def __init__(self, db: Database, authorizer: Authorizer) -> None:
        self._db = db
        self._authz = authorizer

    def read(self, request: BatchRequest, *, caller: Caller) -> list[RunStatus] | list[NodeStatus]:
        """The runs' statuses, or the nodes' when nodes are given (nodes win, as in PAI's
        ListPipelineRunsStatus), in request order (a repeated id is answered twice)."""
        if request.nodes:
            _check_count(len(request.nodes), "nodes")
            for index, key in enumerate(request.nodes):
                if not key.run_id or not key.node_id:
                    raise InvalidArgument(f"nodes[{index}] needs a run_id and a node_id.")
            return self._nodes(request.nodes, caller)
        _check_count(len(request.run_ids), "run_ids")
        for index, run_id in enumerate(request.run_ids):
            if not run_id:
                raise InvalidArgument(f"run_ids[{index}] is empty.")
        return self._runs(request.run_ids, caller)

    def _runs(self, run_ids: Sequence[str], caller: Caller) -> list[RunStatus]:
        with transaction(self._db, write=False) as session:
            rows = repo.run_status_rows(session, run_ids)
        return [self._run_status(run_id, rows.get(run_id), caller) for run_id in run_ids]

    def _nodes(self, keys: Sequence[NodeKey], caller: Caller) -> list[NodeStatus]:
        with transaction(self._db, write=False) as session:
            runs, nodes = repo.node_status_rows(session, [(key.run_id, key.node_id) for key in keys])
        answered = []
        for key in keys:
            run = self._run_status(key.run_id, runs.get(key.run_id), caller)
            node = nodes.get((key.run_id, key.node_id))
            if run.error is not None:
                answered.append(NodeStatus(key.run_id, key.node_id, run.error))
            elif node is None:
                message = f"Node {key.node_id} of run {key.run_id} not found."
                answered.append(NodeStatus(key.run_id, key.node_id, EntryError(NotFound.grpc_code, message)))
            else:
                answered.append(_node_status(key, node[0], load_object(node[1])))
        return answered

    def _run_status(self, run_id: str, row: Any, caller: Caller) -> RunStatus:
        if row is None:
            return RunStatus(run_id, EntryError(NotFound.grpc_code, f"Run {run_id} not found."))
        if not self._authz.allows(caller, row.namespace):
            denied: ApiError = authz.permission_denied(caller, row.namespace, authz.RUNS, authz.GET, run_id)
            return RunStatus(run_id, EntryError(denied.grpc_code, denied.external_message))
        return RunStatus(
            run_id, name=row.name, status=row.status, created_at=row.created_at or 0,
            finished_at=row.finished_at or 0, storage_state=row.storage_state,
            terminate_requested=bool(row.terminate_requested), held=bool(row.held),
        )


def _check_count(count: int, what: str) -> None:
    if not 1 <= count <= MAX_ENTRIES:
        raise InvalidArgument(
            f"A batch status request names 1 to {MAX_ENTRIES} run_ids or nodes; got {count} {what}."
        )


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _node_status(key: NodeKey, phase: str, data: dict[str, Any]) -> NodeStatus:
    outputs = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
    parameters = [
        (str(p.get("name", "")), str(p.get("value", "")))
        for p in outputs.get("parameters") or () if isinstance(p, dict)
    ]
    return NodeStatus(
        key.run_id, key.node_id, display_name=_text(data, "displayName") or _text(data, "name"), phase=phase,
        started_at=_text(data, "startedAt"), finished_at=_text(data, "finishedAt"), message=_text(data, "message"),
        parameters=parameters, artifacts=_artifacts(data, outputs),
    )


def _artifacts(data: dict[str, Any], outputs: dict[str, Any]) -> list[OutputArtifact]:
    """The node's output artifacts (Argo's view, which both formats write) typed from what is known: a KFP v2
    node keeps each artifact's schema title (`system.Model` -> "Model") and metadata in `_ir_outputs`."""
    typed = data.get("_ir_outputs") if isinstance(data.get("_ir_outputs"), dict) else {}
    typed_artifacts = typed.get("artifacts") if isinstance(typed.get("artifacts"), dict) else {}
    found = []
    for artifact in outputs.get("artifacts") or ():
        if not isinstance(artifact, dict) or not isinstance(artifact.get("name"), str):
            continue
        name = artifact["name"]
        kind, metadata = _ARGO_ARTIFACT_TYPES.get(name, ""), {}
        produced = typed_artifacts.get(name)
        if isinstance(produced, list) and produced and isinstance(produced[0], dict):
            schema = produced[0].get("type") if isinstance(produced[0].get("type"), dict) else {}
            title = schema.get("schemaTitle")
            kind = title.rsplit(".", 1)[-1] if isinstance(title, str) and title else kind
            metadata = produced[0].get("metadata") if isinstance(produced[0].get("metadata"), dict) else {}
        s3 = artifact.get("s3")
        stored = isinstance(s3, dict) and bool(s3.get("key"))
        found.append(OutputArtifact(name, kind, _text(artifact, "uri"), stored, metadata))
    return found
