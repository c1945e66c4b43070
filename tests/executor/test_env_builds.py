"""Environment builds in the multi-user sandbox: the commands run as the step user, can write the
environment's directory and nothing of the host, see none of the server's environment, and the directory
is the server's again afterwards."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kfp_backend.executor import bwrap
from kfp_backend.executor.env_builds import BuildSandbox


def sandbox_or_skip() -> bwrap.Options:
    try:
        options = bwrap.options("bwrap", "", [])
        problem = bwrap.problem(options)
    except bwrap.IsolationUnavailable as exc:
        problem = str(exc)
    if problem is not None:
        pytest.skip(problem)
    return options


def test_a_build_runs_as_the_step_user_writes_only_its_environment_and_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = sandbox_or_skip()
    data = Path("/var/tmp") / f"kfp-test-build-{os.getpid()}-{tmp_path.name}"
    data.mkdir(mode=0o755)
    hidden = bwrap.options(options.bwrap, "", [data])
    env_dir = data / "step-envs" / "abc"
    env_dir.parent.mkdir(mode=0o755)
    monkeypatch.setenv("KFP_TEST_SERVER_SECRET", "x")
    script = ('id -u > "$0/uid"; mkfifo "$0/fifo"; ln -s /etc/passwd "$0/link"; touch /var/tmp/kfp-build-was-here '
              '2>/dev/null || echo no-host-write >> "$0/said"; env | grep -c SERVER_SECRET >> "$0/said"; '
              'echo "$PIP_FIND_LINKS" >> "$0/said"')
    try:
        with BuildSandbox(hidden).building(env_dir) as session:
            argv, environment = session.command(["sh", "-c", script, str(env_dir)],
                                                {**os.environ, "PIP_FIND_LINKS": "/opt/wheels"}, {})
            subprocess.run(argv, env=environment, check=False, timeout=60)
        assert (env_dir / "uid").read_text().strip() == str(hidden.user.uid)
        assert (env_dir / "said").read_text().split() == ["no-host-write", "0", "/opt/wheels"]
        assert not (env_dir / "fifo").exists() and os.path.islink(env_dir / "link")
        owners = {os.lstat(path).st_uid for path in [env_dir, *env_dir.iterdir()]}
        assert owners == {os.geteuid()}
    finally:
        subprocess.run(["rm", "-rf", str(data)], check=False)
