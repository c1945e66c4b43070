"""Our own small kfp 1.8 (v1 mode) pipelines, compiled at test time into Argo Workflow packages.

Each pipeline exercises a different compiler feature (chained outputs, a parameter without default,
ParallelFor, Condition, ExitHandler, a plain ContainerOp) so uploads carry realistic workflows.
"""

from __future__ import annotations

import io
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

from kfp import compiler, dsl
from kfp.components import create_component_from_func

BASE_IMAGE = "python:3.10-slim"


def add(a: float, b: float) -> float:
    return a + b


def echo(text: str) -> str:
    print(text)
    return text


def flip_coin() -> str:
    import random

    return "heads" if random.randint(0, 1) == 0 else "tails"


add_op = create_component_from_func(add, base_image=BASE_IMAGE)
echo_op = create_component_from_func(echo, base_image=BASE_IMAGE)
flip_coin_op = create_component_from_func(flip_coin, base_image=BASE_IMAGE)


@dsl.pipeline(name="e2e-arithmetic", description="Adds numbers in a chain and echoes a greeting.")
def arithmetic_pipeline(a: float = 1.5, b: float = 7.0, greeting: str = "hello"):
    first = add_op(a, b)
    second = add_op(first.output, b)
    echo_op(greeting).after(second)


@dsl.pipeline(name="e2e-required-parameter", description="One parameter without a default.")
def required_parameter_pipeline(message: str, times: str = "twice"):
    echo_op(message)
    echo_op(times)


@dsl.pipeline(name="e2e-loop-and-condition")
def loop_and_condition_pipeline(items: str = '["a", "b", "c"]'):
    exit_task = echo_op("bye")
    with dsl.ExitHandler(exit_task):
        with dsl.ParallelFor(items) as item:
            echo_op(item)
        coin = flip_coin_op()
        with dsl.Condition(coin.output == "heads"):
            echo_op("it was heads")


@dsl.pipeline(name="e2e-container-op")
def container_op_pipeline():
    dsl.ContainerOp(name="say", image="alpine:3.19", command=["sh", "-c"], arguments=["echo hi"])


PIPELINES: dict[str, Callable] = {
    "arithmetic": arithmetic_pipeline,
    "required-parameter": required_parameter_pipeline,
    "loop-and-condition": loop_and_condition_pipeline,
    "container-op": container_op_pipeline,
}

# spec.arguments.parameters each pipeline compiles to (what the server reports as `parameters`).
EXPECTED_PARAMETERS: dict[str, list[dict[str, str]]] = {
    "arithmetic": [{"name": "a", "value": "1.5"}, {"name": "b", "value": "7.0"},
                   {"name": "greeting", "value": "hello"}],
    "required-parameter": [{"name": "message"}, {"name": "times", "value": "twice"}],
    "loop-and-condition": [{"name": "items", "value": '["a", "b", "c"]'}],
    "container-op": [],
}


def compile_pipeline(key: str, path: Path) -> Path:
    """Compile PIPELINES[key] to `path`; the compiler picks the format from the suffix (.yaml, .zip, .tar.gz)."""
    with warnings.catch_warnings():
        # ContainerOp's "use reusable components" nudge and its deprecated `.image` accessor.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        compiler.Compiler().compile(PIPELINES[key], str(path))
    return path


def zip_package(yaml_file: Path, path: Path, entry_name: str = "pipeline.yaml",
                extra: dict[str, str] | None = None) -> Path:
    """A zip holding the workflow under `entry_name` (and optional extra files after it)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(entry_name, yaml_file.read_text())
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return path


def tar_gz_package(yaml_file: Path, path: Path, entry_name: str = "pipeline.yaml",
                   extra: dict[str, str] | None = None) -> Path:
    """A gzipped tarball holding the extra files first and the workflow under `entry_name`."""
    with tarfile.open(path, "w:gz") as archive:
        for name, text in [*(extra or {}).items(), (entry_name, yaml_file.read_text())]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
