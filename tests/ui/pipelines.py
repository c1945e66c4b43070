"""kfp 1.8 pipelines for the UI tests: `sh -c` ContainerOps, fast to run."""

from __future__ import annotations

import warnings
from pathlib import Path

from kfp import compiler, dsl

METRICS_FILE = "/tmp/outputs/mlpipeline-metrics/data"


def sh(name: str, script: str, file_outputs: dict[str, str] | None = None) -> dsl.ContainerOp:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return dsl.ContainerOp(name=name, image="alpine", command=["sh", "-c", script], file_outputs=file_outputs or {})


@dsl.pipeline(name="ui-train")
def train_pipeline(accuracy: float = 0.5, epochs: int = 3):
    """Two steps: `train` prints to its log and reports an accuracy metric (the parameter), then `evaluate`."""
    train = sh(
        "train",
        f"echo training for {epochs} epochs; mkdir -p /tmp/outputs/mlpipeline-metrics; "
        f"printf '{{\"metrics\": [{{\"name\": \"accuracy\", \"numberValue\": {accuracy}, \"format\": \"RAW\"}}]}}' "
        f"> {METRICS_FILE}; echo done",
        file_outputs={"mlpipeline-metrics": METRICS_FILE},
    )
    sh("evaluate", "echo evaluating").after(train)


@dsl.pipeline(name="ui-fail")
def failing_pipeline():
    """One step that prints two lines and fails."""
    sh("explode", "echo about to fail; echo the second line; exit 3")


def compile_to(pipeline: object, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        compiler.Compiler().compile(pipeline, str(path))
    return path


@dsl.pipeline(name="ui-slow")
def slow_pipeline():
    """One step that prints a line, waits, prints another: its log grows while the page is open."""
    sh("slow", "echo first line; sleep 4; echo second line; sleep 1")


def loop_and_retry(marker: str) -> object:
    """A loop over three items, and a step that fails on its first attempt and is retried (its attempts are
    counted in /var/tmp/<marker>)."""

    @dsl.pipeline(name="ui-loop-retry")
    def pipeline(items: str = '["x", "y", "z"]'):
        with dsl.ParallelFor(items) as item:
            sh("item", f"echo item {item}")
        counter = f"/var/tmp/{marker}"
        sh("flaky", f"echo attempt >> {counter}; n=$(wc -l < {counter}); echo attempt $n; [ $n -ge 2 ]").set_retry(2)

    return pipeline


def gate_path(marker: str, gate: int) -> Path:
    return Path("/var/tmp", f"{marker}-gate-{gate}")


def gated_pipeline(marker: str) -> object:
    """Two steps in a chain, each waiting for its gate file (/var/tmp/<marker>-gate-1, -2), which the test
    creates: the run moves on when the test says so, no sleeps to guess."""
    def wait(gate: int) -> str:
        path = gate_path(marker, gate)
        return f"echo waiting for gate {gate}; while [ ! -e {path} ]; do sleep 0.2; done; echo gate {gate} open"

    @dsl.pipeline(name="ui-gated")
    def pipeline():
        first = sh("wait-first", wait(1))
        sh("wait-second", wait(2)).after(first)

    return pipeline


def showcase(marker: str) -> object:
    """prepare -> a loop of three `train` steps -> a `flaky` step that fails once and is retried (its attempts
    counted in /var/tmp/<marker>) -> report: the run page's screenshot in docs/ui.md."""

    @dsl.pipeline(name="ui-showcase")
    def pipeline(models: str = '["small", "medium", "large"]'):
        prepare = sh("prepare", "echo preparing the data")
        with dsl.ParallelFor(models) as model:
            train = sh("train", f"echo training {model}").after(prepare)
        counter = f"/var/tmp/{marker}"
        flaky = sh("upload", f"echo attempt >> {counter}; n=$(wc -l < {counter}); echo upload attempt $n; "
                             "[ $n -ge 2 ] || { echo the store was busy; exit 1; }").set_retry(2)
        flaky.after(train)
        sh("report", "echo all models trained and uploaded").after(flaky)

    return pipeline
