"""Sandbox plans: path checks, host path mapping, the rewrite rules, mount point placeholders."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from kfp_backend.executor import sandbox


def test_host_path_mapping(tmp_path: Path) -> None:
    assert sandbox.host_path(tmp_path, "/tmp/outputs/Output/data") == tmp_path / "root/tmp/outputs/Output/data"
    assert sandbox.host_path(tmp_path, "/mlpipeline-metrics.json") == tmp_path / "root/mlpipeline-metrics.json"


@pytest.mark.parametrize(
    "bad", ["relative/path", "/", "/tmp/../etc/passwd", "/tmp//x", "//tmp/x", "/tmp/x/", "/a\x00b", ""]
)
def test_bad_in_step_paths_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(sandbox.SandboxError):
        sandbox.host_path(tmp_path, bad)


def test_rewriter_replaces_whole_components_only() -> None:
    rewrite = sandbox.PathRewriter(Path("/w/root"), ["/tmp/outputs/Output/data", "/tmp/inputs/x/data", "/out.txt"])
    assert rewrite("/tmp/outputs/Output/data") == "/w/root/tmp/outputs/Output/data"
    assert rewrite("--out=/tmp/outputs/Output/data,") == "--out=/w/root/tmp/outputs/Output/data,"
    assert rewrite("mkdir -p /tmp/outputs/Output && cat /tmp/inputs/x/data > /out.txt") == (
        "mkdir -p /w/root/tmp/outputs/Output && cat /w/root/tmp/inputs/x/data > /w/root/out.txt"
    )
    # Below a declared /tmp directory: rewritten (it is the step's own directory).
    assert rewrite("/tmp/outputs/Other/data") == "/w/root/tmp/outputs/Other/data"
    # Not declared, or not a whole component: left alone.
    for text in ("/tmp/outputsx", "/tmp/other", "/out.txt2", "/x/out.txt", "/tmp", "/out.txt.bak", "a/tmp/inputs/x"):
        assert rewrite(text) == text
    # Outside /tmp only the declared path itself counts.
    assert sandbox.PathRewriter(Path("/w/root"), ["/data/out/a.txt"])("/data/out/b.txt") == "/data/out/b.txt"
    assert sandbox.PathRewriter(Path("/w/root"), [])("/tmp/outputs/x") == "/tmp/outputs/x"


def test_rewrite_plan(tmp_path: Path) -> None:
    plan = sandbox.plan_rewrite(
        tmp_path, ["/tmp/outputs/o/data", "/data/in.txt"], ["prog", "/tmp/outputs/o/data"], {"V": "/data/in.txt"}, None
    )
    root = tmp_path / "root"
    assert plan.argv[-2:] == ["prog", f"{root}/tmp/outputs/o/data"]
    assert plan.env["V"] == f"{root}/data/in.txt"
    assert plan.env["TMPDIR"] == str(root / "tmp")
    assert plan.cwd == plan.env["HOME"] == str(root / "tmp")
    assert (root / "tmp/outputs/o").is_dir() and (root / "data").is_dir()
    assert plan.placeholders == []


def test_outermost_drops_nested_paths() -> None:
    assert sandbox._outermost(["/a/b/c", "/a", "/ab", "/a/b"]) == ["/a", "/ab"]


def test_namespace_plan_creates_mount_points_and_placeholders(tmp_path: Path) -> None:
    top = f"/kfp-test-{uuid.uuid4().hex[:10]}"
    try:
        existing_input = sandbox.host_path(tmp_path, f"{top}/input-dir")
        existing_input.mkdir(parents=True)
        plan = sandbox.plan_namespace(
            tmp_path,
            ["/tmp/outputs/o/data", f"{top}/out/metrics.json", f"{top}/input-dir", f"{top}/input-dir/nested"],
            ["prog"],
            {},
            None,
            "/usr/bin/unshare",
            "/usr/bin/mount",
        )
        # Mount points on the real filesystem: an empty file for the output, a directory for the input.
        assert Path(f"{top}/out/metrics.json").is_file() and Path(f"{top}/out/metrics.json").stat().st_size == 0
        assert Path(f"{top}/input-dir").is_dir()
        # The output's host file is a placeholder with mtime 0; the engine's input is left alone.
        placeholder = sandbox.host_path(tmp_path, f"{top}/out/metrics.json")
        assert plan.placeholders == [str(placeholder)]
        assert placeholder.stat().st_mtime_ns == 0
        script = plan.argv[plan.argv.index("-c") + 1]
        # Paths outside /tmp are bound before /tmp (their sources may live under the host's /tmp);
        # nested declared paths are covered by their parent's mount.
        assert script.index(f"{top}/out/metrics.json") < script.index(f"{tmp_path}/root/tmp /tmp")
        assert f"{top}/input-dir/nested" not in script
        assert plan.argv[:4] == ["/usr/bin/unshare", "--mount", "--propagation", "private"]
        assert plan.argv[-2:] == ["kfp-step", "prog"]
        assert (tmp_path / "root/tmp/outputs/o").is_dir()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_namespace_plan_refuses_a_file_over_a_directory(tmp_path: Path) -> None:
    top = Path(f"/kfp-test-{uuid.uuid4().hex[:10]}")
    try:
        (top / "thing").mkdir(parents=True)
        sandbox.host_path(tmp_path, f"{top}/thing").parent.mkdir(parents=True)
        sandbox.host_path(tmp_path, f"{top}/thing").write_text("a file in the step")
        with pytest.raises(sandbox.SandboxError):
            sandbox.plan_namespace(tmp_path, [f"{top}/thing"], ["prog"], {}, None, "unshare", "mount")
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_namespace_probe() -> None:
    reason = sandbox.namespace_unavailable_reason()
    if os.environ.get("CI", "").lower() == "true":
        assert reason is None
    if reason is None:
        # A bind mount inside a private namespace never shows on the host.
        assert "kfp-ns-probe" not in Path("/proc/self/mountinfo").read_text()
        assert subprocess.run(["unshare", "--mount", "true"], check=False).returncode == 0
