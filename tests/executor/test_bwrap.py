"""The multi-user sandbox (`bwrap`) with real steps: the step's user, what it sees, its environment, SIGTERM,
the outputs taken back; the start-up choice and refusal (`isolation.build_launcher`). The launcher tests
(test_process_launcher.py) run over the sandbox too, with every wrapper."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
from pathlib import Path

import pytest

from kfp_backend.config import Settings
from kfp_backend.executor import bwrap, isolation, sandbox
from kfp_backend.executor.process_launcher import LocalProcessLauncher
from kfp_backend.executor.step_wrappers import WRAPPERS
from tests.executor.test_process_launcher import OUT, Recorder, run, sandbox_options, spec_for, wait_for_file


@pytest.fixture(params=WRAPPERS)
def launcher(request: pytest.FixtureRequest) -> LocalProcessLauncher:
    options = sandbox_options()
    try:
        return LocalProcessLauncher(sandbox.BWRAP, kill_grace_seconds=2.0, wrapper=request.param,
                                    sandbox_options=options)
    except RuntimeError as exc:
        if isinstance(exc, bwrap.IsolationUnavailable):
            raise
        pytest.skip(str(exc))


def test_the_step_runs_as_the_step_user_and_sees_nothing_of_the_server(
    launcher: LocalProcessLauncher, tmp_path: Path
) -> None:
    secret = Path("/var/tmp") / f"kfp-test-secret-{os.getpid()}"
    secret.write_text("root only")
    os.chmod(secret, 0o600)
    try:
        script = (f"id -u; id -G; cat {secret} || echo denied; test -e /proc/{os.getpid()} && echo sees-server; "
                  f"env | cut -d= -f1 | sort | tr '\\n' ' '; echo; echo $$")
        os.environ["KFP_TEST_SERVER_SECRET"] = "x"
        try:
            spec = spec_for(tmp_path / "w", ["sh", "-c", f"{{ {script}; }} > {OUT} 2>/dev/null"], env={"MY_VAR": "1"})
            assert run(launcher, spec).exit_code == 0
        finally:
            del os.environ["KFP_TEST_SERVER_SECRET"]
    finally:
        secret.unlink()
    user = launcher.sandbox_options.user  # type: ignore[union-attr]
    uid, groups, denied, names, pid = launcher.host_path(spec, OUT).read_text().splitlines()
    assert (int(uid), groups, denied) == (user.uid, str(user.gid), "denied")
    assert set(names.split()) <= {"HOME", "LANG", "MY_VAR", "PATH", "PWD", "PYTHONUNBUFFERED", "SHLVL", "_"}
    assert int(pid) < 10  # its own PID namespace


def test_hidden_paths_are_empty_and_closed(tmp_path: Path) -> None:
    hidden = Path("/var/tmp") / f"kfp-test-hidden-{os.getpid()}"
    hidden.mkdir(mode=0o755)
    (hidden / "kfp-backend.db").write_text("tokens")
    os.chmod(hidden / "kfp-backend.db", 0o644)
    try:
        sandbox_options()  # skipped where the sandbox cannot work
        options = bwrap.options("bwrap", "", [hidden])
        launcher = LocalProcessLauncher(sandbox.BWRAP, sandbox_options=options)
        script = f"ls {hidden} > {OUT} 2>&1; cat {hidden}/kfp-backend.db >> {OUT} 2>&1"
        spec = spec_for(tmp_path / "w", ["sh", "-c", script])
        run(launcher, spec)
        text = launcher.host_path(spec, OUT).read_text()
        assert "Permission denied" in text and "tokens" not in text and "kfp-backend.db:" not in text.split("\n")[0]
    finally:
        (hidden / "kfp-backend.db").unlink()
        hidden.rmdir()


@pytest.mark.parametrize("place", ["/var/tmp", "/tmp"])
def test_a_read_only_path_under_a_hidden_one_is_shown_read_only_and_nothing_else(
    launcher: LocalProcessLauncher, tmp_path: Path, place: str
) -> None:
    """A step's prepared environment under the hidden data dir (or under the host's /tmp, which the private
    /tmp covers): the step runs its programs, cannot change them, and sees nothing else there."""
    data = Path(place) / f"kfp-test-data-{os.getpid()}-{tmp_path.name}"
    environment = data / "step-envs" / "abc"
    (environment / "bin").mkdir(parents=True)
    (environment / "bin" / "tool").write_text("#!/bin/sh\necho tool-ran\n")
    os.chmod(environment / "bin" / "tool", 0o755)
    for directory in (data, data / "step-envs", environment, environment / "bin"):
        os.chmod(directory, 0o755)
    (data / "step-envs" / "other.lock").write_text("")
    (data / "kfp-backend.db").write_text("tokens")
    try:
        assert launcher.sandbox_options is not None
        options = bwrap.options(launcher.sandbox_options.bwrap, "", [data])
        sandboxed = LocalProcessLauncher(sandbox.BWRAP, wrapper=launcher.wrapper, sandbox_options=options)
        script = (f"{{ {environment}/bin/tool; touch {environment}/bin/tool || echo no-write; "
                  f"touch {environment}/new || echo no-new; ls {data}/step-envs || echo no-list; "
                  f"cat {data}/kfp-backend.db || echo no-db; }} > {OUT} 2>/dev/null")
        spec = spec_for(tmp_path / "w", ["sh", "-c", script], read_only_paths=[str(environment)])
        assert run(sandboxed, spec).exit_code == 0
        assert sandboxed.host_path(spec, OUT).read_text().split() == [
            "tool-ran", "no-write", "no-new", "no-list", "no-db"]
        assert sorted(os.listdir(environment)) == ["bin"]
    finally:
        shutil.rmtree(data)


def test_a_step_keeps_its_sigterm_grace_period(launcher: LocalProcessLauncher, tmp_path: Path) -> None:
    script = f"trap 'echo got-term; exit 9' TERM; echo ready > {OUT}; while :; do sleep 0.05; done"
    spec = spec_for(tmp_path / "w", ["sh", "-c", script])
    recorder = Recorder()
    handle = launcher.start(spec, recorder)
    wait_for_file(launcher.host_path(spec, OUT))
    launcher.terminate(handle)
    result = recorder.wait()
    assert result.terminated and result.exit_code == 9  # the step's own exit, recorded by the wrapper
    assert "got-term" in launcher.log_path(spec).read_text()


def test_the_server_takes_the_outputs_back_and_follows_no_planted_link(
    launcher: LocalProcessLauncher, tmp_path: Path
) -> None:
    target = Path("/var/tmp") / f"kfp-test-target-{os.getpid()}"
    target.write_text("server data")
    try:
        script = (f"mkdir -p /tmp/outputs/Dir/data && echo kept > /tmp/outputs/Dir/data/file && "
                  f"ln -s file /tmp/outputs/Dir/data/inside && ln -s {target} /tmp/outputs/Dir/data/outside && "
                  f"mkfifo /tmp/outputs/Dir/data/fifo && ln -s {target} {OUT}")
        spec = spec_for(tmp_path / "w", ["sh", "-c", script], private_paths=[OUT, "/tmp/outputs/Dir/data"])
        assert run(launcher, spec).exit_code == 0
    finally:
        target.unlink()
    out = launcher.host_path(spec, OUT)
    assert not os.path.lexists(out)  # a link out: removed, the output is missing
    directory = launcher.host_path(spec, "/tmp/outputs/Dir/data")
    assert sorted(os.listdir(directory)) == ["file", "inside"]  # the link inside stays
    root = tmp_path / "w" / sandbox.ROOT_DIR
    owners = {os.lstat(os.path.join(d, name)).st_uid for d, dirs, files in os.walk(root) for name in dirs + files}
    assert owners == {os.geteuid()}


def test_a_missing_or_unsafe_setup_is_refused() -> None:
    with pytest.raises(bwrap.IsolationUnavailable, match="bubblewrap is not installed: no '/nonexistent/bwrap'"):
        bwrap.options("/nonexistent/bwrap", "", [])
    with pytest.raises(bwrap.IsolationUnavailable, match="'no-such-user-kfp' does not exist"):
        bwrap.resolve_user("no-such-user-kfp")
    with pytest.raises(bwrap.IsolationUnavailable, match="is root"):
        bwrap.resolve_user("root")
    with pytest.raises(bwrap.IsolationUnavailable, match="is root"):
        bwrap.resolve_user("65534:0")
    nobody = pwd.getpwnam("nobody")
    assert bwrap.resolve_user("nobody") == bwrap.StepUser("nobody", nobody.pw_uid, nobody.pw_gid)
    assert bwrap.resolve_user("12345:23456") == bwrap.StepUser("12345", 12345, 23456)


def test_the_check_catches_a_step_that_is_not_dropped() -> None:
    options = sandbox_options()
    as_root = bwrap.Options(options.bwrap, options.setpriv, options.env, bwrap.StepUser("root", 0, 0), ())
    assert "could read a file of the server's user" in (bwrap.problem(as_root) or "")


# --- which isolation a server uses ------------------------------------------------------------------


def test_multi_user_mode_uses_the_sandbox_and_single_user_mode_does_not(tmp_path: Path) -> None:
    sandbox_options()
    multi = isolation.build_launcher(Settings(data_dir=tmp_path, auth="required"))
    assert multi.isolation == sandbox.BWRAP
    assert str(tmp_path.resolve()) in multi.sandbox_options.hidden  # type: ignore[union-attr]
    single = isolation.build_launcher(Settings(data_dir=tmp_path, auth="disabled"))
    assert single.isolation in (sandbox.NAMESPACE, sandbox.REWRITE)


def test_multi_user_mode_refuses_without_the_sandbox_unless_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, auth="required", bwrap="/nonexistent/bwrap")
    with pytest.raises(bwrap.IsolationUnavailable, match=r"multi-user mode needs the step sandbox.*bubblewrap is not"):
        isolation.build_launcher(settings)
    with pytest.raises(bwrap.IsolationUnavailable, match="STEP_ISOLATION=rewrite does not keep"):
        isolation.build_launcher(Settings(data_dir=tmp_path, auth="required", step_isolation="rewrite"))
    with caplog.at_level(logging.WARNING):
        launcher = isolation.build_launcher(settings.replace(unsafe_allow_unisolated_steps=True))
    assert launcher.isolation != sandbox.BWRAP
    assert any(r.levelno == logging.WARNING and "UNSAFE" in r.getMessage() for r in caplog.records)



def test_nothing_is_made_on_the_host_in_system_or_hidden_directories(
    launcher: LocalProcessLauncher, tmp_path: Path
) -> None:
    options = launcher.sandbox_options
    assert options is not None
    hidden = "/mnt/kfp-test-hidden"  # a hidden path (the data dir, say) need not exist for the rule
    launcher.sandbox_options = bwrap.Options(options.bwrap, options.setpriv, options.env, options.user, (hidden,))
    for path in ("/etc/nologin-kfp-test", "/var/lib/kfp-test/out", f"{hidden}/runs/other/out"):
        spec = spec_for(tmp_path / "w", ["true"], private_paths=[path])
        with pytest.raises(sandbox.SandboxError, match="in multi-user mode nothing is made for it"):
            launcher.start(spec, Recorder())
        assert not os.path.lexists(path)
    spec = spec_for(tmp_path / "w", ["true"], working_dir="/etc/kfp-test-workdir")
    with pytest.raises(sandbox.SandboxError, match="in multi-user mode nothing is made for it under /etc"):
        launcher.start(spec, Recorder())
    assert not os.path.lexists("/etc/kfp-test-workdir")


def test_the_network_is_the_hosts_unless_turned_off(tmp_path: Path) -> None:
    """What docs/auth.md says is NOT isolated: a service on the host's loopback is reachable from a step,
    unless the step network is off (a namespace of its own)."""
    import socket

    options = sandbox_options()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        connect = ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)"]
        shared = LocalProcessLauncher(sandbox.BWRAP, sandbox_options=options)
        assert run(shared, spec_for(tmp_path / "host", connect)).exit_code == 0
        cut_off = bwrap.Options(options.bwrap, options.setpriv, options.env, options.user, options.hidden,
                                network=False)
        alone = LocalProcessLauncher(sandbox.BWRAP, sandbox_options=cut_off)
        assert run(alone, spec_for(tmp_path / "none", connect)).exit_code != 0


def test_the_sandbox_command_line() -> None:
    options = bwrap.Options("/usr/bin/bwrap", "/usr/bin/setpriv", "/usr/bin/env", bwrap.StepUser("u", 1000, 1001),
                            ("/dev/null", "/tmp/data", "/nonexistent/kfp", "/var"), network=False)
    argv = bwrap.sandbox_argv(options, [("/d/root/out", "/out"), ("/d/root/tmp", "/tmp")], "/tmp")
    text = " ".join(argv)
    assert "--unshare-net" in argv and "--as-pid-1" in argv and "--unshare-pid" in argv
    assert "--perms 0700 --tmpfs /var" in text  # a hidden directory: empty, root's
    assert "--ro-bind /dev/null /dev/null" in text  # a hidden file
    assert "/tmp/data" not in text and "/nonexistent/kfp" not in text  # under the private /tmp; missing
    assert text.index("--tmpfs /var") < text.index("--bind /d/root/out /out") < text.index("--bind /d/root/tmp /tmp")
    assert argv[-12:] == ["--", "/usr/bin/setpriv", "--reuid=1000", "--regid=1001", "--clear-groups", "--no-new-privs",
                          "--inh-caps=-all", "--bounding-set=-all", "--", "/usr/bin/env", "--default-signal=TERM", "--"]
    with_helper = bwrap.sandbox_argv(options, [], "/tmp", "/h/kfp-step")
    assert with_helper[-8:] == ["--", "/h/kfp-step", "-g", "1001", "-u", "1000", "-x", "--"]
