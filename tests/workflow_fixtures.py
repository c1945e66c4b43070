"""Small kfp 1.8 (v1 mode) pipelines compiled at test time into Argo Workflow documents (dicts).

Each pipeline exercises one compiler feature the typed graph must carry: parameters, output parameters,
file artifacts, conditions, loops (static, dicts, withParam, nested), an exit handler, retry, timeouts,
parallelism and display names.
"""

# No `from __future__ import annotations`: kfp reads the component annotations (OutputPath...) at runtime.
import warnings
from collections.abc import Callable
from typing import Any

from kfp import compiler, dsl
from kfp.components import InputPath, OutputPath, create_component_from_func

IMAGE = "python:3.10-slim"


def add(a: float, b: float) -> float:
    return a + b


def echo(text: str) -> str:
    return text


def flip() -> str:
    return "heads"


def produce_list() -> list:
    return [{"a": 1, "b": "x"}]


def write_file(text: str, out_path: OutputPath(str)):
    with open(out_path, "w") as handle:
        handle.write(text)


def read_file(source_path: InputPath(str)) -> str:
    with open(source_path) as handle:
        return handle.read()


add_op = create_component_from_func(add, base_image=IMAGE)
echo_op = create_component_from_func(echo, base_image=IMAGE)
flip_op = create_component_from_func(flip, base_image=IMAGE)
produce_list_op = create_component_from_func(produce_list, base_image=IMAGE)
write_file_op = create_component_from_func(write_file, base_image=IMAGE)
read_file_op = create_component_from_func(read_file, base_image=IMAGE)


@dsl.pipeline(name="params-and-outputs")
def params_pipeline(required: str, a: float = 1.5, b: float = 7.0, greeting: str = "hello"):
    first = add_op(a, b)
    second = add_op(first.output, 2)
    echo_op(greeting).after(second)
    echo_op(required)


@dsl.pipeline(name="Files Pipeline")
def files_pipeline(text: str = "hi"):
    written = write_file_op(text)
    read_file_op(written.outputs["out"])


@dsl.pipeline(name="conditions")
def conditions_pipeline():
    coin = flip_op()
    with dsl.Condition(coin.output == "heads"):
        echo_op("it was heads")
    total = add_op(1, 2)
    with dsl.Condition(total.output > 3):
        echo_op("big")


@dsl.pipeline(name="loops")
def loops_pipeline():
    with dsl.ParallelFor([1, 2, 3], parallelism=2) as number:
        echo_op(number)
    with dsl.ParallelFor([{"p": 1, "q": "z"}]) as record:
        echo_op(record.q)
    produced = produce_list_op()
    with dsl.ParallelFor(produced.output) as entry:
        echo_op(entry.a)


@dsl.pipeline(name="nested-loops")
def nested_loops_pipeline():
    with dsl.ParallelFor(["a", "b"]) as outer, dsl.ParallelFor([1, 2]) as inner:
        echo_op(outer).after(echo_op(inner))


@dsl.pipeline(name="exit-handler")
def exit_handler_pipeline():
    bye = echo_op("bye")
    with dsl.ExitHandler(bye):
        echo_op("body")


@dsl.pipeline(name="retry-timeout")
def retry_timeout_pipeline():
    flaky = echo_op("flaky")
    flaky.set_retry(3, policy="Always", backoff_duration="5s", backoff_factor=2, backoff_max_duration="1m")
    flaky.set_timeout(60)
    flaky.set_display_name("Flaky step")


def retry_timeout_conf() -> dsl.PipelineConf:
    conf = dsl.PipelineConf()
    conf.set_timeout(600)
    conf.set_parallelism(4)
    return conf


PIPELINES: "dict[str, tuple[Callable, Callable[[], dsl.PipelineConf] | None]]" = {
    "params": (params_pipeline, None),
    "files": (files_pipeline, None),
    "conditions": (conditions_pipeline, None),
    "loops": (loops_pipeline, None),
    "nested-loops": (nested_loops_pipeline, None),
    "exit-handler": (exit_handler_pipeline, None),
    "retry-timeout": (retry_timeout_pipeline, retry_timeout_conf),
}


def compiled(key: str) -> "dict[str, Any]":
    """The Argo Workflow document kfp 1.8.22 compiles PIPELINES[key] to."""
    function, conf = PIPELINES[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compiler.Compiler()._create_workflow(function, pipeline_conf=conf() if conf else None)
