"""The workflow as clients read it back: the runtime workflow plus Argo's `status`.

The executor writes the workflow-level status (phase, startedAt, finishedAt, message, progress) into
run_manifests.workflow_status and one row per node into run_nodes, whose `data` is the node in Argo's
shape plus private keys starting with `_`. This module joins them into `pipeline_runtime.workflow_manifest`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from kfp_backend.store.states import COMPLETED_WORKFLOW_PHASES

LABEL_PHASE = "workflows.argoproj.io/phase"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
# The workflow-level fields, in the order Argo writes them.
_STATUS_FIELDS = ("phase", "startedAt", "finishedAt", "estimatedDuration", "progress", "message")


def load_object(text: str | None) -> dict[str, Any]:
    """A stored JSON object; an empty or unreadable value counts as `{}`."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def public_node(data: Mapping[str, Any]) -> dict[str, Any]:
    """A node as Argo shows it: the stored object without the executor's private `_` keys."""
    return {key: value for key, value in data.items() if not key.startswith("_")}


def workflow_status(status: Mapping[str, Any], nodes: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Argo's `status` object from the stored workflow status and (node id, node data) pairs."""
    rendered: dict[str, Any] = {}
    for key in _STATUS_FIELDS:
        if status.get(key) not in (None, ""):
            rendered[key] = status[key]
    for key, value in status.items():
        if key not in rendered and key not in _STATUS_FIELDS and not key.startswith("_") and key != "nodes":
            rendered[key] = value
    node_map = {node_id: public_node(data) for node_id, data in nodes}
    if node_map:
        rendered["nodes"] = node_map
    return rendered


def render_workflow(
    workflow_json: str, status: Mapping[str, Any], nodes: Iterable[tuple[str, Mapping[str, Any]]]
) -> str:
    """The runtime workflow with its status and phase labels, as compact JSON."""
    workflow = load_object(workflow_json)
    rendered_status = workflow_status(status, nodes)
    phase = rendered_status.get("phase")
    if phase:
        metadata = workflow.get("metadata")
        if not isinstance(metadata, dict):
            metadata = workflow["metadata"] = {}
        labels = metadata.get("labels")
        if not isinstance(labels, dict):
            labels = metadata["labels"] = {}
        labels[LABEL_PHASE] = phase
        if phase in COMPLETED_WORKFLOW_PHASES:
            labels[LABEL_COMPLETED] = "true"
        else:
            labels.pop(LABEL_COMPLETED, None)
    workflow["status"] = rendered_status
    return json.dumps(workflow, separators=(",", ":"), ensure_ascii=False)
