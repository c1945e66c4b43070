"""Building a step's Python environment in the multi-user sandbox, as the step user.

What a tenant's pip lines name is code: a source distribution's build runs during `pip install`, and a
`.pth` file of an installed package runs whenever the environment's Python starts. In multi-user mode the
server must not run that with its own rights, so `StepEnvironments` runs every command that builds an
environment (venv, pip, the import check) through `BuildSandbox`: the step sandbox of `bwrap`, as the step
user, with only the environment's directory writable and a private /tmp; then the directory is taken back
(owned by the server again, nothing special left in it) before the server writes its ready file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from kfp_backend.executor import bwrap

_STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildSandbox:
    """Runs environment builds in the step sandbox (`options`), with the host's network (pip must reach
    its index even when steps have none)."""

    def __init__(self, options: bwrap.Options) -> None:
        self.options = dataclasses.replace(options, network=True)

    @contextlib.contextmanager
    def building(self, env_dir: Path) -> Iterator[BuildSession]:
        """`env_dir` made empty and handed to the step user for the build, with a private /tmp; on leaving,
        taken back (see `take_back`) whatever happened."""
        user = self.options.user
        env_dir.mkdir(mode=0o755)
        os.chown(env_dir, user.uid, user.gid)
        scratch = Path(tempfile.mkdtemp(prefix="kfp-env-build-"))  # the host's /tmp: no step sees it
        try:
            os.chown(scratch, user.uid, user.gid)
            yield BuildSession(self.options, env_dir, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            take_back(env_dir)


@dataclasses.dataclass(frozen=True)
class BuildSession:
    options: bwrap.Options
    env_dir: Path
    scratch: Path

    def command(self, command: list[str], environ: Mapping[str, str],
                extra: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that run `command` in the sandbox: `environ`'s pip settings (`PIP_*`)
        and `extra` pass, nothing else of the server's environment."""
        argv = bwrap.sandbox_argv(self.options, [(str(self.scratch), "/tmp")], "/tmp",
                                  writable=[str(self.env_dir)])
        environment = {"PATH": _STANDARD_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
        environment |= {name: value for name, value in environ.items() if name.startswith("PIP_")}
        environment |= extra
        return [*argv, *command], environment


def take_back(env_dir: Path) -> None:
    """The environment is the server's again (so no process of the step user's can change it later), and
    nothing in it but directories, regular files and links, which the server never follows: fifos and
    sockets are removed."""
    if not os.path.isdir(env_dir) or os.path.islink(env_dir):
        return
    uid, gid = os.geteuid(), os.getegid()
    with contextlib.suppress(OSError):
        os.lchown(env_dir, uid, gid)
    for directory, dirnames, filenames in os.walk(env_dir):
        for name in (*dirnames, *filenames):
            path = os.path.join(directory, name)
            try:
                os.lchown(path, uid, gid)
                mode = os.lstat(path).st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                    os.unlink(path)
            except OSError:
                continue
