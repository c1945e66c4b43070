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
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests import ir_pipelines as ir
from tests.api.test_auth import _settings
from tests.api.test_namespaces import TEAM_A, _make_tokens, _seed
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
    assert len(graph["edges"]) == 9
    assert not any(node["planned"] for node in graph["nodes"])
    # The exit handler's body is a group; its exit step is a node of its own, outside.
    assert groups["exit-handler-1"]["kind"] == "exit_handler" and groups["exit-handler-1"]["parent"] is None
    assert nodes["onExit"]["exit_handler"] and nodes["onExit"]["group"] is None
    assert nodes["onExit"]["phase"] == "Succeeded"
    body = groups["exit-handler-1"]["id"]
    # The loop: a group of three iterations, each a group holding its two steps.
    loop = next(g for g in graph["groups"] if g["kind"] == "loop")
    assert (loop["kind"], loop["parent"], loop["phase"]) == ("loop", body, "Succeeded")
    iterations = [g for g in graph["groups"] if g["parent"] == loop["id"]]
    assert sorted(g["display_name"] for g in iterations) == [
        f"{loop['display_name']}({i}:{item})" for i, item in enumerate(pipelines.LOOP_ITEMS)]
    assert {g["kind"] for g in iterations} == {"iteration"}
    in_loop = [n for n in graph["nodes"] if n["display_name"] == "in-loop"]
    after = {n["group"]: n for n in graph["nodes"] if n["display_name"] == "in-loop-after"}
    assert sorted(n["group"] for n in in_loop) == sorted(after) == sorted(g["id"] for g in iterations)
    assert {n["phase"] for n in in_loop} == {"Succeeded"}
    assert all({"from": n["id"], "to": after[n["group"]]["id"]} in graph["edges"] for n in in_loop)
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
    # Edges: first -> each iteration's first step, -> the condition's step, -> the skipped condition, -> flaky.
    edges = edge_names(graph)
    expected = {("first", "in-loop"), ("first", "when-yes"), ("first", untaken["display_name"]), ("first", "flaky")}
    assert edges >= expected
    assert len([e for e in graph["edges"] if e["to"] in {n["id"] for n in in_loop}]) == 3
    # The ids are the API's node ids (the v1beta1 workflow status's).
    detail = client.get(f"{RUNS}/{run_id}").get_json()
    status_nodes = json.loads(detail["pipeline_runtime"]["workflow_manifest"])["status"]["nodes"]
    assert {n["id"] for n in graph["nodes"] if n["type"] != "junction"} <= set(status_nodes)


def test_an_ir_run_with_a_loop_conditions_a_retry_and_an_exit_task(client: FlaskClient) -> None:
    run_id = ir.create_run(client, pipelines.ir_shapes())["run"]["id"]
    graph = finished_graph(client, run_id)
    check_consistent(graph)
    assert (graph["format"], graph["status"]) == ("ir", "Succeeded")
    nodes = by_display(graph["nodes"])
    groups = by_display(graph["groups"])
    body = groups["exit-handler-1"]
    assert (body["kind"], body["parent"], body["phase"]) == ("exit_handler", None, "Succeeded")
    assert nodes["final"]["exit_handler"] and nodes["final"]["group"] is None
    loop = groups["for-loop-1"]
    assert (loop["kind"], loop["parent"]) == ("loop", body["id"])
    squares = [n for n in graph["nodes"] if n["display_name"].startswith("square")]
    assert sorted(n["display_name"] for n in squares) == ["square(0)", "square(1)", "square(2)"]
    assert {n["group"] for n in squares} == {loop["id"]}
    assert groups["condition-2"]["kind"] == "condition" and groups["condition-2"]["condition"] == "1 < 2"
    assert nodes["yes"]["group"] == groups["condition-2"]["id"] and nodes["yes"]["phase"] == "Succeeded"
    assert (nodes["condition-3"]["type"], nodes["condition-3"]["phase"]) == ("skipped", "Skipped")
    flaky = nodes["flaky"]
    assert (flaky["type"], flaky["attempt"], flaky["max_attempts"]) == ("retry", 2, 3)
    assert [a["phase"] for a in flaky["attempts"]] == ["Failed", "Succeeded"]
    edges = edge_names(graph)
    assert edges >= {("first", "square(0)"), ("first", "yes"), ("first", "condition-3"), ("first", "flaky")}
    # The exit task runs after the body's last steps: each of them has an edge to it.
    into_final = {source for source, target in edges if target == "final"}
    assert into_final == {"square(0)", "square(1)", "square(2)", "yes", "condition-3", "flaky"}


def upload(client: FlaskClient, manifest: str) -> str:
    """The default version of a pipeline uploaded from `manifest`."""
    response = client.post("/apis/v1beta1/pipelines/upload", data={"uploadfile": (io.BytesIO(manifest.encode()),
                           "p.yaml")}, query_string={"name": f"graph-{uuid.uuid4().hex[:8]}"},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["default_version"]["id"]


@pytest.fixture
def idle_client(settings: Settings) -> Iterator[FlaskClient]:
    """A server whose executor is off: its runs never start."""
    application = create_app(settings)
    yield application.test_client()
    shutdown(application)


def test_a_version_graph_is_its_spec_with_every_node_planned(idle_client: FlaskClient, marker: str) -> None:
    version_id = upload(idle_client, pipelines.argo_manifest(marker))
    response = idle_client.get(VERSION_GRAPH.format(version_id))
    assert response.status_code == 200, response.get_data(as_text=True)
    graph = response.get_json()
    check_consistent(graph)
    assert (graph["pipeline_version_id"], graph["format"], graph["active"], graph["status"]) == (
        version_id, "argo", False, "")
    assert {(n["planned"], n["phase"]) for n in graph["nodes"]} == {(True, "")}
    assert {(g["planned"], g["phase"]) for g in graph["groups"]} == {(True, "")}
    nodes = by_display(graph["nodes"])
    # Both conditions are drawn (which branch runs is not known), the literal loop items are expanded.
    assert sorted(n["display_name"] for n in graph["nodes"]) == sorted(
        ["first", "when-yes", "when-no", "flaky", "onExit"] + ["in-loop", "in-loop-after"] * len(pipelines.LOOP_ITEMS))
    assert sorted(g["kind"] for g in graph["groups"]) == sorted(
        ["condition", "condition", "exit_handler", "loop"] + ["iteration"] * len(pipelines.LOOP_ITEMS))
    assert (nodes["flaky"]["type"], nodes["flaky"]["attempt"], nodes["flaky"]["max_attempts"]) == ("retry", None, 3)
    assert edge_names(graph) >= {("first", "in-loop"), ("first", "when-yes"), ("first", "when-no")}

    ir_version = upload(idle_client, ir.manifest(pipelines.ir_shapes()))
    graph = idle_client.get(VERSION_GRAPH.format(ir_version)).get_json()
    check_consistent(graph)
    assert graph["format"] == "ir"
    assert sorted(n["display_name"] for n in graph["nodes"]) == sorted(
        ["first", "square(0)", "square(1)", "square(2)", "yes", "no", "flaky", "final"])


def test_many_steps_into_many_go_through_a_junction(idle_client: FlaskClient) -> None:
    graph = idle_client.get(VERSION_GRAPH.format(upload(idle_client, pipelines.loop_after_loop_manifest()))).get_json()
    check_consistent(graph)
    [junction] = [node for node in graph["nodes"] if node["type"] == "junction"]
    assert (junction["group"], junction["phase"]) == (None, "")
    names = {node["id"]: node["display_name"] for node in graph["nodes"]}
    into = sorted(names[e["from"]] for e in graph["edges"] if e["to"] == junction["id"])
    out_of = sorted(names[e["to"]] for e in graph["edges"] if e["from"] == junction["id"])
    assert (into, out_of) == (["before(0:1)", "before(1:2)", "before(2:3)"], ["after(0:1)", "after(1:2)"])
    assert len(graph["edges"]) == 5


def test_a_run_not_started_shows_its_steps_pending(idle_client: FlaskClient, marker: str) -> None:
    run_id = create_run(idle_client, pipelines.argo_manifest(marker))
    graph = idle_client.get(GRAPH.format(run_id)).get_json()
    check_consistent(graph)
    assert (graph["status"], graph["active"]) == ("", True)
    assert {(n["planned"], n["phase"]) for n in graph["nodes"]} == {(True, "Pending")}
    # Planned nodes carry the ids the executor will give them, so a page polling it sees the same structure.
    assert len(graph["nodes"]) == 5 + 2 * len(pipelines.LOOP_ITEMS)


def test_unknown_ids_are_404s(idle_client: FlaskClient) -> None:
    for url, kind in ((GRAPH.format("no-such-run"), "Run"), (VERSION_GRAPH.format("no-such-version"), "Version")):
        response = idle_client.get(url)
        assert response.status_code == 404, response.get_data(as_text=True)
        body = response.get_json()
        assert body["code"] == 5 and f"{kind} no-such-" in body["message"], body


@pytest.fixture
def multi_user(db_url: str, tmp_path: Path) -> Iterator[FlaskClient]:
    application = create_app(_settings(database_url=db_url, data_dir=tmp_path / "data", auth="required"))
    yield application.test_client()
    shutdown(application)


def test_with_authentication_the_graphs_are_authorized_as_get_run_and_get_pipeline_version(
    multi_user: FlaskClient,
) -> None:
    tokens = _make_tokens(multi_user.application)
    seed = _seed(multi_user, tokens.alice, TEAM_A)
    for url in (GRAPH.format(seed.run), VERSION_GRAPH.format(seed.version)):
        assert multi_user.get(url).status_code == 401
        refused = multi_user.get(url, headers={"Authorization": f"Bearer {tokens.bob}"})
        assert refused.status_code == 403, refused.get_data(as_text=True)
        assert "User 'bob' is not authorized" in refused.get_json()["message"]
        allowed = multi_user.get(url, headers={"Authorization": f"Bearer {tokens.alice}"})
        assert allowed.status_code == 200, allowed.get_data(as_text=True)
        assert [n["display_name"] for n in allowed.get_json()["nodes"]] == ["say"]
    # An unknown id is a 404 for anyone authenticated, as GetRun's.
    assert multi_user.get(GRAPH.format("nope"), headers={"Authorization": f"Bearer {tokens.bob}"}).status_code == 404
