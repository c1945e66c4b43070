"""The compiled `kfp-step` wrapper on its own: exit status record, setup failures, PATH lookup, SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kfp_backend.executor import helper, sandbox


@pytest.fixture(scope="module")
def kfp_step() -> str:
    binary = helper.step_helper()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true" and shutil.which("cc"):
            pytest.fail("kfp-step must be built under CI=true when a C compiler is installed")
        pytest.skip("no C compiler: steps use the shell wrapper")
    return binary


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd, check=False)


def test_records_the_exit_status_and_sends_the_step_output_to_stderr(kfp_step: str, tmp_path: Path) -> None:
    done = run([kfp_step, "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (7, "7\n", "to-stdout\nto-stderr\n")


def test_enters_and_creates_the_working_directory(kfp_step: str, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    done = run([kfp_step, "-C", str(target), "--", "pwd"], tmp_path)
    assert (done.returncode, done.stdout, done.stderr.strip()) == (0, "0\n", str(target))


def test_a_missing_command_is_127_and_a_setup_failure_125(kfp_step: str, tmp_path: Path) -> None:
    done = run([kfp_step, "--", "no-such-command-kfp"], tmp_path)
    assert (done.returncode, done.stdout) == (127, "127\n")
    assert "no-such-command-kfp: not found" in done.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run([kfp_step, "-C", str(blocker / "below"), "--", "true"], tmp_path)
    assert (done.returncode, done.stdout) == (sandbox.SETUP_FAILED_EXIT_CODE, "125\n")
    assert "kfp-backend: cannot enter" in done.stderr
    for bad in (["-x", "--", "true"], ["-C"], []):
        assert run([kfp_step, *bad], tmp_path).returncode == sandbox.SETUP_FAILED_EXIT_CODE


def test_a_step_killed_by_a_signal_is_128_plus_the_signal(kfp_step: str, tmp_path: Path) -> None:
    done = run([kfp_step, "--", "sh", "-c", "kill -KILL $$"], tmp_path)
    assert (done.returncode, done.stdout) == (128 + signal.SIGKILL, f"{128 + signal.SIGKILL}\n")


def test_sigterm_reaches_the_step_and_the_wrapper_records_it(kfp_step: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = f"trap 'echo got-term; exit 9' TERM; touch {ready}; while :; do sleep 0.05; done"
    proc = subprocess.Popen([kfp_step, "--", "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    end = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < end:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole group, as terminate does
    stdout, stderr = proc.communicate(timeout=10)
    assert (proc.returncode, stdout) == (9, "9\n")
    assert "got-term" in stderr


def test_private_mount_namespace(kfp_step: str, tmp_path: Path) -> None:
    if sandbox.namespace_unavailable_reason() is not None:
        pytest.skip("no mount namespaces here")
    assert helper.namespace_works(kfp_step)
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    (source / "inside").write_text("private")
    done = run([kfp_step, "-m", "-b", str(source), str(target), "--", "cat", str(target / "inside")], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "0\n", "private")
    assert not (target / "inside").exists()  # the bind never showed on the host
    done = run([kfp_step, "-m", "-b", str(tmp_path / "missing"), str(target), "--", "true"], tmp_path)
    assert done.returncode == sandbox.SETUP_FAILED_EXIT_CODE
    assert "could not set up the step's private paths" in done.stderr
