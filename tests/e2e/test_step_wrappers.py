"""The corpus pipelines that exercise the most of a step's set-up (input and output artifacts and
parameters, a failing step and its exit handler, a wide fan-out) through the kfp 1.8.22 client, with
each step wrapper the server can be told to use (`KFP_BACKEND_STEP_WRAPPER`). The rest of the e2e
suite runs with the default (`kfp-step` where a C compiler is present)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kfp
import pytest

from kfp_backend.executor import pyspawner
from tests.e2e.helpers import kfp_client_for
from tests.e2e.run_checks import check_run, expected_result, run_corpus_pipeline
from tests.e2e.servers import free_port, start_server, stop_server

PIPELINES = ["file_artifacts_chain", "exit_handler_failure", "fanout_30"]


def _spawners_of(pid: int) -> list[str]:
    """The command lines of the step spawners among the children of process `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid and ("--spawner" in cmdline or "pyspawner" in cmdline):
            found.append(cmdline)
    return found


@pytest.fixture(scope="module", params=["python", "shell"])
def wrapper_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[kfp.Client]:
    if request.param == "python" and not pyspawner.supported():
        pytest.skip("the python wrapper needs x86_64 or aarch64 Linux")
    workdir = tmp_path_factory.mktemp(f"wrapper-{request.param}")
    port = free_port()
    process = start_server(port, workdir / "data", workdir / "server.log",
                           env={"KFP_BACKEND_STEP_WRAPPER": request.param})
    try:
        with kfp_client_for(f"http://127.0.0.1:{port}", workdir) as client:
            yield client
        # The steps went through the wrapper asked for: pyspawner's process, or no spawner at all.
        spawners = _spawners_of(process.pid)
        if request.param == "python":
            assert len(spawners) == 1 and "pyspawner.py" in spawners[0], spawners
        else:
            assert spawners == []
    finally:
        stop_server(process)


@pytest.mark.parametrize("name", PIPELINES)
def test_corpus_pipeline_with_each_wrapper(wrapper_client: kfp.Client, shared_dir: Path, unique: str,
                                           name: str) -> None:
    corpus = shared_dir / "pipelines"
    detail = run_corpus_pipeline(wrapper_client, corpus, name, unique, upload=False)
    check_run(detail, expected_result(corpus, name))
