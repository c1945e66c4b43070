"""LocalProcessLauncher with real processes: private paths, exit codes, deadlines, terminate, adopt."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfp_backend.executor import bwrap, kfp_step, pyspawner, sandbox, step_wrappers
from kfp_backend.executor.launch_records import LaunchRecord, read_exit_code, read_launch_record
from kfp_backend.executor.launcher import DEADLINE_MESSAGE, VANISHED_MESSAGE, StepHandle, StepResult, StepSpec
from kfp_backend.executor.process_launcher import LocalProcessLauncher
from kfp_backend.executor.spawner import Spawner
from kfp_backend.executor.step_wrappers import KFP_STEP, PYTHON, WRAPPERS

REPO = Path(__file__).resolve().parents[2]
OUT = "/tmp/outputs/Output/data"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_namespaces() -> None:
    reason = sandbox.namespace_unavailable_reason()
    if reason is not None:
        if in_ci():
            pytest.fail(f"private mount namespaces must work under CI=true: {reason}")
        pytest.skip(reason)


ISOLATIONS = (sandbox.NAMESPACE, sandbox.REWRITE, sandbox.BWRAP)


def sandbox_options() -> bwrap.Options:
    """The multi-user sandbox's options (the default step user); skipped when it cannot be had here, failed
    under CI=true (CI installs bubblewrap and runs as root)."""
    try:
        options = bwrap.options("bwrap", "", [])
        problem = bwrap.problem(options)
        if problem is not None:
            raise bwrap.IsolationUnavailable(problem)
    except bwrap.IsolationUnavailable as exc:
        if in_ci():
            pytest.fail(f"the bwrap sandbox must work under CI=true: {exc}")
        pytest.skip(str(exc))
    return options


@pytest.fixture(
    params=[(isolation, wrapper) for isolation in ISOLATIONS for wrapper in WRAPPERS],
    ids=[f"{isolation}-{wrapper}" for isolation in ISOLATIONS for wrapper in WRAPPERS],
)
def launcher(request: pytest.FixtureRequest) -> LocalProcessLauncher:
    """Every isolation mode with every wrapper: the compiled `kfp-step`, its Python twin, the shell one."""
    isolation, wrapper = request.param
    if isolation == sandbox.NAMESPACE:
        require_namespaces()
    options = sandbox_options() if isolation == sandbox.BWRAP else None
    try:
        launcher = LocalProcessLauncher(isolation, kill_grace_seconds=1.0, wrapper=wrapper, sandbox_options=options)
    except RuntimeError as exc:
        if wrapper == KFP_STEP and in_ci() and shutil.which("cc"):
            pytest.fail("kfp-step must be built under CI=true when a C compiler is installed")
        if wrapper == PYTHON and in_ci():
            pytest.fail(f"the python wrapper must work under CI=true: {exc}")
        pytest.skip(str(exc))
    assert launcher.wrapper == wrapper
    return launcher


@pytest.fixture
def ns_launcher() -> LocalProcessLauncher:
    require_namespaces()
    return LocalProcessLauncher(sandbox.NAMESPACE, kill_grace_seconds=1.0)


@pytest.fixture
def outside_path() -> Iterator[str]:
    """A declared path outside /tmp; removes the placeholder the namespace mode leaves on the host."""
    path = f"/mlpipeline-metrics-{uuid.uuid4().hex[:10]}.json"
    yield path
    Path(path).unlink(missing_ok=True)


def spec_for(work_dir: Path, argv: list[str], **kwargs: object) -> StepSpec:
    values: dict[str, object] = {"env": {}, "private_paths": [OUT], "deadline_seconds": None}
    values.update(kwargs)
    return StepSpec(key=f"test/{work_dir.name}", argv=argv, work_dir=work_dir, **values)  # type: ignore[arg-type]


class Recorder:
    """Collects on_exit calls and the threads they came from."""

    def __init__(self) -> None:
        self.results: list[StepResult] = []
        self.threads: list[str] = []
        self.event = threading.Event()

    def __call__(self, result: StepResult) -> None:
        self.results.append(result)
        self.threads.append(threading.current_thread().name)
        self.event.set()

    def wait(self, timeout: float = 15.0) -> StepResult:
        assert self.event.wait(timeout), "on_exit was not called in time"
        time.sleep(0.05)  # a second (wrong) call would show up here
        assert len(self.results) == 1, self.results
        return self.results[0]


def run(launcher: LocalProcessLauncher, spec: StepSpec, timeout: float = 15.0) -> StepResult:
    recorder = Recorder()
    launcher.start(spec, recorder)
    return recorder.wait(timeout)


def process_gone(pid: int) -> bool:
    """No such process, or only a zombie (this machine's pid 1 may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def rewrite_launch_record(work_dir: Path, record: LaunchRecord) -> None:
    """Tamper with a step's launch record where it lies: its own file (shell wrapper) or the first line of
    the status file (kfp-step)."""
    line = f"{record.pid} {record.start_ticks} {record.boot_id} {record.started_at!r}"
    if (work_dir / "pid").exists():
        (work_dir / "pid").write_text(line + "\n")
    else:
        rest = (work_dir / "exit_code").read_text().split("\n", 1)[1]
        (work_dir / "exit_code").write_text(line + "\n" + rest)


def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.01)
    raise AssertionError(f"{path} did not appear")


# --- exit codes, logs, environment ----------------------------------------------------------------


def test_success_and_nonzero_exit(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    ok = run(launcher, spec_for(tmp_path / "ok", ["true"]))
    assert ok == StepResult(exit_code=0, deadline_exceeded=False, terminated=False, message="")
    assert ok.succeeded
    failed = run(launcher, spec_for(tmp_path / "bad", ["sh", "-c", "exit 3"]))
    assert (failed.exit_code, failed.message) == (3, "Error (exit code 3)")
    assert not failed.deadline_exceeded and not failed.terminated and not failed.vanished
    assert read_exit_code(tmp_path / "bad") == 3


def test_missing_command_is_exit_127(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    result = run(launcher, spec_for(tmp_path / "w", ["no-such-command-kfp"]))
    assert (result.exit_code, result.message) == (127, "Error (exit code 127)")
    log = (tmp_path / "w" / "log").read_text()
    assert "not found" in log or "No such file or directory" in log  # the latter from env, in the sandbox


def test_log_has_stdout_and_stderr_interleaved(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    spec = spec_for(tmp_path / "w", ["sh", "-c", "echo one; echo two >&2; echo three"])
    assert run(launcher, spec).exit_code == 0
    assert launcher.log_path(spec).read_text() == "one\ntwo\nthree\n"


def test_env_home_and_working_dir(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    script = 'printf "%s|%s|%s|%s|%s|%s" "$HOME" "$LANG" "$PYTHONUNBUFFERED" "$MY_VAR" "$(pwd)" "${SECRET:-unset}"'
    os.environ["SECRET"] = "server-only"
    try:
        spec = spec_for(tmp_path / "w", ["sh", "-c", script + f" > {OUT}"], env={"MY_VAR": "v 1"})
        assert run(launcher, spec).exit_code == 0
    finally:
        del os.environ["SECRET"]
    home, lang, unbuffered, my_var, cwd, secret = launcher.host_path(spec, OUT).read_text().split("|")
    expected_home = sandbox.HOME_IN_STEP
    if launcher.isolation == sandbox.REWRITE:
        expected_home = str(launcher.host_path(spec, sandbox.HOME_IN_STEP))
    assert (home, cwd) == (expected_home, expected_home)
    assert (lang, unbuffered, my_var, secret) == ("C.UTF-8", "1", "v 1", "unset")

    spec = spec_for(tmp_path / "w2", ["sh", "-c", f"pwd > {OUT}"], working_dir="/tmp/app/src")
    assert run(launcher, spec).exit_code == 0
    cwd = launcher.host_path(spec, OUT).read_text().strip()
    if launcher.isolation in (sandbox.NAMESPACE, sandbox.BWRAP):
        assert cwd == "/tmp/app/src"
    else:
        assert cwd == str(launcher.host_path(spec, "/tmp/app/src"))


def test_on_exit_called_once_from_a_launcher_thread(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    recorder = Recorder()
    handle = launcher.start(spec_for(tmp_path / "w", ["true"]), recorder)
    result = recorder.wait()
    assert recorder.threads[0] != threading.current_thread().name
    assert recorder.threads[0] == "step:reaper"
    assert handle.wait(1) == result and handle.done() and not launcher.is_alive(handle)
    assert isinstance(handle, StepHandle) and handle.pid > 0 and handle.work_dir == tmp_path / "w"


# --- private paths --------------------------------------------------------------------------------

# Writes $1 to the path $2 (an argv item, as kfp python components receive their paths), then checks,
# after the other step has written too, that the file still holds its own value.
WRITE_AND_CHECK = 'mkdir -p "$(dirname "$2")" && printf %s "$1" > "$2" && sleep 0.6 && test "$(cat "$2")" = "$1"'


def test_concurrent_steps_have_their_own_output_files(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    specs = {
        value: spec_for(tmp_path / value, ["sh", "-c", WRITE_AND_CHECK, "sh", value, OUT])
        for value in (f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}")
    }
    recorders = {value: Recorder() for value in specs}
    for value, spec in specs.items():
        launcher.start(spec, recorders[value])
    for value, spec in specs.items():
        result = recorders[value].wait()
        assert result.exit_code == 0, launcher.log_path(spec).read_text()
        assert launcher.host_path(spec, OUT).read_text() == value
    assert not Path(OUT).exists() or Path(OUT).read_text() not in specs  # nothing landed on the host /tmp


def test_rewrite_mode_rewrites_declared_paths_in_argv_and_env(tmp_path: Path) -> None:
    launcher = LocalProcessLauncher(sandbox.REWRITE)
    assert launcher.isolation == sandbox.REWRITE
    spec = spec_for(
        tmp_path / "w",
        ["sh", "-c", f'echo "$OUT_DIR" > {OUT}; echo /tmp/outputsx /x{OUT} >> {OUT}', "sh"],
        env={"OUT_DIR": "/tmp/outputs/Output"},
    )
    assert run(launcher, spec).exit_code == 0
    out_dir, untouched = launcher.host_path(spec, OUT).read_text().splitlines()
    assert out_dir == str(launcher.host_path(spec, "/tmp/outputs/Output"))
    assert untouched == f"/tmp/outputsx /x{OUT}"  # not declared paths: left alone


def test_namespace_path_outside_tmp_is_private(
    ns_launcher: LocalProcessLauncher, tmp_path: Path, outside_path: str
) -> None:
    script = f'printf %s "$1" > {outside_path} && sleep 0.6 && test "$(cat {outside_path})" = "$1"'
    specs = {
        value: spec_for(tmp_path / value, ["sh", "-c", script, "sh", value], private_paths=[OUT, outside_path])
        for value in ("metrics-a", "metrics-b")
    }
    recorders = {value: Recorder() for value in specs}
    for value, spec in specs.items():
        ns_launcher.start(spec, recorders[value])
    for value, spec in specs.items():
        assert recorders[value].wait().exit_code == 0, ns_launcher.log_path(spec).read_text()
        assert ns_launcher.host_path(spec, outside_path).read_text() == value
    # The mount point placeholder on the real filesystem stays empty.
    assert Path(outside_path).read_text() == ""


def test_namespace_unwritten_output_outside_tmp_stays_missing(
    ns_launcher: LocalProcessLauncher, tmp_path: Path
) -> None:
    top = f"/kfp-test-{uuid.uuid4().hex[:10]}"
    unwritten, empty, written = f"{top}/a/unwritten.txt", f"{top}/b/empty.txt", f"{top}/c/written.txt"
    try:
        spec = spec_for(
            tmp_path / "w",
            ["sh", "-c", f": > {empty} && echo hello > {written} && test -d {top}/a"],
            private_paths=[unwritten, empty, written],
        )
        result = run(ns_launcher, spec)
        assert result.exit_code == 0, ns_launcher.log_path(spec).read_text()
        assert not ns_launcher.host_path(spec, unwritten).exists()
        assert ns_launcher.host_path(spec, empty).read_text() == ""
        assert ns_launcher.host_path(spec, written).read_text() == "hello\n"
    finally:
        subprocess.run(["rm", "-rf", top], check=True)


def test_namespace_input_directory_outside_tmp(ns_launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    top = f"/kfp-test-{uuid.uuid4().hex[:10]}"
    spec = spec_for(tmp_path / "w", ["sh", "-c", f"cat {top}/in/part1 > {OUT}"], private_paths=[f"{top}/in", OUT])
    try:
        source = ns_launcher.host_path(spec, f"{top}/in")
        source.mkdir(parents=True)
        (source / "part1").write_text("from the engine")
        assert run(ns_launcher, spec).exit_code == 0, ns_launcher.log_path(spec).read_text()
        assert ns_launcher.host_path(spec, OUT).read_text() == "from the engine"
        assert list(Path(top, "in").iterdir()) == []
    finally:
        subprocess.run(["rm", "-rf", top], check=True)


def test_namespace_tmp_is_private_and_mktemp_works(ns_launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    marker = Path(f"/tmp/kfp-marker-{uuid.uuid4().hex[:10]}")
    marker.write_text("host")
    try:
        script = f'f=$(mktemp) && echo temp > "$f" && echo "$f" > {OUT} && test ! -e {marker}'
        spec = spec_for(tmp_path / "w", ["sh", "-c", script])
        assert run(ns_launcher, spec).exit_code == 0, ns_launcher.log_path(spec).read_text()
    finally:
        marker.unlink()
    temp = ns_launcher.host_path(spec, OUT).read_text().strip()
    assert temp.startswith("/tmp/tmp.")
    assert ns_launcher.host_path(spec, temp).read_text() == "temp\n"
    assert not Path(temp).exists()


def test_rewrite_mode_mktemp_lands_in_the_step_dir(tmp_path: Path) -> None:
    launcher = LocalProcessLauncher(sandbox.REWRITE)
    spec = spec_for(tmp_path / "w", ["sh", "-c", f'f=$(mktemp) && echo temp > "$f" && echo "$f" > {OUT}'])
    assert run(launcher, spec).exit_code == 0
    temp = Path(launcher.host_path(spec, OUT).read_text().strip())
    assert temp.parent == launcher.host_path(spec, "/tmp")
    assert temp.read_text() == "temp\n"


def test_var_tmp_is_shared(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    shared = Path(f"/var/tmp/kfp-test-{uuid.uuid4().hex[:10]}")
    if launcher.isolation == sandbox.BWRAP:  # the host is read-only in the sandbox: nothing is shared there
        spec = spec_for(tmp_path / "w", ["sh", "-c", f"echo state > {shared}"])
        assert run(launcher, spec).exit_code != 0 and not shared.exists()
        return
    try:
        assert run(launcher, spec_for(tmp_path / "w", ["sh", "-c", f"echo state > {shared}"])).exit_code == 0
        assert shared.read_text() == "state\n"
        spec = spec_for(tmp_path / "w2", ["sh", "-c", f"cat {shared} > {OUT}"])
        assert run(launcher, spec).exit_code == 0
        assert launcher.host_path(spec, OUT).read_text() == "state\n"
    finally:
        shared.unlink(missing_ok=True)


def test_inputs_written_before_start_are_visible(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    spec = spec_for(
        tmp_path / "w",
        ["sh", "-c", 'tr a-z A-Z < "$1" > "$2"', "sh", "/tmp/inputs/text/data", OUT],
        private_paths=["/tmp/inputs/text/data", OUT],
    )
    source = launcher.host_path(spec, "/tmp/inputs/text/data")
    source.parent.mkdir(parents=True)
    source.write_text("hello")
    assert run(launcher, spec).exit_code == 0
    assert launcher.host_path(spec, OUT).read_text() == "HELLO"


# --- deadlines and terminate ----------------------------------------------------------------------

BACKGROUND = f"sleep 30 & echo $! > {OUT}; sleep 30"


def background(argv_text: str) -> tuple[str, str]:
    """`argv_text` with its `sleep 30` made unique: (the script, the marker to look for in /proc)."""
    marker = f"30.{uuid.uuid4().int % 10**6:06d}"
    return argv_text.replace("sleep 30", f"sleep {marker}"), marker


def step_process_gone(launcher: LocalProcessLauncher, in_step_pid: int, marker: str) -> bool:
    """The process the step reported is gone. In the sandbox the step sees only its own PID namespace, so
    its pid means nothing here: no process on the host may run the step's unique `sleep` any more."""
    if launcher.isolation != sandbox.BWRAP:
        return process_gone(in_step_pid)
    for entry in Path("/proc").iterdir():
        try:
            if marker.encode() in (entry / "cmdline").read_bytes() and not process_gone(int(entry.name)):
                return False
        except (OSError, ValueError):
            continue
    return True


def test_deadline_kills_the_whole_group(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    script, marker = background(BACKGROUND)
    spec = spec_for(tmp_path / "w", ["sh", "-c", script], deadline_seconds=1.0)
    began = time.monotonic()
    result = run(launcher, spec)
    elapsed = time.monotonic() - began
    assert 0.9 <= elapsed < 4, elapsed
    assert result.deadline_exceeded and not result.terminated
    assert result.message == DEADLINE_MESSAGE
    assert step_process_gone(launcher, int(launcher.host_path(spec, OUT).read_text()), marker)
    assert (tmp_path / "w" / "killed").read_text().strip() == "deadline"


def test_terminate_kills_the_whole_group(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    script, marker = background(BACKGROUND)
    spec = spec_for(tmp_path / "w", ["sh", "-c", script])
    recorder = Recorder()
    handle = launcher.start(spec, recorder)
    grandchild = int(wait_for_file(launcher.host_path(spec, OUT)))
    launcher.terminate(handle)
    result = recorder.wait()
    assert result.terminated and not result.deadline_exceeded and not result.succeeded
    assert step_process_gone(launcher, grandchild, marker) and process_gone(handle.pid)
    launcher.terminate(handle)  # a no-op once finished


def test_terminate_sigkills_a_step_that_ignores_sigterm(tmp_path: Path) -> None:
    launcher = LocalProcessLauncher(sandbox.REWRITE, kill_grace_seconds=0.5)
    spec = spec_for(tmp_path / "w", ["sh", "-c", f"trap '' TERM; echo ready > {OUT}; sleep 30"])
    recorder = Recorder()
    handle = launcher.start(spec, recorder)
    wait_for_file(launcher.host_path(spec, OUT))
    began = time.monotonic()
    launcher.terminate(handle)
    result = recorder.wait()
    assert 0.4 <= time.monotonic() - began < 3
    assert result.terminated


def test_background_processes_die_when_the_step_ends(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    script, marker = background(f"sleep 30 & echo $! > {OUT}")
    spec = spec_for(tmp_path / "w", ["sh", "-c", script])
    assert run(launcher, spec).exit_code == 0
    assert step_process_gone(launcher, int(launcher.host_path(spec, OUT).read_text()), marker)


# --- adopt after a restart ------------------------------------------------------------------------

LAUNCH_AND_DIE = """
import json, os, sys, time
from pathlib import Path
from kfp_backend.executor import bwrap
from kfp_backend.executor.launch_records import read_launch_record
from kfp_backend.executor.launcher import StepSpec
from kfp_backend.executor.process_launcher import LocalProcessLauncher
options = bwrap.options("bwrap", "", []) if sys.argv[1] == "bwrap" else None
launcher = LocalProcessLauncher(sys.argv[1], sandbox_options=options)
spec = StepSpec(key="adopt", argv=json.loads(sys.argv[2]), env={}, work_dir=Path(sys.argv[3]),
                private_paths=[], deadline_seconds=None)
pid = launcher.start(spec, lambda result: None).pid
# kfp-step writes the launch record itself, an instant after its pid is known: die once it is there.
for _ in range(500):
    if read_launch_record(spec.work_dir) is not None:
        break
    time.sleep(0.01)
print(pid, flush=True)
os._exit(0)
"""


def launch_in_another_server(isolation: str, argv: list[str], work_dir: Path) -> int:
    """Start a step from a separate Python process that then dies: the step is no child of ours."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH_AND_DIE, isolation, json.dumps(argv), str(work_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


def adopt_spec(work_dir: Path, deadline: float | None = None) -> StepSpec:
    return StepSpec(key="adopt", argv=[], env={}, work_dir=work_dir, private_paths=[], deadline_seconds=deadline)


def test_adopt_reports_the_exit_code_of_a_step_from_a_previous_server(
    launcher: LocalProcessLauncher, tmp_path: Path
) -> None:
    work_dir = tmp_path / "w"
    pid = launch_in_another_server(launcher.isolation, ["sh", "-c", "sleep 1; echo done; exit 7"], work_dir)
    new_launcher = LocalProcessLauncher(launcher.isolation, sandbox_options=launcher.sandbox_options)
    spec = adopt_spec(work_dir)
    assert new_launcher.recorded_result(spec) is None  # still running
    recorder = Recorder()
    handle = new_launcher.adopt(spec, pid, recorder)
    assert handle is not None and handle.adopted and handle.pid == pid
    result = recorder.wait()
    assert (result.exit_code, result.message, result.vanished) == (7, "Error (exit code 7)", False)
    assert new_launcher.log_path(spec).read_text() == "done\n"
    # Gone now: adopt refuses it, the recorded result remains.
    assert new_launcher.adopt(spec, pid, Recorder()) is None
    assert new_launcher.recorded_result(spec) == result


def test_adopt_applies_the_remaining_deadline(tmp_path: Path) -> None:
    work_dir = tmp_path / "w"
    pid = launch_in_another_server(sandbox.REWRITE, ["sh", "-c", "sleep 30 & sleep 30"], work_dir)
    launcher = LocalProcessLauncher(sandbox.REWRITE)
    recorder = Recorder()
    assert launcher.adopt(adopt_spec(work_dir, deadline=1.0), pid, recorder) is not None
    result = recorder.wait()
    assert result.deadline_exceeded and result.message == DEADLINE_MESSAGE
    assert process_gone(pid)


def test_adopt_refuses_a_reused_pid(tmp_path: Path) -> None:
    work_dir = tmp_path / "w"
    pid = launch_in_another_server(sandbox.REWRITE, ["sleep", "30"], work_dir)
    try:
        launcher = LocalProcessLauncher(sandbox.REWRITE)
        spec = adopt_spec(work_dir)
        assert launcher.adopt(spec, pid + 1, Recorder()) is None  # not the recorded pid
        record = read_launch_record(work_dir)
        assert record is not None
        # Another process that got the same pid: an earlier start time.
        rewrite_launch_record(work_dir, dataclasses.replace(record, start_ticks=record.start_ticks - 1))
        assert launcher.adopt(spec, pid, Recorder()) is None
        result = launcher.recorded_result(spec)
        assert result is not None and result.vanished and result.exit_code is None
        assert result.message == VANISHED_MESSAGE
    finally:
        os.killpg(pid, signal.SIGKILL)


def test_a_step_killed_behind_our_back_vanished(tmp_path: Path) -> None:
    work_dir = tmp_path / "w"
    pid = launch_in_another_server(sandbox.REWRITE, ["sleep", "30"], work_dir)
    launcher = LocalProcessLauncher(sandbox.REWRITE)
    spec = adopt_spec(work_dir)
    assert launcher.recorded_result(spec) is None
    os.killpg(pid, signal.SIGKILL)
    end = time.monotonic() + 5
    while not process_gone(pid) and time.monotonic() < end:
        time.sleep(0.01)
    assert launcher.adopt(spec, pid, Recorder()) is None
    result = launcher.recorded_result(spec)
    assert result == StepResult(None, False, False, vanished=True, message=VANISHED_MESSAGE)


def test_recorded_result_of_a_step_never_started(tmp_path: Path) -> None:
    launcher = LocalProcessLauncher(sandbox.REWRITE)
    assert launcher.recorded_result(adopt_spec(tmp_path / "nothing")) is None
    assert launcher.adopt(adopt_spec(tmp_path / "nothing"), os.getpid(), Recorder()) is None


def test_recorded_result_after_a_deadline_kill(tmp_path: Path) -> None:
    launcher = LocalProcessLauncher(sandbox.REWRITE)
    spec = spec_for(tmp_path / "w", ["sleep", "30"], deadline_seconds=0.2)
    assert run(launcher, spec).deadline_exceeded
    recorded = LocalProcessLauncher(sandbox.REWRITE).recorded_result(spec)
    assert recorded is not None and recorded.deadline_exceeded and recorded.message == DEADLINE_MESSAGE


# --- misc -----------------------------------------------------------------------------------------


def test_bad_isolation_and_empty_argv(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalProcessLauncher("chroot")
    with pytest.raises(ValueError):
        LocalProcessLauncher(sandbox.REWRITE).start(spec_for(tmp_path / "w", []), Recorder())


def test_auto_picks_namespaces_when_available() -> None:
    expected = sandbox.NAMESPACE if sandbox.namespace_unavailable_reason() is None else sandbox.REWRITE
    assert LocalProcessLauncher().isolation == expected
    if in_ci():
        assert expected == sandbox.NAMESPACE


# --- waves ----------------------------------------------------------------------------------------


def test_start_many_starts_a_wave_and_reports_each_failure(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    recorders = [Recorder() for _ in range(5)]
    specs = [spec_for(tmp_path / f"w{i}", ["sh", "-c", f"echo {i} > {OUT}; exit {i}"]) for i in range(4)]
    specs.insert(2, spec_for(tmp_path / "empty", []))  # cannot start: the others still do
    outcomes = launcher.start_many(list(zip(specs, recorders, strict=True)))
    assert isinstance(outcomes[2], ValueError)
    exit_codes = []
    for spec, recorder, outcome in zip(specs, recorders, outcomes, strict=True):
        if spec.argv:
            assert isinstance(outcome, StepHandle)
            exit_codes.append(recorder.wait().exit_code)
            assert launcher.host_path(spec, OUT).read_text().strip() == str(exit_codes[-1])
    assert exit_codes == [0, 1, 2, 3]


def test_a_wrapper_killed_by_a_signal_reports_its_exit_status(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    spec = spec_for(tmp_path / "w", ["sh", "-c", f"echo ready > {OUT}; sleep 30"])
    recorder = Recorder()
    handle = launcher.start(spec, recorder)
    wait_for_file(launcher.host_path(spec, OUT))
    os.kill(handle.pid, signal.SIGKILL)  # the wrapper itself, behind the launcher's back
    result = recorder.wait()
    # Our child either way (posix_spawn, or the kfp-step spawner's CLONE_PARENT): its wait status is ours.
    assert (result.exit_code, result.message, result.vanished) == (None, "Error (exit code 137)", False)


@pytest.mark.parametrize("wrapper", [KFP_STEP, PYTHON])
def test_the_spawner_is_started_again_when_it_died(tmp_path: Path, wrapper: str) -> None:
    try:
        launcher = LocalProcessLauncher(sandbox.REWRITE, wrapper=wrapper)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    assert run(launcher, spec_for(tmp_path / "a", ["true"])).exit_code == 0
    spawner = launcher._spawner()._pid
    assert spawner is not None
    os.kill(spawner, signal.SIGKILL)
    end = time.monotonic() + 10
    while not process_gone(spawner) and time.monotonic() < end:
        time.sleep(0.01)
    # The next request finds it gone and starts it again.
    assert run(launcher, spec_for(tmp_path / "b", ["true"])).exit_code == 0
    assert launcher._spawner()._pid not in (None, spawner)


def test_a_spawner_failing_midway_keeps_the_pids_it_reported(tmp_path: Path) -> None:
    # A stand-in spawner that answers the first request of a wave, then dies.
    fake = tmp_path / "fake-spawner"
    fake.write_text("#!/bin/sh\nhead -c 1 >/dev/null\necho 4242\n")
    fake.chmod(0o755)
    spawner = Spawner([str(fake)])
    request = (["true"], {}, str(tmp_path / "out"), str(tmp_path / "err"))
    pids = spawner.spawn([request, request, request])
    assert pids[0] == 4242
    assert len(pids) == 3 and all(isinstance(pid, OSError) for pid in pids[1:])


def test_the_python_wrapper_is_checked_before_it_is_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not pyspawner.supported():
        pytest.skip("no raw clone for this architecture")
    assert step_wrappers._check_python_wrapper(namespace=False) is None
    # A spawner that answers with a pid that is no child of ours: the check says so, and `auto` falls back.
    fake = tmp_path / "fake_spawner.py"
    fake.write_text("import sys\nsys.stdin.buffer.read(1)\nprint(4242, flush=True)\n")
    monkeypatch.setattr(pyspawner, "__file__", str(fake))
    problem = step_wrappers._check_python_wrapper(namespace=False)
    assert problem is not None and "check failed" in problem
    monkeypatch.setattr(step_wrappers, "_python_checked", {False: problem, True: problem})
    with pytest.raises(RuntimeError, match="python wrapper is not available"):
        LocalProcessLauncher(sandbox.REWRITE, wrapper=PYTHON)
    monkeypatch.setattr(kfp_step, "step_helper", lambda: None)
    assert LocalProcessLauncher(sandbox.REWRITE).wrapper == "shell"
