"""The run graph (services/run_graph.py) of real runs, executed in-process by the real executor over each
database, read through its HTTP route (ui/graph_routes.py): a kfp 1.8 pipeline with an exit handler, a loop, a
condition taken and one not and a retried step; the same shapes in a KFP v2 (IR) spec; a pipeline version's
graph from its spec alone; a run not started yet (every node planned); 404s; and in multi-user mode the
authorization of GetRun / GetPipelineVersion."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.auth import AuthService
from tests import ir_pipelines as ir
from tests.exit_retry_pipelines import remove_traces
from tests.ui import graph_pipelines as pipelines

RUNS = "/apis/v1beta1/runs"
GRAPH = "/ui/api/runs/{}/graph"
VERSION_GRAPH = "/ui/api/pipeline-versions/{}/graph"
NODE_KEYS = {"id", "name", "display_name", "type", "phase", "started_at", "finished_at", "message", "planned",
             "group", "template", "exit_handler", "pod_id"}
GROUP_KEYS = {"id", "name", "display_name", "kind", "phase", "started_at", "finished_at", "message", "planned",
              "parent", "template"}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


@pytest.fixture
def marker() -> Iterator[str]:
    marker = f"ui-graph-{uuid.uuid4().hex[:12]}"
    yield marker
    remove_traces(marker)


def finished_graph(client: FlaskClient, run_id: str, timeout: float = 90) -> dict[str, Any]:
    """The run's graph once the run is over, read through the route as the page polls it."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(GRAPH.format(run_id))
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        graph = response.get_json()
        if not graph["active"]:
            return graph
        assert time.monotonic() < deadline, f"run still {graph['status']}"
        time.sleep(0.1)


def create_run(client: FlaskClient, manifest: str) -> str:
    response = client.post(RUNS, json={"name": "graph", "pipeline_spec": {"workflow_manifest": manifest}})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["run"]["id"]


def check_consistent(graph: dict[str, Any]) -> None:
    """Every node and group has the documented keys; edges join nodes; group parents and members exist and
    every group has a member."""
    node_ids = {node["id"] for node in graph["nodes"]}
    group_ids = {group["id"] for group in graph["groups"]}
    assert len(node_ids) == len(graph["nodes"]) and len(group_ids) == len(graph["groups"])
    assert not node_ids & group_ids
    for node in graph["nodes"]:
        assert set(node) >= NODE_KEYS, node
        assert node["group"] is None or node["group"] in group_ids
    for group in graph["groups"]:
        assert set(group) >= GROUP_KEYS, group
        assert group["parent"] is None or group["parent"] in group_ids
    for edge in graph["edges"]:
        assert {edge["from"], edge["to"]} <= node_ids, edge
    members = {node["group"] for node in graph["nodes"]} | {group["parent"] for group in graph["groups"]}
    assert group_ids <= members


def by_display(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["display_name"]: item for item in items}


def edge_names(graph: dict[str, Any]) -> set[tuple[str, str]]:
    names = {node["id"]: node["display_name"] or node["type"] for node in graph["nodes"]}
    return {(names[edge["from"]], names[edge["to"]]) for edge in graph["edges"]}


def test_an_argo_run_with_a_loop_a_condition_a_retry_and_an_exit_handler(client: FlaskClient, marker: str) -> None:
    run_id = create_run(client, pipelines.argo_manifest(marker))
    graph = finished_graph(client, run_id)
    check_consistent(graph)
    assert (graph["run_id"], graph["format"], graph["status"], graph["active"]) == (run_id, "argo", "Succeeded", False)
    assert graph["started_at"] and graph["finished_at"]
    nodes = by_display(graph["nodes"])
    groups = by_display(graph["groups"])
    assert len(graph["edges"]) == 6
    assert not any(node["planned"] for node in graph["nodes"])
    # The exit handler's body is a group; its exit step is a node of its own, outside.
    assert groups["exit-handler-1"]["kind"] == "exit_handler" and groups["exit-handler-1"]["parent"] is None
    assert nodes["onExit"]["exit_handler"] and nodes["onExit"]["group"] is None
    assert nodes["onExit"]["phase"] == "Succeeded"
    body = groups["exit-handler-1"]["id"]
    # The loop: a group of three iterations, each a group holding its step.
    loop = next(g for g in graph["groups"] if g["kind"] == "loop")
    assert (loop["kind"], loop["parent"], loop["phase"]) == ("loop", body, "Succeeded")
    iterations = [g for g in graph["groups"] if g["parent"] == loop["id"]]
    assert [g["kind"] for g in iterations] == ["iteration"] * 3
    in_loop = [n for n in graph["nodes"] if n["display_name"] == "in-loop"]
    assert sorted(n["group"] for n in in_loop) == sorted(g["id"] for g in iterations)
    assert {n["phase"] for n in in_loop} == {"Succeeded"}
    # Conditions: the true one is a group holding its step, the false one a skipped node.
    [taken] = [g for g in graph["groups"] if g["kind"] == "condition"]
    assert taken["parent"] == body and '== "yes"' in taken["condition"]
    assert nodes["when-yes"]["group"] == taken["id"]
    [untaken] = [n for n in graph["nodes"] if n["type"] == "skipped"]
    assert (untaken["display_name"].startswith("condition-"), untaken["phase"]) == (True, "Skipped")
    assert "when-no" not in nodes
    # The retried step: one node with its attempts.
    flaky = nodes["flaky"]
    assert (flaky["type"], flaky["phase"], flaky["attempt"], flaky["max_attempts"]) == ("retry", "Succeeded", 2, 3)
    assert [a["phase"] for a in flaky["attempts"]] == ["Failed", "Succeeded"]
    assert flaky["pod_id"] == flaky["attempts"][-1]["id"]
    assert nodes["first"]["type"] == "pod" and nodes["first"]["pod_id"] == nodes["first"]["id"]
    # Edges: first -> each loop iteration's step, -> the condition's step, -> the skipped condition, -> flaky.
    edges = edge_names(graph)
    expected = {("first", "in-loop"), ("first", "when-yes"), ("first", untaken["display_name"]), ("first", "flaky")}
    assert edges >= expected
    assert len([e for e in graph["edges"] if e["to"] in {n["id"] for n in in_loop}]) == 3
    # The ids are the API's node ids (the v1beta1 workflow status's).
    detail = client.get(f"{RUNS}/{run_id}").get_json()
    status_nodes = json.loads(detail["pipeline_runtime"]["workflow_manifest"])["status"]["nodes"]
    assert {n["id"] for n in graph["nodes"] if n["type"] != "junction"} <= set(status_nodes)
