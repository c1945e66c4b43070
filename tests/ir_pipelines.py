"""Hand-written KFP v2 pipeline specs (IR) for the executor's tests: container components (`sh -c`) only,
so they run without kfp installed. `pipeline(...)` assembles a spec from components and a root DAG;
`run_to_the_end` runs one over v1beta1."""

from __future__ import annotations

import json
import time
from typing import Any

from flask.testing import FlaskClient

RUNS = "/apis/v1beta1/runs"
FINISHED = {"Succeeded", "Failed", "Error"}


def parameters(**types: str | tuple[str, Any]) -> dict[str, Any]:
    """inputDefinitions/outputDefinitions parameters: name=TYPE or name=(TYPE, default)."""
    out: dict[str, Any] = {}
    for name, kind in types.items():
        if isinstance(kind, tuple):
            out[name] = {"parameterType": kind[0], "defaultValue": kind[1], "isOptional": True}
        else:
            out[name] = {"parameterType": kind}
    return out


def artifacts(*names: str, title: str = "system.Dataset") -> dict[str, Any]:
    return {name: {"artifactType": {"schemaTitle": title, "schemaVersion": "0.0.1"}} for name in names}


def sh_component(name: str, script: str, args: list[str], *, inputs: dict | None = None,
                 outputs: dict | None = None) -> tuple[str, dict, dict]:
    """A container component running `sh -c script arg0 arg1...` ($0 is the first arg)."""
    component: dict[str, Any] = {"executorLabel": f"exec-{name}"}
    if inputs:
        component["inputDefinitions"] = inputs
    if outputs:
        component["outputDefinitions"] = outputs
    executor = {"container": {"image": "alpine", "command": ["sh", "-c", script], "args": args}}
    return f"comp-{name}", component, executor


def task(component: str, *, display: str | None = None, after: list[str] | None = None,
         parameters: dict | None = None, artifacts: dict | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"componentRef": {"name": component}, "taskInfo": {"name": display or component[5:]}}
    if after:
        spec["dependentTasks"] = after
    if parameters or artifacts:
        spec["inputs"] = {}
        if parameters:
            spec["inputs"]["parameters"] = parameters
        if artifacts:
            spec["inputs"]["artifacts"] = artifacts
    spec.update(extra)
    return spec


def const(value: Any) -> dict[str, Any]:
    return {"runtimeValue": {"constant": value}}


def pipeline_input(name: str) -> dict[str, Any]:
    return {"componentInputParameter": name}


def output_of(task_name: str, key: str) -> dict[str, Any]:
    return {"taskOutputParameter": {"producerTask": task_name, "outputParameterKey": key}}


def artifact_of(task_name: str, key: str) -> dict[str, Any]:
    return {"taskOutputArtifact": {"producerTask": task_name, "outputArtifactKey": key}}


def pipeline(name: str, components: list[tuple[str, dict, dict | None]], root: dict[str, Any]) -> dict[str, Any]:
    return {
        "pipelineInfo": {"name": name},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
        "components": {key: component for key, component, _ in components},
        "deploymentSpec": {"executors": {
            component["executorLabel"]: executor for _, component, executor in components if executor is not None
        }},
        "root": root,
    }


def dag_component(name: str, tasks: dict, *, inputs: dict | None = None, outputs: dict | None = None,
                  output_definitions: dict | None = None) -> tuple[str, dict, None]:
    component: dict[str, Any] = {"dag": {"tasks": tasks}}
    if outputs:
        component["dag"]["outputs"] = outputs
    if inputs:
        component["inputDefinitions"] = inputs
    if output_definitions:
        component["outputDefinitions"] = output_definitions
    return f"comp-{name}", component, None


def manifest(spec: dict[str, Any]) -> str:
    return json.dumps(spec)


# A check in sh: fail (exit 1) with a message unless "$a" = "$b".
EXPECT = 'if [ "$0" != "$1" ]; then echo "got [$0] want [$1]"; exit 1; fi; echo ok'


def create_run(client: FlaskClient, spec: dict, parameters: list[dict] | None = None) -> dict:
    pipeline_spec: dict = {"workflow_manifest": manifest(spec)}
    if parameters is not None:
        pipeline_spec["parameters"] = parameters
    response = client.post(RUNS, json={"name": "ir run", "pipeline_spec": pipeline_spec})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def run_to_the_end(client: FlaskClient, spec: dict, parameters: list[dict] | None = None,
                   timeout: float = 60) -> tuple[str, dict]:
    """Create a run of the spec and wait for it: its status and its nodes (Argo's `status.nodes`, by id)."""
    return wait_for(client, create_run(client, spec, parameters)["run"]["id"], timeout)


def artifact_passing() -> dict:
    """`write` writes an output artifact; `read` checks the file, URI and metadata it is given."""
    write = sh_component(
        "write", 'mkdir -p "$(dirname "$0")"; printf "line 1\\nline 2\\n" > "$0"; echo "$1" > "$(dirname "$0")/uri"',
        ["{{$.outputs.artifacts['data'].path}}", "{{$.outputs.artifacts['data'].uri}}"],
        outputs={"artifacts": artifacts("data")})
    read = sh_component(
        "read", 'test "$(cat "$0")" = "$(printf "line 1\\nline 2")" || exit 1; '
                'case "$1" in minio://mlpipeline/v2/artifacts/*/data) ;; *) echo "uri $1"; exit 1;; esac; '
                'case "$0" in /minio/mlpipeline/v2/artifacts/*/data) ;; *) echo "path $0"; exit 1;; esac; '
                'test "$2" = "{}" || exit 1',
        ["{{$.inputs.artifacts['data'].path}}", "{{$.inputs.artifacts['data'].uri}}",
         "{{$.inputs.artifacts['data'].metadata}}"],
        inputs={"artifacts": artifacts("data")})
    return pipeline("artifacts", [write, read], {"dag": {"tasks": {
        "write": task("comp-write"),
        "read": task("comp-read", after=["write"], artifacts={"data": artifact_of("write", "data")}),
    }}})


def wait_for(client: FlaskClient, run_id: str, timeout: float = 60) -> tuple[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        detail = client.get(f"{RUNS}/{run_id}").get_json()
        if detail["run"].get("status") in FINISHED:
            status = json.loads(detail["pipeline_runtime"]["workflow_manifest"])["status"]
            return detail["run"]["status"], status.get("nodes", {})
        assert time.monotonic() < deadline, f"run not finished: {detail['run'].get('status')}"
        time.sleep(0.05)


def by_display(nodes: dict) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for node in nodes.values():
        found.setdefault(node["displayName"], node)
    return found


def phases(nodes: dict) -> dict[str, str]:
    return {node["displayName"]: node["phase"] for node in nodes.values() if node["type"] != "DAG"}
