"""Compare a finished run, as the kfp 1.8.22 client reads it, with a pipeline's expected results; run the
shared corpus through a client."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

TERMINAL = {"succeeded", "failed", "error", "skipped"}


def wait_for_run(client: Any, run_id: str, timeout: float = 120.0, poll: float = 0.2) -> Any:
    """Like `Client.wait_for_run_completion`, polling faster (it sleeps 5 s between polls)."""
    deadline = time.monotonic() + timeout
    while True:
        detail = client.get_run(run_id)
        status = (detail.run.status or "").lower()
        if status in TERMINAL:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} not finished after {timeout} s (status {detail.run.status!r})")
        time.sleep(poll)


def workflow_nodes(detail: Any) -> list[dict]:
    workflow = json.loads(detail.pipeline_runtime.workflow_manifest)
    return list(workflow.get("status", {}).get("nodes", {}).values())


def nodes_named(nodes: list[dict], key: str, workflow: dict) -> list[dict]:
    """Nodes whose task name is `key`; the exit handler is found by its template name."""
    on_exit = workflow.get("spec", {}).get("onExit")
    if key == on_exit:
        return [n for n in nodes if n.get("name", "").endswith(".onExit")]
    return [n for n in nodes if n.get("displayName") == key]


def check_run(detail: Any, expected: dict) -> None:
    problems: list[str] = []
    run = detail.run
    if run.status != expected["status"]:
        problems.append(f"run status {run.status!r}, expected {expected['status']!r}")
    workflow = json.loads(detail.pipeline_runtime.workflow_manifest)
    nodes = workflow_nodes(detail)
    templates = {t["name"]: t for t in workflow.get("spec", {}).get("templates", [])}
    by_id = {n["id"]: n for n in nodes}
    for key, want in expected["nodes"].items():
        found = nodes_named(nodes, key, workflow)
        problems += _check_node(key, want, found, nodes, templates)
    problems += _check_metrics(run, expected.get("metrics", []), nodes, by_id)
    assert not problems, "\n".join(problems) + "\nnodes: " + json.dumps(
        {n["name"]: (n.get("type"), n.get("phase"), n.get("message")) for n in nodes}, indent=1
    )


def _check_node(key: str, want: dict, found: list[dict], nodes: list[dict], templates: dict) -> list[str]:
    problems = []
    phase = want["phase"]
    if phase in ("Skipped", "Omitted") and "instances" not in want:
        bad = [n for n in found if n.get("phase") != phase]
        if bad:
            problems.append(f"{key}: expected {phase} or no node, got {[n.get('phase') for n in bad]}")
        return problems
    instances = want.get("instances", 1)
    if len(found) != instances:
        return [f"{key}: {len(found)} nodes, expected {instances} ({[n.get('name') for n in found]})"]
    if "phases" in want:
        counts: dict[str, int] = {}
        for node in found:
            counts[node.get("phase", "")] = counts.get(node.get("phase", ""), 0) + 1
        if counts != want["phases"]:
            problems.append(f"{key}: phases {counts}, expected {want['phases']}")
    elif any(n.get("phase") != phase for n in found):
        problems.append(f"{key}: phases {[n.get('phase') for n in found]}, expected {phase}")
    if "outputs" in want:
        for node in found:
            got = {p["name"]: p.get("value") for p in (node.get("outputs") or {}).get("parameters", [])}
            for name, value in want["outputs"].items():
                if got.get(name) != value:
                    problems.append(f"{key}: output {name}={got.get(name)!r}, expected {value!r}")
    if "outputs_multiset" in want:
        for name, values in want["outputs_multiset"].items():
            got_values = sorted(
                p.get("value") for n in found for p in (n.get("outputs") or {}).get("parameters", [])
                if p["name"] == name
            )
            if got_values != sorted(values):
                problems.append(f"{key}: outputs {name} {got_values}, expected {sorted(values)}")
    if "attempts" in want:
        pattern = re.compile(re.escape(key) + r"\(\d+\)$")
        attempts = [n for n in nodes if pattern.match(n.get("displayName", "")) and n.get("type") == "Pod"]
        if len(attempts) != want["attempts"]:
            problems.append(f"{key}: {len(attempts)} attempts, expected {want['attempts']}")
    if "display_name" in want:
        for node in found:
            template = templates.get(node.get("templateName"), {})
            annotation = template.get("metadata", {}).get("annotations", {}).get(
                "pipelines.kubeflow.org/task_display_name"
            )
            if annotation != want["display_name"]:
                problems.append(f"{key}: display name {annotation!r}, expected {want['display_name']!r}")
    return problems


def _check_metrics(run: Any, expected: list[dict], nodes: list[dict], by_id: dict[str, dict]) -> list[str]:
    got = []
    for metric in run.metrics or []:
        node = by_id.get(metric.node_id, {})
        display = node.get("displayName", "")
        got.append((metric.name, float(metric.number_value or 0), metric.format or "UNSPECIFIED",
                    re.sub(r"\(\d+\)$", "", display)))
    want = [(m["name"], float(m["number_value"]), m.get("format", "UNSPECIFIED"), m["node"]) for m in expected]
    if sorted(got) != sorted(want):
        return [f"metrics {sorted(got)}, expected {sorted(want)}"]
    return []


# ------------------------------------------------------------------------------------ the shared corpus


def corpus_names(corpus: Path) -> list[str]:
    """The pipelines of the corpus (`NAME.expected.json` beside `NAME.yaml`), sorted."""
    if not corpus.is_dir():
        return []
    return sorted(p.name[: -len(".expected.json")] for p in corpus.glob("*.expected.json"))


def expected_result(corpus: Path, name: str) -> dict:
    return json.loads((corpus / f"{name}.expected.json").read_text())


def run_corpus_pipeline(client: Any, corpus: Path, name: str, unique: str, *, upload: bool) -> Any:
    """Run corpus pipeline `name` with its expected arguments, from the package or (upload=True) from an
    uploaded pipeline, so both creation paths execute; return the finished run detail."""
    expected = expected_result(corpus, name)
    package = str(corpus / f"{name}.yaml")
    arguments = expected.get("arguments", {})
    if upload:
        pipeline = client.upload_pipeline(package, pipeline_name=f"{unique}-{name}")
        experiment = client.create_experiment(f"{unique}-exp")
        run_id = client.run_pipeline(experiment.id, f"{unique}-{name}", pipeline_id=pipeline.id, params=arguments).id
    else:
        run_name = f"{unique}-{name}"
        run_id = client.create_run_from_pipeline_package(package, arguments=arguments, run_name=run_name).run_id
    try:
        return wait_for_run(client, run_id, timeout=180)
    finally:
        # Steps that keep state across attempts (retry_flaky) keep it in /var/tmp, keyed by the run id.
        for path in Path("/var/tmp").glob(f"kfp-corpus-*{run_id}*"):
            path.unlink(missing_ok=True)


def terminate_long_running(client: Any, corpus: Path, unique: str) -> Any:
    """Start the corpus's long_running pipeline, terminate it once its long step runs; the finished detail."""
    expected = expected_result(corpus, "long_running")
    result = client.create_run_from_pipeline_package(
        str(corpus / "long_running.yaml"), arguments=expected.get("arguments", {}), run_name=f"{unique}-long"
    )
    deadline = time.monotonic() + 60
    while not any(
        n.get("displayName") == "sleep-long" and n.get("phase") == "Running"
        for n in workflow_nodes(client.get_run(result.run_id))
    ):
        assert time.monotonic() < deadline, "sleep-long never started"
        time.sleep(0.2)
    client.runs.terminate_run(result.run_id)
    status = client.get_run(result.run_id).run.status
    assert status in ("Terminating", "Failed")
    # The step sleeps 300 s: finishing within the wait means it was killed.
    return wait_for_run(client, result.run_id, timeout=60)
