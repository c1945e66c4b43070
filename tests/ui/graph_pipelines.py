"""Pipelines whose runs the graph tests draw: a kfp 1.8 pipeline (compiled at test time) with an exit handler,
a loop of two-step iterations, a condition taken and one not, and a retried step; a hand-written KFP v2 spec
(IR) with the same shapes (its loop of one-step iterations). Steps are `sh -c` one-liners, so a run takes
seconds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kfp import dsl

from tests import ir_pipelines as ir
from tests.exit_retry_pipelines import _sh, trace_path, workflow_manifest

LOOP_ITEMS = [1, 2, 3]
FLAKY_ATTEMPTS = 2  # the flaky step fails once, then succeeds
RETRY_LIMIT = 2  # retries: 3 attempts at most


def argo_shapes(marker: str) -> Callable:
    counter = trace_path(marker, "flaky")

    @dsl.pipeline(name="graph-shapes")
    def pipeline(flag: str = "yes"):
        goodbye = _sh("goodbye", "echo bye")
        with dsl.ExitHandler(goodbye):
            first = _sh("first", "echo first")
            with dsl.ParallelFor(LOOP_ITEMS) as item:
                in_loop = _sh("in-loop", f"echo {item}").after(first)
                _sh("in-loop-after", "echo after").after(in_loop)
            with dsl.Condition(flag == "yes"):
                _sh("when-yes", "echo yes").after(first)
            with dsl.Condition(flag == "no"):
                _sh("when-no", "echo no").after(first)
            _sh("flaky", f"echo ran >> {counter}; n=$(wc -l < {counter}); [ $n -ge {FLAKY_ATTEMPTS} ]").set_retry(
                RETRY_LIMIT).after(first)

    return pipeline


def argo_manifest(marker: str) -> str:
    return workflow_manifest(argo_shapes(marker))


def chain_manifest(steps: int, *, sleep: float = 0) -> str:
    """A kfp 1.8 pipeline of `steps` steps in a chain (the second waits `sleep` seconds)."""

    @dsl.pipeline(name="chain")
    def pipeline():
        previous = None
        for index in range(steps):
            script = f"sleep {sleep}" if index == 1 and sleep else "true"
            op = _sh(f"step-{index}", script)
            if previous is not None:
                op.after(previous)
            previous = op

    return workflow_manifest(pipeline)


def items_later_manifest(sleep: float = 3) -> str:
    """A loop over the output of a step that takes `sleep` seconds: its items are known only then."""

    @dsl.pipeline(name="items-later")
    def pipeline():
        make = dsl.ContainerOp(
            name="make-items", image="alpine",
            command=["sh", "-c", f"sleep {sleep}; mkdir -p /tmp/outputs/items; "
                                 "echo '[1, 2]' > /tmp/outputs/items/data"],
            file_outputs={"items": "/tmp/outputs/items/data"})
        with dsl.ParallelFor(make.outputs["items"]) as item:
            _sh("use-item", f"echo {item}")

    return workflow_manifest(pipeline)


def loop_after_loop_manifest() -> str:
    """Two loops, the second after the first: many steps into many (drawn through a junction)."""

    @dsl.pipeline(name="loop-after-loop")
    def pipeline():
        with dsl.ParallelFor([1, 2, 3]) as first:
            before = _sh("before", f"echo {first}")
        with dsl.ParallelFor([1, 2]) as second:
            _sh("after", f"echo {second}").after(before)

    return workflow_manifest(pipeline)


def ir_shapes() -> dict[str, Any]:
    """first -> for-loop-1 (raw items) {square}; condition-2 (true) {yes}; condition-3 (false) {no};
    a retried flaky step; all inside exit-handler-1, then `final` as its exit task."""
    first = ir.sh_component("first", "echo first", [])
    square = ir.sh_component("square", 'echo "$0"', ["{{$.inputs.parameters['x']}}"],
                             inputs={"parameters": ir.parameters(x="NUMBER_INTEGER")})
    yes = ir.sh_component("yes", "echo yes", [])
    no = ir.sh_component("no", "echo no", [])
    flaky = ir.sh_component(
        "flaky", 'f=/var/tmp/kfp-backend-graph-retry-$0; n=$(( $(cat "$f" 2>/dev/null || echo 0) + 1 )); '
                 'echo $n > "$f"; [ $n -ge 2 ] || exit 1; rm -f "$f"', ["{{$.pipeline_job_uuid}}"])
    final = ir.sh_component("final", "echo done", [])
    item = "pipelinechannel--loop-item"
    loop = ir.dag_component("for-loop-1", {"square": ir.task("comp-square", parameters={
        "x": ir.pipeline_input(item)})}, inputs={"parameters": {item: {"parameterType": "NUMBER_INTEGER"}}})
    taken = ir.dag_component("condition-2", {"yes": ir.task("comp-yes")})
    untaken = ir.dag_component("condition-3", {"no": ir.task("comp-no")})
    body = ir.dag_component("exit-handler-1", {
        "first": ir.task("comp-first"),
        "for-loop-1": ir.task("comp-for-loop-1", after=["first"],
                              parameterIterator={"itemInput": item, "items": {"raw": "[1, 2, 3]"}}),
        "condition-2": ir.task("comp-condition-2", after=["first"], triggerPolicy={"condition": "1 < 2"}),
        "condition-3": ir.task("comp-condition-3", after=["first"], triggerPolicy={"condition": "1 > 2"}),
        "flaky": ir.task("comp-flaky", after=["first"], retryPolicy={"maxRetryCount": 2, "backoffDuration": "0s"}),
    })
    return ir.pipeline("graph-shapes-ir", [first, square, yes, no, flaky, final, loop, taken, untaken, body], {
        "dag": {"tasks": {
            "exit-handler-1": ir.task("comp-exit-handler-1"),
            "final": ir.task("comp-final", after=["exit-handler-1"],
                             triggerPolicy={"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}),
        }}})
