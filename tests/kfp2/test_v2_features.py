"""KFP v2 (IR) execution through the real kfp 2.x client: one small pipeline per feature, written with the
kfp 2.17.3 DSL here and compiled at test time (`create_run_from_pipeline_func`, or `Compiler` to a file),
plus the client flows around runs (upload + version + run_pipeline, terminate, retry, archive and delete).

The pipelines check themselves: a later step asserts what reached it and raises on a wrong value, so a run's
state and its tasks' states (`run_details.task_details`) tell whether data flowed. The feature runs are
submitted together by a module fixture and run side by side; each test waits for its own. Steps that keep
state between attempts or runs keep it under /var/tmp, named by the run id (`{{$.pipeline_job_uuid}}`) or
by a token of the test.
"""

# No `from __future__ import annotations`: the kfp compiler reads the components' annotations as types.
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple, Optional

import pytest
import requests
import yaml
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output, OutputPath
from kfp_server_api.exceptions import ApiException

pytestmark = pytest.mark.kfp2

FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
IMAGE = "python:3.11"
STATE_DIR = Path("/var/tmp")


# ---- components -------------------------------------------------------------------------------------------

@dsl.component(base_image=IMAGE)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE)
def expect_int(got: int, want: int):
    assert got == want, f"{got!r} != {want!r}"


@dsl.component(base_image=IMAGE)
def expect_str(got: str, want: str):
    assert got == want, f"{got!r} != {want!r}"


@dsl.component(base_image=IMAGE)
def must_not_run(why: str):
    raise RuntimeError(f"this task ran: {why}")


@dsl.component(base_image=IMAGE)
def typed_outputs() -> NamedTuple("Out", [("i", int), ("f", float), ("b", bool), ("l", list), ("d", dict)]):
    from collections import namedtuple

    return namedtuple("Out", "i f b l d")(7, 0.5, True, [1, "two"], {"k": [3, 4]})


@dsl.component(base_image=IMAGE)
def check_types(i: int, f: float, b: bool, lst: list, dct: dict, want_i: int, want_f: float, want_b: bool):
    assert type(i) is int and i == want_i, repr(i)
    assert type(f) is float and f == want_f, repr(f)
    assert type(b) is bool and b is want_b, repr(b)
    assert isinstance(lst, list) and lst == [1, "two"], repr(lst)
    assert isinstance(dct, dict) and dct == {"k": [3, 4]}, repr(dct)


@dsl.component(base_image=IMAGE)
def numbers(n: int) -> list[int]:
    return list(range(1, n + 1))


@dsl.component(base_image=IMAGE)
def square(x: int, gate: str, limit: int) -> int:
    """Checks that at most `limit` iterations run at once: each holds a file in `gate` while it runs."""
    import os
    import time

    os.makedirs(gate, exist_ok=True)
    mine = os.path.join(gate, str(x))
    open(mine, "w").close()
    try:
        running = len(os.listdir(gate))
        assert running <= limit, f"{running} iterations at once, limit {limit}"
        time.sleep(0.3)
    finally:
        os.remove(mine)
    return x * x


@dsl.component(base_image=IMAGE)
def write_item(x: int, out: Output[Dataset]):
    with open(out.path, "w") as file:
        file.write(f"item {x}")
    out.metadata["x"] = x


@dsl.component(base_image=IMAGE)
def gather(squares: list[int], items: Input[list[Dataset]], want_squares: list[int], want_items: list[str]):
    assert sorted(int(s) for s in squares) == sorted(want_squares), squares
    texts = []
    for item in items:
        with open(item.path) as file:
            texts.append(file.read())
        assert file.name and item.metadata["x"] in (1, 2, 3, 4), item.metadata
    assert sorted(texts) == sorted(want_items), texts


@dsl.component(base_image=IMAGE)
def final_status(status: dsl.PipelineTaskFinalStatus, want: str):
    assert status.state == want, status.state
    assert status.pipeline_job_resource_name, "no job resource name"


@dsl.component(base_image=IMAGE)
def fail_first_attempt(job: str) -> str:
    """Fails on its first attempt of a run; the attempts are lines of /var/tmp/kfp2e2e-retry-<run id>."""
    path = f"/var/tmp/kfp2e2e-retry-{job}"
    with open(path, "a") as file:
        file.write("attempt\n")
    with open(path) as file:
        attempts = len(file.readlines())
    if attempts < 2:
        raise RuntimeError("first attempt fails")
    return f"attempt {attempts}"


@dsl.component(base_image=IMAGE)
def always_fail(job: str):
    """Fails every attempt, counting them in /var/tmp/kfp2e2e-exhaust-<run id>."""
    with open(f"/var/tmp/kfp2e2e-exhaust-{job}", "a") as file:
        file.write("attempt\n")
    raise RuntimeError("always fails")


@dsl.component(base_image=IMAGE)
def read_imported(data: Input[Dataset], want: str):
    with open(data.path) as file:
        assert file.read() == want
    assert data.metadata.get("origin") == "test", data.metadata


@dsl.component(base_image=IMAGE)
def count_calls(token: str) -> int:
    """Appends a line to /var/tmp/kfp2e2e-cache-<token> each time it really runs (a cache hit does not)."""
    with open(f"/var/tmp/kfp2e2e-cache-{token}", "a") as file:
        file.write("ran\n")
    return len(token)


@dsl.component(base_image=IMAGE)
def make_artifacts(data: Output[Dataset], model: Output[Model], metrics: Output[Metrics]):
    with open(data.path, "w") as file:
        file.write("a,b\n1,2\n")
    data.metadata["rows"] = 1
    with open(model.path, "w") as file:
        file.write("weights")
    model.metadata["framework"] = "none"
    metrics.log_metric("accuracy", 0.9)


@dsl.component(base_image=IMAGE)
def use_artifacts(data: Input[Dataset], model: Input[Model], metrics: Input[Metrics]):
    with open(data.path) as file:
        assert file.read() == "a,b\n1,2\n"
    assert data.metadata["rows"] in (1, 1.0), data.metadata
    with open(model.path) as file:
        assert file.read() == "weights"
    assert model.metadata["framework"] == "none", model.metadata
    assert metrics.metadata["accuracy"] == 0.9, metrics.metadata
    assert data.uri and model.uri != data.uri


@dsl.container_component
def shell_shout(word: str, loud: OutputPath(str), lines: Output[Dataset]):
    return dsl.ContainerSpec(
        image="alpine", command=["sh", "-c"],
        args=['printf "%s!" "$0" | tr a-z A-Z > "$1" && printf "1\\n2\\n" > "$2"', word, loud, lines.path],
    )


@dsl.component(base_image=IMAGE)
def check_lines(lines: Input[Dataset]):
    with open(lines.path) as file:
        assert file.read().split() == ["1", "2"]


@dsl.component(base_image=IMAGE)
def sleep_after_start(seconds: int, job: str):
    """Creates /var/tmp/kfp2e2e-sleep-<run id>, then sleeps."""
    import time

    open(f"/var/tmp/kfp2e2e-sleep-{job}", "w").close()
    time.sleep(seconds)


@dsl.component(base_image=IMAGE)
def record_run(token: str) -> str:
    with open(f"/var/tmp/kfp2e2e-once-{token}", "a") as file:
        file.write("ran\n")
    return token


@dsl.component(base_image=IMAGE)
def needs_gate(token: str):
    import os

    assert os.path.exists(f"/var/tmp/kfp2e2e-gate-{token}"), "the gate is closed"


@dsl.container_component
def placeholders(word: str, data: Input[Dataset], report: OutputPath(str), maybe: Optional[str] = None):  # noqa: UP045 (the DSL reads Optional)
    """Writes `|`-separated what its placeholders became (sh -c: $0 is the report file)."""
    return dsl.ContainerSpec(
        image="alpine", command=["sh", "-c", 'printf "%s|" "$@" > "$0"'],
        args=[report, dsl.ConcatPlaceholder(["w=", word]),
              dsl.IfPresentPlaceholder(input_name="maybe", then=["m=", maybe], else_=["no-maybe"]),
              data.uri, data.path, dsl.PIPELINE_JOB_ID_PLACEHOLDER, dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
              dsl.PIPELINE_TASK_NAME_PLACEHOLDER, dsl.PIPELINE_TASK_ID_PLACEHOLDER],
    )


@dsl.component(base_image=IMAGE)
def check_placeholders(report: str, job: str, data: Input[Dataset]):
    parts = report.split("|")
    assert parts[:4] == ["w=hey", "no-maybe", data.uri, data.path], parts
    assert parts[4] == job and parts[5] and parts[6] == "fill in" and parts[7], parts
    assert "{{" not in report, report


@dsl.component(base_image=IMAGE)
def check_uri(data: Input[Dataset], prefix: str, mount: str):
    """An artifact under a `minio://` pipeline root is read at the path kfp maps it to (/minio/...)."""
    assert data.uri.startswith(prefix), data.uri
    assert data.path == mount + data.uri[len("minio://"):], (data.uri, data.path)
    with open(data.path) as file:
        assert file.read() == "a,b\n1,2\n"


# ---- pipelines --------------------------------------------------------------------------------------------

@dsl.pipeline(name="inner")
def inner(a: int) -> int:
    one = add(a=a, b=1).set_display_name("inner plus one")
    return add(a=one.output, b=10).set_display_name("inner plus ten").output


@dsl.pipeline(name="nested")
def nested(x: int = 1, want: int = 23):
    first = inner(a=x)
    second = inner(a=first.output)
    expect_int(got=second.output, want=want).set_display_name("check nested")


@dsl.pipeline(name="typed")
def typed(i: int, f: float, b: bool, lst: list, dct: dict):
    check_types(i=i, f=f, b=b, lst=lst, dct=dct, want_i=3, want_f=2.5, want_b=True).set_display_name("from arguments")
    out = typed_outputs()
    check_types(i=out.outputs["i"], f=out.outputs["f"], b=out.outputs["b"], lst=out.outputs["l"],
                dct=out.outputs["d"], want_i=7, want_f=0.5, want_b=True).set_display_name("from outputs")


@dsl.pipeline(name="conditions")
def conditions(n: int = 2):
    pick = add(a=n, b=18).set_display_name("pick")  # 20
    with dsl.If(pick.output > 50):
        must_not_run(why="20 > 50").set_display_name("if branch")
    with dsl.Elif(pick.output == 20):
        expect_int(got=pick.output, want=20).set_display_name("elif branch")
    with dsl.Else():
        must_not_run(why="else").set_display_name("else branch")
    with dsl.If(n == 5):
        must_not_run(why="n == 5").set_display_name("parameter branch")


@dsl.pipeline(name="loops")
def loops(n: int = 4, gate_root: str = "/var/tmp/kfp2e2e-gate"):
    with dsl.ParallelFor([1, 2, 3], parallelism=1) as x:
        static = square(x=x, gate=f"{gate_root}-static", limit=1).set_display_name("static square")
        static.set_caching_options(False)
    listed = numbers(n=n)
    with dsl.ParallelFor(listed.output, parallelism=2) as y:
        dynamic = square(x=y, gate=f"{gate_root}-dynamic", limit=2).set_display_name("upstream square")
        dynamic.set_caching_options(False)
        written = write_item(x=y)
    gather(squares=dsl.Collected(dynamic.output), items=dsl.Collected(written.outputs["out"]),
           want_squares=[1, 4, 9, 16], want_items=["item 1", "item 2", "item 3", "item 4"])
    gather(squares=dsl.Collected(static.output), items=dsl.Collected(written.outputs["out"]),
           want_squares=[1, 4, 9], want_items=["item 1", "item 2", "item 3", "item 4"]) \
        .set_display_name("gather static")


@dsl.pipeline(name="exit-handler")
def exit_handler():
    status = final_status(want="SUCCEEDED").set_display_name("final status")
    with dsl.ExitHandler(status):
        add(a=1, b=2).set_display_name("body")


@dsl.pipeline(name="retries")
def retries():
    flaky = fail_first_attempt(job=dsl.PIPELINE_JOB_ID_PLACEHOLDER).set_display_name("flaky")
    flaky.set_retry(num_retries=2, backoff_duration="0s")
    flaky.set_caching_options(False)
    expect_str(got=flaky.output, want="attempt 2").set_display_name("after retry")


@dsl.pipeline(name="failing-body")
def failing_body():
    status = final_status(want="FAILED").set_display_name("final status")
    with dsl.ExitHandler(status):
        failing = always_fail(job=dsl.PIPELINE_JOB_ID_PLACEHOLDER).set_display_name("exhausted")
        failing.set_retry(num_retries=1, backoff_duration="0s")
        failing.set_caching_options(False)
        must_not_run(why="upstream failed").after(failing).set_display_name("after failure")


@dsl.pipeline(name="artifacts")
def artifacts():
    made = make_artifacts()
    use_artifacts(data=made.outputs["data"], model=made.outputs["model"], metrics=made.outputs["metrics"])


@dsl.pipeline(name="container")
def container():
    shout = shell_shout(word="hey").set_display_name("shout")
    expect_str(got=shout.outputs["loud"], want="HEY!").set_display_name("check loud")
    check_lines(lines=shout.outputs["lines"])


def importing(uri: str) -> Any:
    @dsl.pipeline(name="importer")
    def pipeline():
        imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=False,
                                metadata={"origin": "test"})
        read_imported(data=imported.output, want="imported text")

    return pipeline


@dsl.pipeline(name="caching")
def caching(token: str):
    counted = count_calls(token=token).set_display_name("counted")
    counted.set_caching_options(True)
    expect_int(got=counted.output, want=32).set_display_name("check count")


@dsl.pipeline(name="caching-off")
def caching_off(token: str):
    counted = count_calls(token=token).set_display_name("counted")
    counted.set_caching_options(False)


@dsl.pipeline(name="placeholders")
def placeholder_pipeline():
    data = make_artifacts()
    filled = placeholders(word="hey", data=data.outputs["data"]).set_display_name("fill in")
    check_placeholders(report=filled.outputs["report"], job=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                       data=data.outputs["data"])


@dsl.pipeline(name="pipeline-root")
def pipeline_root():
    made = make_artifacts()
    check_uri(data=made.outputs["data"], prefix="minio://kfp2e2e/root/", mount="/minio/")


@dsl.pipeline(name="sleeper")
def sleeper(seconds: int = 60):
    sleep_after_start(seconds=seconds, job=dsl.PIPELINE_JOB_ID_PLACEHOLDER).set_caching_options(False)


@dsl.pipeline(name="retry-flow")
def retry_flow(token: str):
    once = record_run(token=token).set_display_name("once")
    once.set_caching_options(False)
    needs_gate(token=once.output).set_display_name("gated").set_caching_options(False)


# ---- helpers ----------------------------------------------------------------------------------------------

def wait_until(client: Any, run_id: str, states: set, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        run = client.get_run(run_id)
        if run.state in states:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is {run.state}, not one of {states}"
        time.sleep(0.2)


def tasks_of(run: Any) -> dict[str, list[str]]:
    """Task states by display name."""
    states: dict[str, list[str]] = {}
    for task in run.run_details.task_details or []:
        states.setdefault(task.display_name, []).append(task.state)
    return states


def processes_naming(text: str) -> list[str]:
    """The command lines of this host's processes that contain `text` (a step's argv holds its inputs)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv:
            found.append(argv[:200])
    return found


def summary(run: Any) -> str:
    return f"{run.state} {run.error}: {sorted(tasks_of(run).items())}"


def start(client: Any, experiment: str, name: str, pipeline: Any, arguments: dict | None = None,
          **options: Any) -> str:
    return client.create_run_from_pipeline_func(pipeline, arguments=arguments or {}, run_name=f"{experiment}-{name}",
                                                experiment_name=experiment, **options).run_id


@pytest.fixture(scope="module")
def experiment() -> str:
    return f"features-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def imported_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = STATE_DIR / f"kfp2e2e-import-{uuid.uuid4().hex[:12]}"
    directory.mkdir()
    (directory / "data.txt").write_text("imported text")
    return str(directory / "data.txt")


@pytest.fixture(scope="module")
def cache_token() -> str:
    return uuid.uuid4().hex  # 32 characters: count_calls returns 32


@pytest.fixture(scope="module")
def runs(client: Any, experiment: str, imported_uri: str, cache_token: str) -> dict[str, str]:
    """Run id by feature: every feature pipeline submitted before any test waits."""
    gate = str(STATE_DIR / f"kfp2e2e-gate-{uuid.uuid4().hex[:12]}")
    return {
        "nested": start(client, experiment, "nested", nested, {"x": 2, "want": 24}),
        "typed": start(client, experiment, "typed", typed,
                       {"i": 3, "f": 2.5, "b": True, "lst": [1, "two"], "dct": {"k": [3, 4]}}),
        "conditions": start(client, experiment, "conditions", conditions),
        "loops": start(client, experiment, "loops", loops, {"gate_root": gate}),
        "exit_handler": start(client, experiment, "exit-handler", exit_handler),
        "retries": start(client, experiment, "retries", retries),
        "failing_body": start(client, experiment, "failing-body", failing_body),
        "artifacts": start(client, experiment, "artifacts", artifacts),
        "container": start(client, experiment, "container", container),
        "importer": start(client, experiment, "importer", importing(imported_uri)),
        "cache_first": start(client, experiment, "cache-first", caching, {"token": cache_token}),
        "placeholders": start(client, experiment, "placeholders", placeholder_pipeline),
        # No cache: make-artifacts of another run (under the default root) would serve its outputs.
        "pipeline_root": start(client, experiment, "pipeline-root", pipeline_root,
                               pipeline_root="minio://kfp2e2e/root", enable_caching=False),
    }


def finished(client: Any, runs: dict[str, str], feature: str) -> Any:
    return wait_until(client, runs[feature], FINAL)


# ---- features ---------------------------------------------------------------------------------------------

def test_nested_pipelines_and_inputs(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "nested")
    assert run.state == "SUCCEEDED", summary(run)
    tasks = tasks_of(run)
    # The sub-pipeline runs twice, each of its tasks with it: 2 -> 13 -> 24.
    assert tasks["inner plus one"] == ["SUCCEEDED"] * 2 and tasks["inner plus ten"] == ["SUCCEEDED"] * 2
    assert tasks["check nested"] == ["SUCCEEDED"]
    # Each inner task is a child of its sub-pipeline's DAG task.
    by_id = {task.task_id: task for task in run.run_details.task_details}
    parents = [by_id[task.parent_task_id].display_name for task in run.run_details.task_details
               if task.display_name == "inner plus one"]
    assert sorted(parents) == ["inner", "inner-2"]
    assert run.runtime_config.parameters == {"x": 2, "want": 24}


def test_typed_parameters(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "typed")
    assert run.state == "SUCCEEDED", summary(run)
    tasks = tasks_of(run)
    assert tasks["from arguments"] == ["SUCCEEDED"] and tasks["from outputs"] == ["SUCCEEDED"]


def test_if_elif_else(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "conditions")
    assert run.state == "SUCCEEDED", summary(run)
    tasks = tasks_of(run)
    assert tasks["pick"] == ["SUCCEEDED"] and tasks["elif branch"] == ["SUCCEEDED"]
    for untaken in ("if branch", "else branch", "parameter branch"):
        assert set(tasks.get(untaken, [])) <= {"SKIPPED"}, summary(run)


def test_parallel_for_with_parallelism_and_collected(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "loops")
    assert run.state == "SUCCEEDED", summary(run)
    tasks = tasks_of(run)
    assert Counter(tasks["static square"]) == {"SUCCEEDED": 3}
    assert Counter(tasks["upstream square"]) == {"SUCCEEDED": 4}
    assert Counter(tasks["write-item"]) == {"SUCCEEDED": 4}
    assert tasks["gather"] == ["SUCCEEDED"] and tasks["gather static"] == ["SUCCEEDED"]


def test_exit_handler_gets_the_final_status(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "exit_handler")
    assert run.state == "SUCCEEDED", summary(run)
    tasks = tasks_of(run)
    assert tasks["body"] == ["SUCCEEDED"] and tasks["final status"] == ["SUCCEEDED"]


def test_a_retried_task_succeeds_on_its_second_attempt(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "retries")
    assert run.state == "SUCCEEDED", summary(run)
    assert tasks_of(run)["after retry"] == ["SUCCEEDED"]
    assert tasks_of(run)["flaky"] == ["SUCCEEDED"], summary(run)  # one task: the state of its last attempt
    attempts = STATE_DIR / f"kfp2e2e-retry-{run.run_id}"  # the job uuid placeholder is the run id
    assert attempts.read_text() == "attempt\nattempt\n"
    attempts.unlink()


def test_spent_retries_fail_the_body_and_the_exit_task_sees_it(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "failing_body")
    assert run.state == "FAILED" and run.error is not None, summary(run)
    tasks = tasks_of(run)
    assert tasks["exhausted"] == ["FAILED"], summary(run)
    assert set(tasks.get("after failure", [])) <= {"SKIPPED"}
    assert tasks["final status"] == ["SUCCEEDED"]  # it asserted the body's state: FAILED
    attempts = STATE_DIR / f"kfp2e2e-exhaust-{run.run_id}"
    assert attempts.read_text() == "attempt\n" * 2  # the first attempt and one retry
    attempts.unlink()


def test_output_artifacts_with_metadata(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "artifacts")
    assert run.state == "SUCCEEDED", summary(run)
    made = next(task for task in run.run_details.task_details if task.display_name == "make-artifacts")
    assert made.state == "SUCCEEDED" and set(made.outputs or {}) >= {"data", "model", "metrics"}
    assert tasks_of(run)["use-artifacts"] == ["SUCCEEDED"]


def test_container_component(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "container")
    assert run.state == "SUCCEEDED", summary(run)
    tasks = tasks_of(run)
    assert tasks["shout"] == ["SUCCEEDED"] and tasks["check loud"] == ["SUCCEEDED"]
    assert tasks["check-lines"] == ["SUCCEEDED"]


def test_importer(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "importer")
    assert run.state == "SUCCEEDED", summary(run)
    assert tasks_of(run)["read-imported"] == ["SUCCEEDED"]


def test_caching_reuses_outputs_unless_turned_off(client: Any, runs: dict[str, str], experiment: str,
                                                  cache_token: str) -> None:
    first = finished(client, runs, "cache_first")
    assert first.state == "SUCCEEDED", summary(first)
    calls = STATE_DIR / f"kfp2e2e-cache-{cache_token}"
    assert calls.read_text() == "ran\n"
    # The same task and inputs again: a cache hit, shown as SUCCEEDED, that does not run the step.
    second = wait_until(client, start(client, experiment, "cache-second", caching, {"token": cache_token}), FINAL)
    assert second.state == "SUCCEEDED", summary(second)
    assert tasks_of(second)["counted"] == ["SUCCEEDED"] and tasks_of(second)["check count"] == ["SUCCEEDED"]
    assert calls.read_text() == "ran\n"
    # Caching off for the run: the step runs again.
    third = wait_until(client, start(client, experiment, "cache-off", caching, {"token": cache_token},
                                     enable_caching=False), FINAL)
    assert third.state == "SUCCEEDED", summary(third)
    assert calls.read_text() == "ran\nran\n"
    # Caching off for the task (its cache key is the same as before).
    fourth = wait_until(client, start(client, experiment, "cache-task-off", caching_off, {"token": cache_token}),
                        FINAL)
    assert fourth.state == "SUCCEEDED", summary(fourth)
    assert calls.read_text() == "ran\nran\nran\n"
    calls.unlink()


def test_every_placeholder_of_a_container_component(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "placeholders")
    assert run.state == "SUCCEEDED", summary(run)
    assert tasks_of(run)["fill in"] == ["SUCCEEDED"] and tasks_of(run)["check-placeholders"] == ["SUCCEEDED"]


def test_a_minio_pipeline_root_maps_to_local_paths(client: Any, runs: dict[str, str]) -> None:
    run = finished(client, runs, "pipeline_root")
    assert run.state == "SUCCEEDED", summary(run)
    assert run.runtime_config.pipeline_root == "minio://kfp2e2e/root"
    assert tasks_of(run)["check-uri"] == ["SUCCEEDED"]


# ---- client flows -----------------------------------------------------------------------------------------

def test_upload_pipeline_and_version_then_run_pipeline(client: Any, experiment: str, tmp_path: Path) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    compiler.Compiler().compile(nested, str(first))
    compiler.Compiler().compile(container, str(second))
    pipeline = client.upload_pipeline(str(first), pipeline_name=f"{experiment}-uploaded")
    version = client.upload_pipeline_version(str(second), pipeline_version_name=f"{experiment}-v2",
                                             pipeline_id=pipeline.pipeline_id)
    assert version.pipeline_id == pipeline.pipeline_id
    versions = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    assert {v.pipeline_version_id for v in versions} >= {version.pipeline_version_id} and len(versions) == 2
    exp = client.create_experiment(experiment)
    assert client.create_experiment(experiment).experiment_id == exp.experiment_id  # one experiment
    run = client.run_pipeline(exp.experiment_id, f"{experiment}-from-version", pipeline_id=pipeline.pipeline_id,
                              version_id=version.pipeline_version_id)
    done = client.wait_for_run_completion(run.run_id, timeout=120, sleep_duration=0.2)
    assert done.state == "SUCCEEDED", summary(done)
    assert tasks_of(done)["shout"] == ["SUCCEEDED"]  # the version's spec, not the pipeline's first one
    assert done.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    client.delete_run(run.run_id)
    client.delete_pipeline_version(pipeline.pipeline_id, version.pipeline_version_id)
    client.delete_pipeline_version(pipeline.pipeline_id, versions[0].pipeline_version_id
                                   if versions[0].pipeline_version_id != version.pipeline_version_id
                                   else versions[1].pipeline_version_id)
    client.delete_pipeline(pipeline.pipeline_id)
    with pytest.raises(ApiException) as caught:
        client.get_pipeline(pipeline.pipeline_id)
    assert caught.value.status == 404


def test_terminate_a_running_ir_run(client: Any, server_url: str, experiment: str) -> None:
    run_id = start(client, experiment, "sleeper", sleeper, {"seconds": 60})
    pid_file = STATE_DIR / f"kfp2e2e-sleep-{run_id}"
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the step did not start"
        time.sleep(0.1)
    assert client.get_run(run_id).state == "RUNNING"
    client.terminate_run(run_id)
    assert client.get_run(run_id).state in {"CANCELING", "CANCELED"}
    ended = wait_until(client, run_id, FINAL, seconds=30)
    assert ended.state == "CANCELED", summary(ended)
    assert [status.state for status in ended.state_history][-1] == "CANCELED"
    pid_file.unlink()
    assert processes_naming(run_id) == []  # the step's processes are gone
    v1 = requests.get(f"{server_url}/apis/v1beta1/runs/{run_id}", timeout=10).json()
    assert v1["run"]["status"] == "Failed"  # the v1beta1 view of a terminated run


def test_retry_of_a_failed_run_keeps_its_succeeded_tasks(client: Any, experiment: str) -> None:
    token = uuid.uuid4().hex[:12]
    once, gate = STATE_DIR / f"kfp2e2e-once-{token}", STATE_DIR / f"kfp2e2e-gate-{token}"
    run_id = start(client, experiment, "retry-flow", retry_flow, {"token": token})
    failed = wait_until(client, run_id, FINAL)
    assert failed.state == "FAILED", summary(failed)
    assert tasks_of(failed)["once"] == ["SUCCEEDED"] and tasks_of(failed)["gated"] == ["FAILED"]
    gate.touch()
    try:
        client._run_api.run_service_retry_run(run_id)  # the client has no retry method: its generated API
        retried = wait_until(client, run_id, FINAL)
    finally:
        gate.unlink()
    assert retried.state == "SUCCEEDED", summary(retried)
    assert tasks_of(retried)["once"] == ["SUCCEEDED"] and tasks_of(retried)["gated"] == ["SUCCEEDED"]
    assert once.read_text() == "ran\n"  # not run again
    once.unlink()


def test_archive_and_delete_runs_and_experiments(client: Any, experiment: str) -> None:
    exp = client.create_experiment(f"{experiment}-archive")
    result = client.create_run_from_pipeline_func(exit_handler, run_name=f"{experiment}-archived",
                                                  experiment_id=exp.experiment_id)
    done = wait_until(client, result.run_id, FINAL)
    assert done.state == "SUCCEEDED", summary(done)
    client.archive_run(result.run_id)
    assert client.get_run(result.run_id).storage_state == "ARCHIVED"
    archived = client.list_runs(experiment_id=exp.experiment_id, filter=None).runs or []
    assert [run.storage_state for run in archived] == ["ARCHIVED"]
    client.unarchive_run(result.run_id)
    assert client.get_run(result.run_id).storage_state == "AVAILABLE"
    client.archive_experiment(exp.experiment_id)
    assert client.get_experiment(experiment_id=exp.experiment_id).storage_state == "ARCHIVED"
    assert client.get_run(result.run_id).storage_state == "ARCHIVED"  # archiving an experiment archives its runs
    client.delete_run(result.run_id)
    with pytest.raises(ApiException) as caught:
        client.get_run(result.run_id)
    assert caught.value.status == 404
    client.delete_experiment(exp.experiment_id)
    with pytest.raises(ApiException) as caught:
        client.get_experiment(experiment_id=exp.experiment_id)
    assert caught.value.status == 404


def test_list_runs_pages_through_the_feature_runs(client: Any, runs: dict[str, str], experiment: str) -> None:
    exp = client.get_experiment(experiment_name=experiment)
    seen, token = [], ""
    while True:
        page = client.list_runs(experiment_id=exp.experiment_id, page_size=4, page_token=token,
                                sort_by="created_at desc")
        assert len(page.runs) <= 4 and page.total_size >= len(runs)
        seen += [run.run_id for run in page.runs]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) and set(seen) >= set(runs.values())


# A one-step Argo workflow (as kfp 1.8 compiles): the kfp 2.x compiler makes no Argo.
ARGO_NAP = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "nap-"},
    "spec": {"entrypoint": "nap", "templates": [
        {"name": "nap", "container": {"image": "alpine", "command": ["sh", "-c", "sleep 60"]}}]},
}


def test_a_v1_and_a_v2_run_side_by_side(client: Any, experiment: str, tmp_path: Path) -> None:
    path = tmp_path / "nap.yaml"
    path.write_text(yaml.safe_dump(ARGO_NAP))
    pipeline = client.upload_pipeline(str(path), pipeline_name=f"{experiment}-argo")  # the client parses no Argo
    exp = client.create_experiment(experiment)
    version = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0]
    argo = client.run_pipeline(exp.experiment_id, f"{experiment}-argo", pipeline_id=pipeline.pipeline_id,
                               version_id=version.pipeline_version_id).run_id
    ir_run = start(client, experiment, "beside-argo", exit_handler)
    beside = wait_until(client, ir_run, FINAL)
    assert beside.state == "SUCCEEDED", summary(beside)
    assert client.get_run(argo).state == "RUNNING"  # the v1 run is still sleeping: they ran side by side
    client.terminate_run(argo)
    assert wait_until(client, argo, FINAL, seconds=30).state == "CANCELED"
