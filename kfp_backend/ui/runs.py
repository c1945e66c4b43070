"""Run pages: the list, one run (graph, parameters, metrics, manifest, actions) and its node panel's JSON."""

from __future__ import annotations

import io
import json
import re
import tarfile
from typing import Any

import yaml
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kfp_backend.services.clock import now_seconds
from kfp_backend.services.errors import ApiError
from kfp_backend.services.references import ResourceType
from kfp_backend.services.runs import RunDetail
from kfp_backend.store.states import STORAGE_ARCHIVED
from kfp_backend.ui.blueprint import blueprint
from kfp_backend.ui.common import format_duration, namespace_key, parameters_of, services
from kfp_backend.ui.run_lists import run_table
from kfp_backend.ui.session import current_caller

# The most of a log one poll returns; the panel asks again from where it stopped.
LOG_CHUNK_BYTES = 256 << 10
# Artifacts previewed as text: a .tgz up to this size, whose first file is at most PREVIEW_BYTES.
MAX_PREVIEW_ARCHIVE_BYTES = 1 << 20
PREVIEW_BYTES = 64 << 10


@blueprint.get("/runs")
def runs() -> str:
    return render_template("runs.html", table=run_table(namespace_key()))


blueprint.add_url_rule("/", "home", runs)


# libyaml's dumper when PyYAML has it: a 200-step workflow dumps in tens of ms rather than a second.
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def manifest_yaml(text: str) -> str:
    """The manifest as YAML: stored JSON (what runs keep) converted, YAML shown as it was given."""
    if not text or not text.lstrip().startswith("{"):
        return text
    try:
        document = json.loads(text)  # JSON, read as JSON: YAML's pure-Python reader is far slower
    except ValueError:
        return text
    return yaml.dump(document, Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True)


def _run_context(detail: RunDetail) -> dict[str, Any]:
    run = detail.view.run
    status = detail.view.workflow_status or {}
    experiment = next((r for r in detail.view.references if r.key.type == ResourceType.EXPERIMENT), None)
    return {
        "run": run, "status": run.status or "Pending", "message": status.get("message", ""),
        "duration": format_duration(run.created_at, run.finished_at, now_seconds()),
        "parameters": parameters_of(run.parameters),
        "metrics": [{"name": m.name, "node_id": m.node_id, "value": m.number_value, "format": m.format}
                    for m in detail.view.metrics],
        "experiment_name": experiment.name if experiment is not None else "",
        "archived": run.storage_state == STORAGE_ARCHIVED,
        "active": run.finished_at == 0,
    }


@blueprint.get("/runs/<run_id>")
def run_page(run_id: str) -> str:
    detail = services().runs.get(run_id, caller=current_caller())
    return render_template("run.html", **_run_context(detail))


@blueprint.get("/runs/<run_id>/manifest.yaml")
def run_manifest(run_id: str) -> Response:
    """The run's manifest as YAML text: loaded by the run page when its Manifest section is opened (a big
    workflow's YAML would weigh down every page view), and a link of its own."""
    detail = services().runs.get(run_id, caller=current_caller())
    response = Response(manifest_yaml(detail.view.pipeline_spec_manifest or ""), mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


# -- actions -----------------------------------------------------------------------------------------------

_RUN_ACTIONS = {
    "terminate": ("terminate", "Termination requested."),
    "retry": ("retry", "Retry started."),
    "archive": ("archive", "Run archived."),
    "unarchive": ("unarchive", "Run restored from the archive."),
    "delete": ("delete", "Run deleted."),
}


@blueprint.post("/runs/<run_id>/<action>")
def run_action(run_id: str, action: str) -> Response:
    if action not in _RUN_ACTIONS:
        abort(404)
    method, done = _RUN_ACTIONS[action]
    getattr(services().runs, method)(run_id, caller=current_caller())
    flash(done, "info")
    if action == "delete":
        return redirect(url_for("ui.runs"))
    return redirect(url_for("ui.run_page", run_id=run_id))


@blueprint.post("/runs/bulk")
def runs_bulk() -> Response:
    """Archive, restore or delete the runs ticked in a list; each run on its own, the refusals reported."""
    action = request.form.get("action", "")
    if action not in {"archive", "unarchive", "delete"}:
        abort(400)
    ids = request.form.getlist("run")
    done, refused = 0, []
    for run_id in ids:
        try:
            getattr(services().runs, action)(run_id, caller=current_caller())
            done += 1
        except ApiError as exc:
            refused.append(f"{run_id}: {exc.external_message}")
    flash(f"{action.capitalize()}: {done} of {len(ids)} run(s).", "info")
    for message in refused:
        flash(message, "error")
    return redirect(_back())


def _back() -> str:
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else url_for("ui.runs")


# -- the node panel's JSON ---------------------------------------------------------------------------------


def _find_node(detail: RunDetail, node_id: str) -> tuple[str, dict[str, Any]] | None:
    for stored_id, data in detail.nodes:
        if node_id in (stored_id, data.get("id"), data.get("name"), data.get("displayName")):
            return stored_id, data
    return None


def _attempt_names(node: dict[str, Any]) -> list[str]:
    # The executor records a retried step's attempts by name; Argo's own `children` holds their ids.
    names = node.get("_attempts") or node.get("children") or []
    return [str(n) for n in names] if isinstance(names, list) else []


def _attempts(detail: RunDetail, stored_id: str, data: dict[str, Any]
              ) -> tuple[dict[str, Any] | None, list[tuple[str, dict[str, Any]]]]:
    """The retried step a node is an attempt of (or is), and its attempts in order; (None, []) otherwise."""
    if data.get("type") == "Retry":
        retry: dict[str, Any] | None = data
    else:
        keys = {stored_id, data.get("name")}
        retry = next((other for _, other in detail.nodes
                      if other.get("type") == "Retry" and keys & set(_attempt_names(other))), None)
    if retry is None:
        return None, []
    known = {key: pair for pair in detail.nodes for key in (pair[0], pair[1].get("name")) if key}
    return retry, [known[n] for n in _attempt_names(retry) if n in known]


def _named(items: Any) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


_ITEM = re.compile(r"\(([^()]*)\)")


def step_label(node_id: str, data: dict[str, Any]) -> str:
    """What the step list calls a step: its display name, and inside a loop which item, as the graph does
    (`train(0:small)`: Argo names iterations `loop(0:small)`, IR `loop(0)`)."""
    label = str(data.get("displayName") or data.get("name") or node_id)
    name = str(data.get("name") or "")
    items = _ITEM.findall(name.rsplit(".", 1)[0]) if "." in name else []
    return f"{label}({items[-1]})" if items and not label.endswith(")") else label


@blueprint.get("/ui/api/runs/<run_id>/nodes")
def node_list(run_id: str) -> Response:
    """The run's steps as a list (the step list beside the graph, usable by keyboard and without it)."""
    detail = services().runs.get(run_id, caller=current_caller())
    nodes = [
        {"id": node_id, "name": step_label(node_id, data), "type": data.get("type", ""),
         "phase": data.get("phase", "") or "Pending", "message": data.get("message", "")}
        for node_id, data in detail.nodes if data.get("type") not in {"DAG", "Steps", "StepGroup", "TaskGroup"}
    ]
    # In the order they started (not started yet: last), then by name.
    started = {node_id: str(data.get("startedAt") or "~") for node_id, data in detail.nodes}
    nodes.sort(key=lambda node: (started[node["id"]], node["name"]))
    run = detail.view.run
    return jsonify({"run_status": run.status or "Pending", "active": run.finished_at == 0, "nodes": nodes})


@blueprint.get("/ui/api/runs/<run_id>/nodes/<path:node_id>")
def node_json(run_id: str, node_id: str) -> Response:
    """What the node panel shows of one node: inputs, outputs, timing, message, artifacts (with links)."""
    detail = services().runs.get(run_id, caller=current_caller())
    found = _find_node(detail, node_id)
    if found is None:
        return jsonify({"error": f"Run {run_id} has no node {node_id}."}), 404  # type: ignore[return-value]
    stored_id, data = found
    retry, attempts = _attempts(detail, stored_id, data)
    if data.get("type") == "Retry" and attempts:
        stored_id, data = attempts[-1]  # a retried step shows its latest attempt (its log, its outputs)
    inputs, outputs = data.get("inputs") or {}, data.get("outputs") or {}
    artifacts = [
        {"name": a.get("name", ""), "path": a.get("path", ""),
         "url": url_for("ui.node_artifact", run_id=run_id, node_id=stored_id, artifact=a.get("name", "")),
         "preview_url": url_for("ui.node_artifact_preview", run_id=run_id, node_id=stored_id,
                                artifact=a.get("name", ""))}
        for a in _named(outputs.get("artifacts")) if a.get("name")
    ]
    return jsonify({
        "run_id": run_id, "node_id": stored_id, "name": data.get("displayName") or data.get("name") or stored_id,
        "type": data.get("type", ""), "phase": data.get("phase", ""), "message": data.get("message", ""),
        "started_at": data.get("startedAt", ""), "finished_at": data.get("finishedAt", ""),
        "inputs": [{"name": p.get("name"), "value": p.get("value")} for p in _named(inputs.get("parameters"))],
        "outputs": [{"name": p.get("name"), "value": p.get("value")} for p in _named(outputs.get("parameters"))],
        "input_artifacts": [a.get("name") for a in _named(inputs.get("artifacts"))],
        "artifacts": artifacts,
        "has_log": data.get("type") == "Pod",
        "log_url": url_for("ui.node_log", run_id=run_id, node_id=stored_id),
        "active": data.get("phase") in {"Pending", "Running", ""} and not data.get("finishedAt"),
        # Every attempt of a retried step, the one shown among them.
        "retry_of": (retry.get("displayName") or retry.get("name") or "") if retry is not None else "",
        "attempts": [
            {"node_id": attempt_id, "number": number, "phase": attempt.get("phase", ""),
             "started_at": attempt.get("startedAt", ""), "finished_at": attempt.get("finishedAt", ""),
             "message": attempt.get("message", ""), "shown": attempt_id == stored_id}
            for number, (attempt_id, attempt) in enumerate(attempts, start=1)
        ],
    })


@blueprint.get("/ui/api/runs/<run_id>/logs/<path:node_id>")
def node_log(run_id: str, node_id: str) -> Response:
    """The node's log from byte `offset` on (at most LOG_CHUNK_BYTES); `X-Log-Size` says how far it reached."""
    try:
        offset = max(0, int(request.args.get("offset", "0")))
    except ValueError:
        offset = 0
    step_log = services().runs.read_node_log(run_id, node_id, caller=current_caller())
    with step_log.file as file:
        start = min(offset, step_log.size)
        file.seek(start)
        chunk = file.read(min(LOG_CHUNK_BYTES, step_log.size - start))
    response = Response(chunk, mimetype="text/plain", headers={"X-Log-Offset": str(start + len(chunk))})
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/runs/<run_id>/nodes/<node_id>/artifacts/<artifact>")
def node_artifact(run_id: str, node_id: str, artifact: str) -> Response:
    """An output artifact as stored (a .tgz), downloaded."""
    opened = services().runs.read_artifact(run_id, node_id, artifact, caller=current_caller())

    def chunks():  # type: ignore[no-untyped-def]
        with opened.file as file:
            remaining = opened.size
            while remaining > 0:
                data = file.read(min(1 << 16, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{node_id}-{artifact}")
    return Response(chunks(), mimetype="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="{safe}.tgz"', "Content-Length": str(opened.size),
    })


@blueprint.get("/ui/api/runs/<run_id>/nodes/<node_id>/artifacts/<artifact>/preview")
def node_artifact_preview(run_id: str, node_id: str, artifact: str) -> Response:
    """The text of a small artifact (the first file of its .tgz, up to PREVIEW_BYTES of UTF-8), or why not."""
    opened = services().runs.read_artifact(run_id, node_id, artifact, caller=current_caller())
    with opened.file as file:
        text, reason = preview_text(file.read(min(opened.size, MAX_PREVIEW_ARCHIVE_BYTES + 1)))
    return jsonify({"text": text, "reason": reason})


def preview_text(archive: bytes) -> tuple[str | None, str]:
    """(text, "") for a small UTF-8 file in the archive; (None, why) otherwise."""
    if len(archive) > MAX_PREVIEW_ARCHIVE_BYTES:
        return None, "too large to preview: download it"
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            if member is None:
                return None, "the artifact holds no file"
            if member.size > PREVIEW_BYTES:
                return None, "too large to preview: download it"
            extracted = tar.extractfile(member)
            data = extracted.read() if extracted is not None else b""
    except (tarfile.TarError, OSError, EOFError):
        return None, "not an archive this page can open: download it"
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError:
        return None, "binary content: download it"
