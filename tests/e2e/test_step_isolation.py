"""Steps cannot reach the server, in multi-user mode: a live `kfp-backend serve` with authentication on,
driven by the real kfp 1.8.22 client.

Tenant B runs a step that keeps a secret in its private /tmp for a while. Meanwhile tenant A runs a probe
step that is given, as pipeline parameters, the server's pid, its data dir and database file, B's step
directory and a file of the server's user with mode 0600, and tries to read, list and signal them. The
probe returns what each attempt did; every one must have failed. A second step of A's plants a link to
the database as its output parameter: the server must not follow it. The server and B's run are
unaffected. The data dir lives outside /tmp (under /var/tmp, mode 0755) so that it is the sandbox, not
the private /tmp or the directory modes, that hides it.

The start-up refusal too: multi-user mode with a bwrap that is not there does not start (exit status 2,
naming what is missing), unless KFP_BACKEND_UNSAFE_ALLOW_UNISOLATED_STEPS=true, which logs a WARNING.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from kfp import dsl
from kfp.components import create_component_from_func

from kfp_backend.executor import bwrap
from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import REPO_ROOT, free_port, spawn_server, start_server, stop_server, wait_until_healthy

pytestmark = pytest.mark.e2e

SERVER_SECRET_ENV = "KFP_E2E_SERVER_SECRET"


def probe(db_path: str, data_dir: str, server_pid: int, other_step_dir: str, secret_file: str) -> str:
    """Try to reach the server and the other tenant; what each attempt did, as JSON."""
    import json
    import os
    import signal

    def attempt(action):  # type: ignore[no-untyped-def]
        try:
            result = action()
            return "ALLOWED: " + repr(result)[:200]
        except Exception as exc:  # every failure is what we want to see
            return "denied: " + type(exc).__name__

    def read(path, size=-1):  # type: ignore[no-untyped-def]
        with open(path, "rb") as f:
            return f.read(size)

    def write(path):  # type: ignore[no-untyped-def]
        with open(path, "w") as f:
            return f.write("x")

    attempts = {
        "read the database file": lambda: read(db_path, 16),
        "list the data dir": lambda: os.listdir(data_dir),
        "list the runs dir": lambda: os.listdir(os.path.join(data_dir, "runs")),
        "read /proc/<server>/environ": lambda: read(f"/proc/{server_pid}/environ", 200),
        "list /proc/<server>/root": lambda: os.listdir(f"/proc/{server_pid}/root"),
        "read the database through /proc/<server>/root":
            lambda: read(f"/proc/{server_pid}/root{db_path}", 16),
        "list the other tenant's step dir": lambda: os.listdir(other_step_dir),
        "read the other tenant's secret": lambda: read(f"{other_step_dir}/root/tmp/secret"),
        "read a 0600 file of the server's user": lambda: read(secret_file),
        "list a 0700 directory of the server's user": lambda: os.listdir(secret_file + ".d"),
        "signal 0 to the server": lambda: os.kill(server_pid, 0),
        "SIGTERM to the server": lambda: os.kill(server_pid, signal.SIGTERM),
        "write the host's /var/tmp": lambda: write("/var/tmp/kfp-e2e-step-was-here"),
    }
    report = {name: attempt(action) for name, action in attempts.items()}
    report["uid"] = os.getuid()
    report["gid"] = os.getgid()
    report["groups"] = os.getgroups()
    report["env"] = sorted(os.environ)
    report["pid"] = os.getpid()
    report["fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    return json.dumps(report)


def plant_link(db_path: str) -> str:
    """Its output parameter becomes a link to the database: the server must not read through it."""
    import os
    import sys

    output = sys.argv[sys.argv.index("----output-paths") + 1]
    os.makedirs(os.path.dirname(output), exist_ok=True)
    os.symlink(db_path, output)
    os._exit(0)  # before kfp's own code writes the output file
    return ""


def keep_secret(seconds: int) -> str:
    """Tenant B: a secret in its private /tmp, kept while the probe runs."""
    import time

    with open("/tmp/secret", "w") as f:
        f.write("b-secret")
    time.sleep(seconds)
    return open("/tmp/secret").read()


probe_op = create_component_from_func(probe)
plant_link_op = create_component_from_func(plant_link)
keep_secret_op = create_component_from_func(keep_secret)


@dsl.pipeline(name="e2e-isolation-probe")
def probe_pipeline(db_path: str, data_dir: str, server_pid: int, other_step_dir: str, secret_file: str):
    probe_op(db_path, data_dir, server_pid, other_step_dir, secret_file)
    plant_link_op(db_path)


@dsl.pipeline(name="e2e-isolation-other-tenant")
def other_tenant_pipeline(seconds: int = 15):
    keep_secret_op(seconds)


class Server(NamedTuple):
    url: str
    pid: int
    workdir: Path
    data_dir: Path
    log_path: Path

    def token(self, user: str, namespace: str) -> str:
        env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_BACKEND_")}
        done = subprocess.run(
            [sys.executable, "-m", "kfp_backend", "token", "create", "--user", user, "--namespace", namespace,
             "--expires", "1h", "--data-dir", str(self.data_dir)],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )
        return done.stdout.strip()


def spawn_server_in(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
    """A server on a free port with its data and log under `workdir`, not waited for; its URL and log."""
    port = free_port()
    log_path = workdir / "server.log"
    process = spawn_server(port, workdir / "data", log_path, env=env)
    return process, f"http://127.0.0.1:{port}", log_path


def require_sandbox() -> None:
    try:
        options = bwrap.options("bwrap", "", [])
        problem = bwrap.problem(options)
    except bwrap.IsolationUnavailable as exc:
        problem = str(exc)
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the bwrap sandbox must work under CI=true: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    require_sandbox()
    # Outside /tmp and readable by all: only the sandbox keeps the steps out of it.
    workdir = Path(tempfile.mkdtemp(prefix="kfp-e2e-isolation-", dir="/var/tmp"))
    os.chmod(workdir, 0o755)
    try:
        process, url, log_path = spawn_server_in(workdir, {"KFP_BACKEND_AUTH": "required",
                                                            SERVER_SECRET_ENV: "server-only"})
        try:
            wait_until_healthy(process, url, log_path)
            os.chmod(workdir / "data", 0o755)
            yield Server(url, process.pid, workdir, workdir / "data", log_path)
            assert process.poll() is None, "the server died"
        finally:
            stop_server(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def client_for(server: Server, user: str, namespace: str) -> Any:
    import kfp

    return kfp.Client(host=server.url, existing_token=server.token(user, namespace), namespace=namespace)


def run_func(client: Any, pipeline: Any, arguments: dict, name: str) -> str:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)  # ContainerOp.image, in kfp
        warnings.filterwarnings("ignore", category=FutureWarning)
        return client.create_run_from_pipeline_func(pipeline, arguments=arguments, run_name=name,
                                                    experiment_name=name).run_id


def pod_of(client: Any, run_id: str, display_name: str, timeout: float = 60.0) -> dict:
    """The node of a step once it is running (or done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = client.get_run(run_id)
        if detail.pipeline_runtime.workflow_manifest:
            for node in workflow_nodes(detail):
                if node.get("type") == "Pod" and node.get("displayName") == display_name \
                        and node.get("phase") in ("Running", "Succeeded", "Failed", "Error"):
                    return node
        time.sleep(0.2)
    raise AssertionError(f"{display_name} of run {run_id} did not start")


def read_output(client: Any, run_id: str, node: dict) -> str:
    """A step's `Output`, read through the API as the kfp client does (a base64 .tgz of one file)."""
    (artifact,) = node["outputs"]["artifacts"]
    data = client.runs.read_artifact(run_id, node["id"], artifact["name"]).data
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(data)), mode="r:gz") as archive:
        (member,) = archive.getmembers()
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read().decode()


def test_a_step_cannot_reach_the_server_nor_another_tenant(
    server: Server, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kfp

    monkeypatch.setattr(kfp.Client, "LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))  # never created
    tenant_a = client_for(server, "alice", f"{unique}-a")
    tenant_b = client_for(server, "bob", f"{unique}-b")
    other_run = run_func(tenant_b, other_tenant_pipeline, {"seconds": 15}, f"{unique}-b")
    other_node = pod_of(tenant_b, other_run, "keep-secret")
    other_step_dir = server.data_dir / "runs" / other_run / other_node["id"]
    assert other_step_dir.is_dir()
    secret_file = server.workdir / "server-secret"
    secret_file.write_text("server-secret")
    os.chmod(secret_file, 0o600)
    secret_dir = server.workdir / "server-secret.d"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "inside").write_text("server-secret")
    database = server.data_dir / "kfp-backend.db"
    assert database.is_file()
    Path("/var/tmp/kfp-e2e-step-was-here").unlink(missing_ok=True)

    probe_run = run_func(tenant_a, probe_pipeline, {
        "db_path": str(database), "data_dir": str(server.data_dir), "server_pid": server.pid,
        "other_step_dir": str(other_step_dir), "secret_file": str(secret_file),
    }, f"{unique}-a")
    detail = wait_for_run(tenant_a, probe_run)
    nodes = {node.get("displayName"): node for node in workflow_nodes(detail) if node.get("type") == "Pod"}
    probe_node = nodes["probe"]
    assert probe_node["phase"] == "Succeeded", probe_node
    report = json.loads(read_output(tenant_a, probe_run, probe_node))

    attempts = {name: outcome for name, outcome in report.items() if isinstance(outcome, str)}
    assert len(attempts) == 13
    allowed = {name: outcome for name, outcome in attempts.items() if not outcome.startswith("denied: ")}
    assert not allowed, allowed
    step_user = pwd.getpwnam(bwrap.resolve_user("").name)
    assert (report["uid"], report["gid"], report["groups"]) == (step_user.pw_uid, step_user.pw_gid, [])
    assert report["uid"] != os.geteuid()
    # Closed by the uid, not by a hidden path: the step can reach them, not open them.
    assert "PermissionError" in attempts["read a 0600 file of the server's user"]
    assert "PermissionError" in attempts["list a 0700 directory of the server's user"]
    assert report["pid"] < 100  # its own PID namespace
    # No descriptor of the server's: stdin, stdout, stderr (and the one listdir had open).
    assert report["fds"][:3] == [0, 1, 2] and len(report["fds"]) <= 4, report["fds"]
    # The environment is built from scratch: nothing of the server's.
    assert SERVER_SECRET_ENV not in report["env"]
    assert not [name for name in report["env"] if name.startswith("KFP_BACKEND_")]
    assert set(report["env"]) <= {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "PWD", "SHLVL", "_"}, report["env"]

    # The link planted as an output was not followed: no output, and none of the database's bytes anywhere.
    link_node = nodes["plant-link"]
    assert link_node["phase"] == "Error", link_node
    assert "SQLite" not in detail.pipeline_runtime.workflow_manifest
    assert not Path("/var/tmp/kfp-e2e-step-was-here").exists()

    # The server and the other tenant's run are unaffected.
    other = wait_for_run(tenant_b, other_run)
    assert other.run.status == "Succeeded", other.run.error
    (keep,) = [node for node in workflow_nodes(other) if node.get("displayName") == "keep-secret"]
    assert read_output(tenant_b, other_run, keep) == "b-secret"
    assert tenant_a.get_run(probe_run).run.id == probe_run


# --- the start-up refusal ---------------------------------------------------------------------------


def test_multi_user_mode_refuses_to_start_without_the_sandbox(tmp_path: Path) -> None:
    process, _, log_path = spawn_server_in(tmp_path, {"KFP_BACKEND_AUTH": "required",
                                                      "KFP_BACKEND_BWRAP": "/nonexistent/bwrap"})
    try:
        assert process.wait(timeout=60) == 2
    finally:
        stop_server(process)
    output = log_path.read_text()
    assert "cannot start: multi-user mode needs the step sandbox" in output, output
    assert "bubblewrap is not installed: no '/nonexistent/bwrap' program" in output
    assert "KFP_BACKEND_UNSAFE_ALLOW_UNISOLATED_STEPS=true" in output


def test_multi_user_mode_refuses_an_unisolating_mode(tmp_path: Path) -> None:
    process, _, log_path = spawn_server_in(tmp_path, {"KFP_BACKEND_AUTH": "required",
                                                      "KFP_BACKEND_STEP_ISOLATION": "namespace"})
    try:
        assert process.wait(timeout=60) == 2
    finally:
        stop_server(process)
    assert "KFP_BACKEND_STEP_ISOLATION=namespace does not keep" in log_path.read_text()


def test_the_explicit_opt_out_starts_and_warns(tmp_path: Path) -> None:
    process, url, log_path = spawn_server_in(tmp_path, {
        "KFP_BACKEND_AUTH": "required", "KFP_BACKEND_BWRAP": "/nonexistent/bwrap",
        "KFP_BACKEND_UNSAFE_ALLOW_UNISOLATED_STEPS": "true"})
    try:
        wait_until_healthy(process, url, log_path)
    finally:
        stop_server(process)
    assert process.returncode in (0, -signal.SIGTERM)
    warning = [line for line in log_path.read_text().splitlines() if "UNSAFE" in line]
    assert warning and "WARNING" in warning[0] and "bubblewrap is not installed" in warning[0], warning


# --- a restart: sandboxed steps are adopted, not started again ------------------------------------------


@dsl.pipeline(name="e2e-isolation-restart")
def restart_pipeline():
    slow = dsl.ContainerOp(
        name="slow", image="alpine",
        command=["sh", "-c", "mkdir -p /tmp/outputs && date +%s.%N > /tmp/outputs/started; sleep 5"],
        file_outputs={"started": "/tmp/outputs/started"},
    )
    dsl.ContainerOp(name="after", image="alpine", command=["sh", "-c", "echo $0", slow.outputs["started"]])


def test_a_sandboxed_step_is_adopted_after_a_kill_9_of_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step started before the kill is the one that finishes (its own start time is its output), and the
    run succeeds under the next server, in multi-user mode."""
    import kfp

    require_sandbox()
    monkeypatch.setattr(kfp.Client, "LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))
    env = {"KFP_BACKEND_AUTH": "required"}
    process, url, log_path = spawn_server_in(tmp_path, env)
    try:
        wait_until_healthy(process, url, log_path)
        server = Server(url, process.pid, tmp_path, tmp_path / "data", log_path)
        client = client_for(server, "carol", "team-restart")
        run_id = run_func(client, restart_pipeline, {}, "restart")
        pod_of(client, run_id, "slow")
        time.sleep(1.0)  # the step has written its start time
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        killed_at = time.time()
        process = start_server(int(url.rsplit(":", 1)[1]), tmp_path / "data", log_path, env=env)
        detail = wait_for_run(client, run_id, timeout=90)
        nodes = {node["displayName"]: node for node in workflow_nodes(detail) if node.get("type") == "Pod"}
        assert detail.run.status == "Succeeded", json.dumps(nodes, indent=1)
        (started,) = [p["value"] for p in nodes["slow"]["outputs"]["parameters"] if p["name"] == "slow-started"]
        assert float(started) < killed_at  # adopted: not started again by the new server
    finally:
        stop_server(process)
