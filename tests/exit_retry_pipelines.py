"""kfp 1.8 (v1 mode) pipelines for the exit handler's arguments and the shape of Retry nodes, compiled at
test time; used by the executor tests (in-process, over each database) and the e2e tests (kfp client).

Steps are `sh -c` ContainerOps that leave traces in `/var/tmp/<marker>-<name>` (a host path every step
sees, also in a private mount namespace), so a test can tell what ran, how often and with what value.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from kfp import compiler, dsl

TRACE_DIR = Path("/var/tmp")
EXIT_MESSAGE_DEFAULT = "default-message"
FLAKY_ATTEMPTS = 3  # the flaky step fails twice, then succeeds
DOOMED_RETRIES = 1  # the doomed step fails on both of its attempts


def trace_path(marker: str, name: str) -> Path:
    return TRACE_DIR / f"{marker}-{name}"


def _sh(name: str, script: str) -> dsl.ContainerOp:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # "use reusable components"
        return dsl.ContainerOp(name=name, image="alpine", command=["sh", "-c", script])


def exit_with_parameter(marker: str) -> Callable:
    """An exit op that takes a pipeline parameter: it writes the value it received to its trace."""

    @dsl.pipeline(name="exit-handler-with-parameter")
    def pipeline(message: str = EXIT_MESSAGE_DEFAULT):
        goodbye = _sh("goodbye", f"echo message={message}; echo {message} >> {trace_path(marker, 'exit')}")
        with dsl.ExitHandler(goodbye):
            _sh("body", f"echo ran >> {trace_path(marker, 'body')}")

    return pipeline


def retried_with_dependents(marker: str) -> Callable:
    """Two retried steps, each with a dependent: `flaky` fails on its first two attempts and succeeds on
    the third (an attempt counter under /var/tmp survives attempts), so `after-flaky` runs; `doomed`
    fails on every attempt, so `after-doomed` is omitted and the run fails."""
    counter = trace_path(marker, "flaky")

    @dsl.pipeline(name="retried-with-dependents")
    def pipeline():
        flaky = _sh("flaky", f"echo ran >> {counter}; n=$(wc -l < {counter}); echo attempt $n; "
                             f"[ $n -ge {FLAKY_ATTEMPTS} ]").set_retry(FLAKY_ATTEMPTS)
        _sh("after-flaky", f"echo ran >> {trace_path(marker, 'after-flaky')}").after(flaky)
        doomed = _sh("doomed", "exit 3").set_retry(DOOMED_RETRIES)
        _sh("after-doomed", f"echo ran >> {trace_path(marker, 'after-doomed')}").after(doomed)

    return pipeline


def workflow_manifest(pipeline: Callable) -> str:
    """The pipeline compiled by kfp 1.8's compiler, as the JSON text a run's workflow_manifest carries."""
    import yaml

    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        path = Path(directory) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        return json.dumps(yaml.safe_load(path.read_text()))


def remove_traces(marker: str) -> None:
    for path in TRACE_DIR.glob(f"{marker}-*"):
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------ checks on a finished workflow


def nodes_by_display(nodes: dict[str, dict]) -> dict[str, dict]:
    """`status.nodes` keyed by displayName; the exit handler's node under "onExit"."""
    found: dict[str, dict] = {}
    for node in nodes.values():
        key = "onExit" if node["name"].endswith(".onExit") else node["displayName"]
        assert key not in found, f"two nodes display as {key!r}"
        found[key] = node
    return found


def check_retry_shape(nodes: dict[str, dict]) -> None:
    """Argo's shape: a Retry node's children are exactly its attempt pods, in order, and a dependent of a
    retried task (run or omitted) is a child of its last attempt pod, of no other node."""
    by_display = nodes_by_display(nodes)
    shape = json.dumps({n["displayName"]: [n["type"], n["phase"], n.get("children", [])] for n in nodes.values()},
                       indent=1)
    for task, attempts, dependent, dependent_phase in (
        ("flaky", FLAKY_ATTEMPTS, "after-flaky", "Succeeded"),
        ("doomed", DOOMED_RETRIES + 1, "after-doomed", "Omitted"),
    ):
        retry = by_display[task]
        assert retry["type"] == "Retry", shape
        pods = [by_display[f"{task}({i})"] for i in range(attempts)]
        assert all(pod["type"] == "Pod" for pod in pods), shape
        assert retry["children"] == [pod["id"] for pod in pods], shape
        assert f"{task}({attempts})" not in by_display, shape
        assert by_display[dependent]["phase"] == dependent_phase, shape
        dependent_id = by_display[dependent]["id"]
        parents = sorted(n["displayName"] for n in nodes.values() if dependent_id in n.get("children", []))
        assert parents == [f"{task}({attempts - 1})"], shape
        for pod in pods[:-1]:
            assert not pod.get("children"), shape
    assert by_display["flaky"]["phase"] == "Succeeded", shape
    assert by_display["doomed"]["phase"] == "Failed", shape
    assert by_display["doomed"]["message"] == "No more retries left", shape
    for node in nodes.values():
        for child in node.get("children", []):
            assert child in nodes, f"{node['name']} lists a child {child} that is not in the workflow"
