"""KFP v2 (IR) runs in multi-user mode: a tenant's lightweight Python component and container component run
in the step sandbox, with the server's prepared Python environment, and cannot change that environment.

A live `kfp-backend serve` with authentication on (so every step runs in the bwrap sandbox as an
unprivileged user), with no setting about Python environments: the server must choose a base interpreter
the step user can run and show the step its environment, which lives under the hidden data dir, read-only.
The pipelines are compiled at test time with kfp 2.x (its own venv) and submitted as IR through the
v2beta1 REST API with the tenant's bearer token. The data dir lives outside /tmp (under /var/tmp, mode
0755), as in test_step_isolation, so that the sandbox, not the private /tmp, hides it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.e2e.servers import stop_server, wait_until_healthy
from tests.e2e.test_step_isolation import Server, require_sandbox, spawn_server_in
from tests.kfp2_python import require_kfp2_bin

pytestmark = pytest.mark.e2e

V2 = "/apis/v2beta1"
FINISHED = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}

# Compiled by kfp 2.x at test time: `double` (lightweight, an output parameter and an artifact) feeds
# `check` (a container component that reads both); `tamper` tries to change its own environment.
PIPELINES = r'''
import sys
from typing import NamedTuple

from kfp import compiler, dsl


@dsl.component
def double(x: int, data: dsl.Output[dsl.Artifact]) -> NamedTuple(
        "Outputs", [("doubled", int), ("python", str), ("path", str)]):
    import os
    import sys
    from collections import namedtuple
    with open(data.path, "w") as f:
        f.write(str(2 * x))
    return namedtuple("Outputs", ["doubled", "python", "path"])(2 * x, sys.prefix, os.environ["PATH"])


@dsl.container_component
def check(n: int, data: dsl.Input[dsl.Artifact]):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'test "$0" = 6 && test "$(cat "$1")" = 6'],
                             args=[n, data.path])


@dsl.pipeline(name="ir-multi-user")
def ir_multi_user(x: int = 3):
    made = double(x=x)
    check(n=made.outputs["doubled"], data=made.outputs["data"])


@dsl.component
def tamper() -> str:
    import glob
    import os
    import sys
    written = []
    targets = [os.path.join(sys.prefix, "pyvenv.cfg"), *glob.glob(os.path.join(sys.prefix, "lib", "python*",
                                                                               "site-packages", "kfp", "__init__.py"))]
    for target in targets:
        try:
            with open(target, "a") as f:
                f.write("\nprint('poisoned')\n")
            written.append(target)
        except OSError as exc:
            print("could not write", target, exc)
    for directory in glob.glob(os.path.join(sys.prefix, "lib", "python*", "site-packages")):
        try:
            with open(os.path.join(directory, "poison.pth"), "w") as f:
                f.write("import os\n")
            written.append(directory)
        except OSError as exc:
            print("could not add to", directory, exc)
    if written:
        return "wrote " + ", ".join(written)
    raise SystemExit("the environment is read-only")


@dsl.pipeline(name="ir-multi-user-tamper")
def ir_tamper():
    tamper()


compiler.Compiler().compile(ir_multi_user, sys.argv[1] + "/pipeline.yaml")
compiler.Compiler().compile(ir_tamper, sys.argv[1] + "/tamper.yaml")
'''


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    kfp2 = require_kfp2_bin()
    out = tmp_path_factory.mktemp("ir-multi-user")
    script = out / "pipelines.py"
    script.write_text(PIPELINES)
    subprocess.run([str(kfp2 / "python3"), str(script), str(out)], check=True, capture_output=True, timeout=120,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return {name: yaml.safe_load((out / f"{name}.yaml").read_text()) for name in ("pipeline", "tamper")}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    require_sandbox()
    workdir = Path(tempfile.mkdtemp(prefix="kfp-e2e-ir-multi-", dir="/var/tmp"))
    os.chmod(workdir, 0o755)
    try:
        # Nothing about Python environments: the defaults must work in the sandbox.
        process, url, log_path = spawn_server_in(workdir, {"KFP_BACKEND_AUTH": "required"})
        try:
            wait_until_healthy(process, url, log_path)
            os.chmod(workdir / "data", 0o755)
            yield Server(url, process.pid, workdir, workdir / "data", log_path)
            assert process.poll() is None, "the server died"
        finally:
            stop_server(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Tenant:
    """A tenant's REST session on the v2beta1 API, with its bearer token and an experiment of its own."""

    def __init__(self, server: Server, user: str, namespace: str) -> None:
        self.url = server.url + V2
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.token(user, namespace)}"
        self.experiment_id = self.post("/experiments", {"display_name": namespace, "namespace": namespace})[
            "experiment_id"]

    def post(self, path: str, body: dict) -> dict:
        response = self.session.post(self.url + path, json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str) -> dict:
        response = self.session.get(self.url + path, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def run(self, name: str, spec: dict, parameters: dict | None = None) -> str:
        return self.post("/runs", {"display_name": name, "experiment_id": self.experiment_id,
                                   "pipeline_spec": spec, "runtime_config": {"parameters": parameters or {}}})["run_id"]

    def output_parameters(self, run_id: str, task: str) -> dict[str, str]:
        """A task's output parameters, from the run's v1beta1 view (its workflow nodes)."""
        runtime = self.session.get(f"{self.url.replace(V2, '/apis/v1beta1')}/runs/{run_id}", timeout=30).json()
        nodes = json.loads(runtime["pipeline_runtime"]["workflow_manifest"])["status"]["nodes"].values()
        (node,) = [node for node in nodes if node.get("displayName") == task and node.get("type") == "Pod"]
        return {p["name"]: p["value"] for p in node.get("outputs", {}).get("parameters", [])}

    def wait(self, run_id: str, timeout: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/runs/{run_id}")
            if run.get("state") in FINISHED:
                return run
            assert time.monotonic() < deadline, f"run {run_id} not finished: {json.dumps(run)[:2000]}"
            time.sleep(0.3)


def diagnosis(server: Server, run: dict) -> str:
    """Why a run ended as it did: its error, its tasks, its steps' logs and the end of the server's log."""
    parts = [json.dumps({"state": run.get("state"), "error": run.get("error"),
                         "tasks": {name: (t.get("state"), t.get("error")) for name, t in tasks_by_name(run).items()}},
                        indent=1)]
    for log in sorted((server.data_dir / "runs" / run["run_id"]).glob("*/log")):
        parts.append(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}")
    parts.append("--- server log\n" + server.log_path.read_text(errors="replace")[-3000:])
    return "\n".join(parts)


def tasks_by_name(run: dict) -> dict[str, dict]:
    return {task["display_name"]: task for task in run.get("run_details", {}).get("task_details", [])}


def tree_digest(root: Path) -> dict[str, str]:
    """Every file of `root` (links by their target), by its path: what the environment holds."""
    digest: dict[str, str] = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            key = str(path.relative_to(root))
            digest[key] = ("-> " + os.readlink(path)) if path.is_symlink() else hashlib.sha256(
                path.read_bytes()).hexdigest()
    return digest


def step_environments(server: Server) -> list[Path]:
    envs = server.data_dir / "step-envs"
    return sorted(path for path in envs.iterdir() if path.is_dir()) if envs.is_dir() else []


def test_a_tenants_lightweight_and_container_components_run_in_the_sandbox(
    server: Server, compiled: dict[str, dict], unique: str
) -> None:
    tenant = Tenant(server, "alice", f"{unique}-a")
    run_id = tenant.run(f"{unique}-ir", compiled["pipeline"], {"x": 3})
    run = tenant.wait(run_id)
    tasks = tasks_by_name(run)
    assert run["state"] == "SUCCEEDED", diagnosis(server, run)
    assert tasks["double"]["state"] == "SUCCEEDED" and tasks["check"]["state"] == "SUCCEEDED", tasks
    (environment,) = step_environments(server)
    outputs = tenant.output_parameters(run_id, "double")
    assert outputs["doubled"] == "6"
    # The step ran with the server's prepared environment (under the hidden data dir), made from a Python
    # the step user can run: the server's own is under /root.
    assert outputs["python"] == str(environment)
    # Its PATH: the environment's bin dir, then the standard one (nothing of the server's).
    assert outputs["path"] == f"{environment}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ready = json.loads((environment / "kfp-backend-env.json").read_text())
    assert not ready["python"].startswith("/root/"), ready
    # Built by the step user in the sandbox, then the server's: no step user owns a file of it.
    owners = {os.lstat(os.path.join(directory, name)).st_uid
              for directory, dirnames, files in os.walk(environment) for name in (*dirnames, *files)}
    assert owners == {os.geteuid()}
    log = server.log_path.read_text(errors="replace")
    assert "cannot run in the sandbox" not in log


def test_a_step_cannot_change_its_environment(server: Server, compiled: dict[str, dict], unique: str) -> None:
    tenant = Tenant(server, "bob", f"{unique}-b")
    first = tenant.wait(tenant.run(f"{unique}-ok", compiled["pipeline"], {"x": 3}))
    assert first["state"] == "SUCCEEDED", diagnosis(server, first)
    (environment,) = step_environments(server)
    before = tree_digest(environment)
    run = tenant.wait(tenant.run(f"{unique}-tamper", compiled["tamper"]))
    assert run["state"] == "FAILED", diagnosis(server, run)
    assert tasks_by_name(run)["tamper"]["state"] == "FAILED"
    (log,) = (server.data_dir / "runs" / run["run_id"]).glob("*/log")
    said = log.read_text(errors="replace")
    assert "the environment is read-only" in said and "Read-only file system" in said, said
    assert step_environments(server) == [environment]
    assert tree_digest(environment) == before
    # The lock files beside the environments are the server's alone: a step could not even open them.
    for lock in environment.parent.glob("*.lock"):
        assert lock.stat().st_mode & 0o077 == 0, lock
    # And the environment still serves the next run.
    again = tenant.wait(tenant.run(f"{unique}-again", compiled["pipeline"], {"x": 3}))
    assert again["state"] == "SUCCEEDED"
