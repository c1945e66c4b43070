"""Small kfp 1.8 (v1 mode) pipelines for the execution-semantics tests, compiled at test time.

Every pipeline is built by a factory taking a `marker` (unique per test): steps that leave traces
(counters, timestamps, pids) write them to `/var/tmp/<marker>-<name>`, a host path every step sees,
so a test can tell how often and when each step ran. Steps are `sh -c` ContainerOps: no interpreter
start-up, so the runs stay fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from kfp import dsl

TRACE_DIR = Path("/var/tmp")
WORKFLOW_STATUS = "{{workflow.status}}"
ITEM_WRITE_CHECK_SECONDS = 0.3
OVERLAP_STEP_SECONDS = 0.4


def trace_path(marker: str, name: str) -> Path:
    """The host file step `name` of the pipeline built with `marker` writes its traces to."""
    return TRACE_DIR / f"{marker}-{name}"


def sh(name: str, script: str, file_outputs: dict[str, str] | None = None) -> dsl.ContainerOp:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # "use reusable components"
        return dsl.ContainerOp(
            name=name, image="alpine", command=["sh", "-c", script], file_outputs=file_outputs or {}
        )


def _count(marker: str, name: str) -> str:
    """Shell that appends one line to the step's counter file."""
    return f"echo ran >> {trace_path(marker, name)}"


def _interval(marker: str, name: str, seconds: float) -> str:
    """Shell that records the step's running interval as one "start end" line (epoch seconds)."""
    return f's=$(date +%s.%N); sleep {seconds}; e=$(date +%s.%N); echo "$s $e" >> {trace_path(marker, name)}'


def _exit_handler(marker: str) -> dsl.ContainerOp:
    """Appends the workflow status it sees to its counter file and prints it to its log."""
    return sh("exit-handler", f"echo status={WORKFLOW_STATUS}; echo {WORKFLOW_STATUS} >> {trace_path(marker, 'exit')}")


# ---------------------------------------------------------------------------------------------- retry


def retry_chain(marker: str) -> Callable:
    """A -> B -> C in an exit handler; B fails on its first execution and succeeds afterwards.

    B also writes an mlpipeline-metrics file whose value is its execution count, so the metric of
    the failed first execution must survive the retry (first report wins).
    """
    counter_b = trace_path(marker, "b")
    metrics = (
        "mkdir -p /tmp/outputs/mlpipeline-metrics; "
        'printf \'{"metrics": [{"name": "execution", "numberValue": %s, "format": "RAW"}]}\' "$n" '
        "> /tmp/outputs/mlpipeline-metrics/data"
    )

    @dsl.pipeline(name="semantics-retry-chain")
    def pipeline():
        with dsl.ExitHandler(_exit_handler(marker)):
            a = sh("step-a", _count(marker, "a"))
            b = sh(
                "step-b",
                f"{_count(marker, 'b')}; n=$(wc -l < {counter_b}); {metrics}; echo execution $n; [ $n -ge 2 ]",
                file_outputs={"mlpipeline-metrics": "/tmp/outputs/mlpipeline-metrics/data"},
            ).after(a)
            sh("step-c", _count(marker, "c")).after(b)

    return pipeline


def loop_with_flaky_item(marker: str) -> Callable:
    """A loop over 0, 1, 2 whose item 1 fails on its first execution, then a step after the loop."""

    @dsl.pipeline(name="semantics-loop-flaky-item")
    def pipeline():
        with dsl.ParallelFor([0, 1, 2]) as item:
            counter = f"{TRACE_DIR}/{marker}-item-{item}"
            body = sh("body", f"echo ran >> {counter}; [ {item} != 1 ] || [ $(wc -l < {counter}) -ge 2 ]")
        sh("after-loop", _count(marker, "after-loop")).after(body)

    return pipeline


# ----------------------------------------------------------------------------------- terminate / long


def slow_then_next(marker: str, with_exit_handler: bool = True) -> Callable:
    """`slow` records its pid and, on its first execution only, sleeps 300 s; `next` waits on it;
    optionally inside an exit handler."""

    def body() -> None:
        counter = trace_path(marker, "slow")
        slow = sh(
            "slow",
            f"{_count(marker, 'slow')}; echo $$ > {trace_path(marker, 'pid')}; "
            f"[ $(wc -l < {counter}) -ge 2 ] || exec sleep 300",
        )
        sh("next", _count(marker, "next")).after(slow)

    @dsl.pipeline(name="semantics-slow-then-next")
    def pipeline():
        if with_exit_handler:
            with dsl.ExitHandler(_exit_handler(marker)):
                body()
        else:
            body()

    return pipeline


def failing_with_backoff(marker: str) -> Callable:
    """A step that always fails, retried up to 10 times with a 1 s backoff: a retry storm to terminate."""

    @dsl.pipeline(name="semantics-failing-with-backoff")
    def pipeline():
        sh("flaky", f"{_count(marker, 'flaky')}; exit 1").set_retry(10, backoff_duration="1s")

    return pipeline


def workflow_timeout(marker: str, seconds: int = 2) -> Callable:
    """A whole-run timeout with one step running, one held Pending by parallelism 1, one waiting."""

    @dsl.pipeline(name="semantics-workflow-timeout")
    def pipeline():
        conf = dsl.get_pipeline_conf()
        conf.set_timeout(seconds)
        conf.set_parallelism(1)
        with dsl.ExitHandler(_exit_handler(marker)):
            first = sh("first", f"{_count(marker, 'first')}; exec sleep 60")
            sh("second", f"{_count(marker, 'second')}; exec sleep 60")
            sh("third", _count(marker, "third")).after(first)

    return pipeline


# --------------------------------------------------------------------------------------------- errors


def missing_output_parameter(marker: str) -> Callable:
    """`producer` declares an output parameter file it never writes; `consumer` reads that output; an exit
    handler records the workflow status."""

    @dsl.pipeline(name="semantics-missing-output")
    def pipeline():
        with dsl.ExitHandler(_exit_handler(marker)):
            producer = sh("producer", _count(marker, "producer"), file_outputs={"out": "/tmp/outputs/out/data"})
            sh("consumer", f"echo {producer.outputs['out']}; {_count(marker, 'consumer')}")

    return pipeline


def retry_policies(marker: str) -> Callable:
    """Two steps whose every attempt is an Error (missing output file): policy Always vs OnFailure."""

    @dsl.pipeline(name="semantics-retry-policies")
    def pipeline():
        always = sh("always", _count(marker, "always"), file_outputs={"out": "/tmp/outputs/out/data"})
        always.set_retry(2, policy="Always")
        on_failure = sh("on-failure", _count(marker, "on-failure"), file_outputs={"out": "/tmp/outputs/out/data"})
        on_failure.set_retry(2)

    return pipeline


def _producer(value: str) -> dsl.ContainerOp:
    path = "/tmp/outputs/out/data"
    return sh("produce", f"printf '%s' '{value}' > {path}", file_outputs={"out": path})


def loop_over_output(marker: str, value: str) -> Callable:
    """ParallelFor over the output `value` of an upstream step, and a step that runs after the loop."""

    @dsl.pipeline(name="semantics-loop-over-output")
    def pipeline():
        producer = _producer(value)
        with dsl.ParallelFor(producer.outputs["out"]) as item:
            body = sh("body", f"echo {item}; {_count(marker, 'body')}")
        sh("after-loop", _count(marker, "after-loop")).after(body)

    return pipeline


def numeric_condition(marker: str, value: str) -> Callable:
    """`dsl.Condition(output > 3)` on an upstream output `value`."""

    @dsl.pipeline(name="semantics-numeric-condition")
    def pipeline():
        producer = _producer(value)
        with dsl.Condition(producer.outputs["out"] > 3):
            sh("inside", _count(marker, "inside"))

    return pipeline


# ---------------------------------------------------------------------------------------- concurrency


def run_parallelism(marker: str, steps: int = 5, limit: int = 2) -> Callable:
    """`steps` independent steps under `spec.parallelism: limit`; each records its running interval."""

    @dsl.pipeline(name="semantics-run-parallelism")
    def pipeline():
        dsl.get_pipeline_conf().set_parallelism(limit)
        for index in range(steps):
            sh(f"step-{index}", _interval(marker, "intervals", OVERLAP_STEP_SECONDS))

    return pipeline


def loop_parallelism(marker: str, items: int = 5, limit: int = 2) -> Callable:
    """A ParallelFor of `items` iterations with parallelism `limit`; each records its running interval."""

    @dsl.pipeline(name="semantics-loop-parallelism")
    def pipeline():
        with dsl.ParallelFor(list(range(items)), parallelism=limit):
            sh("body", _interval(marker, "intervals", OVERLAP_STEP_SECONDS))

    return pipeline


def same_output_path(items: int = 4) -> Callable:
    """Concurrent steps writing the same in-step path: a loop and plain fan-out, each writes its own index."""

    path = "/tmp/outputs/out/data"

    def write(name: str, value: str) -> dsl.ContainerOp:
        # Write, wait while the others write the same path, and fail if the file changed meanwhile.
        script = (
            f"printf '%s' '{value}' > {path}; sleep {ITEM_WRITE_CHECK_SECONDS}; "
            f'[ "$(cat {path})" = \'{value}\' ]'
        )
        return sh(name, script, file_outputs={"out": path})

    @dsl.pipeline(name="semantics-same-output-path")
    def pipeline():
        with dsl.ParallelFor([str(i) for i in range(items)]) as item:
            write("loop-write", str(item))
        for index in range(items):
            write(f"fan-{index}", f"fan-{index}")

    return pipeline


# ------------------------------------------------------------------------------------- introspection


def introspection(marker: str) -> Callable:
    """One step printing a marker line, writing the run id (`{{workflow.uid}}`) and a file artifact."""

    @dsl.pipeline(name="semantics-introspection")
    def pipeline():
        sh(
            "introspect",
            f"echo stdout-line-{marker}; echo stderr-line-{marker} >&2; "
            f"printf '%s' '{dsl.RUN_ID_PLACEHOLDER}' > /tmp/outputs/uid/data; "
            f"printf 'artifact content %s\\n' '{marker}' > /tmp/outputs/report/data",
            file_outputs={"uid": "/tmp/outputs/uid/data", "report": "/tmp/outputs/report/data"},
        )

    return pipeline
