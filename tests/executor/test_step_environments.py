"""Prepared Python environments for kfp 2.x steps, with real venvs and real pip.

Each environment costs a venv and a pip install (seconds), so the kfp one is made once per session
and each other test makes at most one more.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfp_backend.config import Settings
from kfp_backend.executor import bwrap, step_environments
from kfp_backend.executor.step_environments import (
    READY_FILE,
    StepEnvironmentError,
    StepEnvironments,
    prepend_to_path,
    runnable_by_others,
)
from kfp_backend.executor.step_requirements import step_requirement, without_install_script
from tests.step_commands import KFP_VERSION, executor_arguments, install_script, lightweight_command

WORKTREE = Path(__file__).resolve().parents[2]
DOUBLE = "def double(x: int) -> int:\n    print('doubling', x)\n    return 2 * x\n\n"
CREATING = "Preparing the step environment"
# pip's settings for a step that must not reach any package source: no index, no find-links, no
# configuration file that could name one. A requirement that is not satisfied already fails.
OFFLINE_PIP = {"PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_CONFIG_FILE": os.devnull,
               "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""}


def step_environment(bin_dir: Path) -> dict[str, str]:
    """The environment a step gets: PATH starting at the prepared bin dir, no package source."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    return environment | OFFLINE_PIP | {"PATH": prepend_to_path(bin_dir, os.environ.get("PATH"))}


def run_step(argv: list[str], bin_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=step_environment(bin_dir), cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="session")
def kfp_envs(tmp_path_factory: pytest.TempPathFactory) -> StepEnvironments:
    return StepEnvironments(tmp_path_factory.mktemp("step-envs"))


@pytest.fixture(scope="session")
def kfp_bin(kfp_envs: StepEnvironments) -> Path:
    """The environment of a plain lightweight component (kfp==2.17.3, no packages), made once."""
    requirement = step_requirement(lightweight_command(DOUBLE))
    assert requirement is not None
    umask = os.umask(0o077)  # a server that keeps its files to itself still makes environments all can read
    try:
        return kfp_envs.prepare(requirement)
    finally:
        os.umask(umask)


@pytest.fixture
def creations(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="kfp_backend.executor.step_environments"):
        yield caplog


def count_creations(text: str) -> int:
    return text.count(CREATING)


def test_the_environment_holds_kfp_is_readable_by_all_and_is_not_the_servers_interpreter(kfp_bin: Path) -> None:
    probe = "import importlib.metadata as m, sys; print(sys.prefix); print(m.version('kfp'))"
    done = subprocess.run([str(kfp_bin / "python3"), "-c", probe], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"})
    prefix, version = done.stdout.splitlines()
    assert (Path(prefix), version) == (kfp_bin.parent, KFP_VERSION)
    assert Path(prefix) != Path(sys.prefix)
    unreadable = [str(path) for path in kfp_bin.parent.rglob("*")
                  if not path.is_symlink() and not path.stat().st_mode & 0o004]
    assert unreadable == []
    ready = json.loads((kfp_bin.parent / READY_FILE).read_text())
    assert ready["requirement"].startswith(f"kfp=={KFP_VERSION}")


def double_step(directory: Path) -> list[str]:
    executor_input = {
        "inputs": {"parameterValues": {"x": 21}},
        "outputs": {"parameters": {"Output": {"outputFile": str(directory / "Output")}},
                    "outputFile": str(directory / "executor_output.json")},
    }
    return lightweight_command(DOUBLE) + executor_arguments("double", executor_input)


def test_a_compiled_lightweight_component_runs_offline_in_the_environment(kfp_bin: Path, tmp_path: Path) -> None:
    done = run_step(double_step(tmp_path), kfp_bin, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "doubling 21" in done.stdout + done.stderr
    assert json.loads((tmp_path / "executor_output.json").read_text())["parameterValues"] == {"Output": 42}


def test_without_its_install_script_the_step_does_the_same_without_starting_pip(
    kfp_bin: Path, tmp_path: Path
) -> None:
    timings = {}
    compiled = double_step(tmp_path)
    for name, argv in (("as compiled", compiled), ("rewritten", without_install_script(compiled))):
        (tmp_path / "executor_output.json").unlink(missing_ok=True)
        started = time.monotonic()
        done = run_step(argv, kfp_bin, tmp_path)
        timings[name] = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert json.loads((tmp_path / "executor_output.json").read_text())["parameterValues"] == {"Output": 42}
    # pip's start-up alone takes several times a bare Python's; the rewritten step starts no pip.
    assert timings["rewritten"] < timings["as compiled"], timings


def test_the_install_line_is_a_quick_no_op_without_any_package_source(kfp_bin: Path, tmp_path: Path) -> None:
    script = install_script().replace('"$0" "$@"', "true")
    started = time.monotonic()
    done = run_step(["sh", "-c", script], kfp_bin, tmp_path)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert seconds < 10, seconds  # about half a second on an idle machine; bounded loosely for loaded ones
    # The same pip, offline, does fail on what is not there: the line passed because it was satisfied.
    missing = run_step(["sh", "-c", install_script(kfp_version="2.16.0").replace('"$0" "$@"', "true")],
                       kfp_bin, tmp_path)
    assert missing.returncode != 0
    assert "kfp==2.16.0" in missing.stdout + missing.stderr


def test_a_second_request_reuses_the_environment_without_pip(
    kfp_envs: StepEnvironments, kfp_bin: Path, monkeypatch: pytest.MonkeyPatch, creations: pytest.LogCaptureFixture
) -> None:
    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran for a ready environment")

    monkeypatch.setattr(StepEnvironments, "_run", no_pip)
    argv = lightweight_command(DOUBLE) + executor_arguments("double", {})
    # Another server on the same directory (a new instance) finds it as well.
    for envs in (kfp_envs, StepEnvironments(kfp_envs.root)):
        started = time.monotonic()
        assert envs.bin_dir_for(argv) == kfp_bin
        assert time.monotonic() - started < 1.0
    assert count_creations(creations.text) == 0


def test_steps_that_install_nothing_get_no_environment(kfp_envs: StepEnvironments) -> None:
    assert kfp_envs.bin_dir_for(["sh", "-c", "echo hi"]) is None
    prepared = kfp_envs.prepare_step(["sh", "-c", "echo hi"])
    assert (prepared.argv, prepared.bin_dir, prepared.path("/usr/bin")) == (["sh", "-c", "echo hi"], None, "/usr/bin")


def test_a_prepared_step_runs_in_its_environment_without_its_install_script(
    kfp_envs: StepEnvironments, kfp_bin: Path
) -> None:
    argv = lightweight_command(DOUBLE) + executor_arguments("double", {})
    prepared = kfp_envs.prepare_step(argv)
    assert prepared.bin_dir == kfp_bin
    assert prepared.argv == without_install_script(argv) != argv
    assert prepared.path("/usr/bin:/bin") == f"{kfp_bin}:/usr/bin:/bin"
    # What the multi-user sandbox shows the step, read-only: that environment, nothing beside it.
    assert prepared.read_only_paths == [str(kfp_bin.parent)]
    assert kfp_envs.prepare_step(["sh", "-c", "echo hi"]).read_only_paths == []
    # The lock files beside the environments are the server's alone (whoever can open one can hold it).
    locks = list(kfp_envs.root.glob("*.lock"))
    assert locks and all(lock.stat().st_mode & 0o077 == 0 for lock in locks)


def test_an_unpreparable_line_is_a_clear_error(kfp_envs: StepEnvironments) -> None:
    with pytest.raises(StepEnvironmentError, match=r"cannot be prepared.*-r"):
        kfp_envs.bin_dir_for(["sh", "-c", "python3 -m pip install -r requirements.txt"])


# Run by each of the two processes below: three threads ask for one environment at once.
CALLER = """
import json, logging, sys, threading
from pathlib import Path
from kfp_backend.executor.step_environments import StepEnvironments
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
envs = StepEnvironments(Path(sys.argv[1]))
argv = json.loads(sys.argv[2])
results = []
threads = [threading.Thread(target=lambda: results.append(str(envs.bin_dir_for(argv)))) for _ in range(3)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(results))
"""


def test_concurrent_callers_in_threads_and_processes_create_a_package_set_once_over_a_crashed_build(
    tmp_path: Path, creations: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "envs"
    argv = lightweight_command(DOUBLE, packages=["six==1.16.0"])
    requirement = step_requirement(argv)
    assert requirement is not None and requirement.packages == ("six==1.16.0",)
    envs = StepEnvironments(root)
    # What a creator killed half-way leaves: the env's directory without its ready file.
    half_built = root / envs.env_name(requirement)
    (half_built / "bin").mkdir(parents=True)
    (half_built / "bin" / "python3").write_text("#!/bin/sh\nexit 1\n")

    environment = os.environ | {"PYTHONPATH": str(WORKTREE)}
    processes = [subprocess.Popen([sys.executable, "-c", CALLER, str(root), json.dumps(argv)], env=environment,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results: list[Path | None] = []
    threads = [threading.Thread(target=lambda: results.append(envs.bin_dir_for(argv))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outputs = [process.communicate(timeout=300) for process in processes]

    assert all(process.returncode == 0 for process in processes), outputs
    expected = half_built / "bin"
    assert results == [expected] * 3
    for stdout, _ in outputs:
        assert json.loads(stdout) == [str(expected)] * 3
    assert count_creations(creations.text) + sum(count_creations(stderr) for _, stderr in outputs) == 1
    # The package set is installed with kfp, and the step's pip lines are no-ops offline.
    done = run_step(["sh", "-c", install_script(packages=["six==1.16.0"]).replace('"$0" "$@"',
                                                                                   "python3 -c 'import six'")],
                    expected, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_failed_creation_says_why_and_leaves_no_environment(tmp_path: Path) -> None:
    envs = StepEnvironments(tmp_path / "envs", pip_options=["--no-index"])
    argv = lightweight_command(DOUBLE, packages=["kfp-backend-no-such-package==0.0.1"])
    requirement = step_requirement(argv)
    assert requirement is not None
    with pytest.raises(StepEnvironmentError) as failure:
        envs.bin_dir_for(argv)
    message = str(failure.value)
    assert "could not prepare the step's Python environment" in message
    assert "pip install kfp-backend-no-such-package==0.0.1 failed" in message
    assert "No matching distribution found for kfp-backend-no-such-package" in message  # pip's own words
    assert not (envs.root / envs.env_name(requirement)).exists()
    # The parallel steps that want it next fail at once with the same message, without pip.
    started = time.monotonic()
    with pytest.raises(StepEnvironmentError, match=r"(?s)No matching distribution.*not retried"):
        envs.bin_dir_for(argv)
    assert time.monotonic() - started < 1.0


def test_settings_choose_the_directory_the_pip_options_or_no_environments(tmp_path: Path) -> None:
    elsewhere = Path("/var/tmp/kfp-backend-elsewhere")  # a setting is not created until a step needs it
    settings = Settings(data_dir=elsewhere / "data")
    envs = StepEnvironments.from_settings(settings)
    assert envs is not None and envs.root == (elsewhere / "data" / "step-envs").resolve()
    envs = StepEnvironments.from_settings(settings.replace(
        step_envs_dir=str(elsewhere / "envs"), step_envs_pip_options="--index-url 'https://m.example/simple'"))
    assert envs is not None and envs.root == (elsewhere / "envs").resolve()
    assert envs.pip_options == ("--index-url", "https://m.example/simple")
    assert StepEnvironments.from_settings(settings.replace(step_envs=False)) is None
    with pytest.raises(ValueError, match="KFP_BACKEND_STEP_ENVS_PIP_OPTIONS"):
        Settings(step_envs_pip_options="--index-url 'unterminated")


def test_step_environments_stay_out_of_tmp_which_steps_see_as_their_own(tmp_path: Path) -> None:
    # Each step has a private /tmp: an environment under the host's /tmp would be hidden from it.
    with pytest.raises(ValueError, match=r"KFP_BACKEND_STEP_ENVS_DIR.*under /tmp"):
        Settings(step_envs_dir=str(tmp_path / "envs"))
    assert str(tmp_path).startswith("/tmp")
    under_tmp = Settings(data_dir=tmp_path / "data")
    assert under_tmp.effective_step_envs_dir == Path.home() / ".cache" / "kfp-backend" / "step-envs"


def test_another_base_interpreter_gets_other_environments(tmp_path: Path) -> None:
    requirement = step_requirement(lightweight_command(DOUBLE))
    assert requirement is not None
    other = "/usr/bin/python3"
    if not Path(other).exists() or Path(other).resolve() == Path(sys.executable).resolve():
        pytest.skip("no second Python here")
    ours, theirs = StepEnvironments(tmp_path), StepEnvironments(tmp_path, python=other)
    assert ours.env_name(requirement) == StepEnvironments(tmp_path / "x").env_name(requirement)
    assert ours.env_name(requirement) != theirs.env_name(requirement)
    with pytest.raises(StepEnvironmentError, match="does not run"):
        StepEnvironments(tmp_path, python=str(tmp_path / "no-python")).prepare(requirement)


def test_steps_of_another_user_get_a_base_interpreter_that_user_can_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    sandbox = bwrap.Options("bwrap", "setpriv", "env", bwrap.StepUser("nobody", 65534, 65534), ())
    envs = StepEnvironments.from_settings(settings, sandbox=sandbox)
    assert envs is not None and not envs.unusable and runnable_by_others(envs.python)
    assert envs.build_sandbox is not None and StepEnvironments.from_settings(settings).build_sandbox is None
    # The operator's choice stands (with a warning when the step user cannot run it).
    chosen = StepEnvironments.from_settings(settings.replace(step_envs_python=sys.executable),
                                            sandbox=sandbox)
    assert chosen is not None and chosen.python == sys.executable
    # A Python in a directory only its owner may enter is no base for them; without another, a clear error.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "python3").write_text("#!/bin/sh\n")
    os.chmod(private / "python3", 0o755)
    assert not runnable_by_others(str(private / "python3"))
    monkeypatch.setattr(sys, "_base_executable", str(private / "python3"), raising=False)
    monkeypatch.setattr(step_environments, "_SYSTEM_PYTHONS", (str(private / "python3"),))
    python, why = step_environments.python_for_other_users("")
    assert not python and "no Python the step user can run" in why
    envs = StepEnvironments.from_settings(settings, sandbox=sandbox)
    assert envs is not None and envs.unusable
    requirement = step_requirement(lightweight_command(DOUBLE))
    assert requirement is not None
    with pytest.raises(StepEnvironmentError, match="no Python the step user can run"):
        envs.prepare(requirement)
