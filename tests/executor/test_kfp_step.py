"""The compiled `kfp-step` wrapper on its own: exit status record, setup failures, PATH lookup, SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kfp_backend.executor import sandbox
from kfp_backend.executor.kfp_step import namespace_works, step_helper


@pytest.fixture(scope="module")
def kfp_step() -> str:
    binary = step_helper()
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
    for bad in (["-z", "--", "true"], ["-C"], []):
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
    assert namespace_works(kfp_step)
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


STATUS = "grep -E '^(NoNewPrivs|CapEff|SigIgn):' /proc/self/status; id -u; id -G"


def _status(text: str) -> dict[str, str]:
    lines = text.split("\n")
    fields = dict(line.split(":", 1) for line in lines[:3])
    return {**{k: v.strip() for k, v in fields.items()}, "uid": lines[3], "groups": lines[4]}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can change its user")
def test_drops_to_a_user_and_execs_in_place(kfp_step: str, tmp_path: Path) -> None:
    """-g -u -x (inside the sandbox): the user and group, no supplementary groups, no capabilities,
    no_new_privs, SIGTERM back to the default when it came ignored; exec'd in place: no exit record."""
    done = subprocess.run([kfp_step, "-g", "65534", "-u", "65534", "-x", "--", "sh", "-c", STATUS], capture_output=True,
                          text=True, timeout=30, cwd=tmp_path, check=False,
                          preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    assert done.returncode == 0, done.stderr
    status = _status(done.stdout)
    assert (status["uid"], status["groups"], status["NoNewPrivs"]) == ("65534", "65534", "1")
    assert int(status["CapEff"], 16) == 0
    assert int(status["SigIgn"], 16) & (1 << (signal.SIGTERM - 1)) == 0
    missing = subprocess.run([kfp_step, "-u", "65534", "-x", "--", "no-such-command-kfp"], capture_output=True,
                             text=True, timeout=30, cwd=tmp_path, check=False, env={"PATH": "/usr/bin:/bin"})
    assert (missing.returncode, missing.stdout) == (127, "")
    assert "no-such-command-kfp: not found" in missing.stderr


def test_starts_the_step_with_sigterm_ignored_when_asked(kfp_step: str, tmp_path: Path) -> None:
    """-I: the sandbox it starts must outlive the group's SIGTERM (see `bwrap`)."""
    for options, ignored in (([], False), (["-I"], True)):
        done = run([kfp_step, *options, "--", "sh", "-c", "grep '^SigIgn:' /proc/self/status"], tmp_path)
        mask = int(done.stderr.split(":")[1], 16)
        assert bool(mask & (1 << (signal.SIGTERM - 1))) == ignored
