"""KFP v2 (IR) runs executed in-process (real step processes, the real executor, each database): created
from a pipeline spec sent as v1beta1 `workflow_manifest`, parameters typed, outputs flowing between
container components, artifacts through the artifact store, and honest end states."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from tests import ir_pipelines as ir
from tests.ir_pipelines import RUNS, by_display, create_run, phases, run_to_the_end


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


# -- a: creation -----------------------------------------------------------------------------------------


def _echo_pipeline() -> dict:
    echo = ir.sh_component("echo", 'echo "$0"', ["{{$.inputs.parameters['word']}}"],
                           inputs={"parameters": ir.parameters(word="STRING")})
    return ir.pipeline("echo", [echo], {
        "dag": {"tasks": {"echo": ir.task("comp-echo", parameters={"word": ir.pipeline_input("word")})}},
        "inputDefinitions": {"parameters": ir.parameters(word=("STRING", "hi"), n=("NUMBER_INTEGER", 2.0))},
    })


def test_an_ir_run_is_created_with_typed_parameters_and_defaults(client: FlaskClient) -> None:
    created = create_run(client, _echo_pipeline(), [{"name": "n", "value": "7"}])
    run = created["run"]
    assert run["pipeline_spec"]["parameters"] == [{"name": "n", "value": "7"}]
    document = json.loads(created["pipeline_runtime"]["workflow_manifest"])
    assert document["runtime_config"]["parameter_values"] == {"n": 7, "word": "hi"}
    assert document["pipeline_spec"]["pipelineInfo"] == {"name": "echo"}
    assert document["metadata"]["name"].startswith("echo-")


@pytest.mark.parametrize(("parameters", "message"), [
    ([{"name": "nope", "value": "1"}], "Unrecognized input parameter: nope"),
    ([{"name": "n", "value": "2.5"}], "is not a whole number"),
])
def test_bad_parameters_of_an_ir_run_are_refused(client: FlaskClient, parameters: list, message: str) -> None:
    response = client.post(RUNS, json={"name": "r", "pipeline_spec": {
        "workflow_manifest": ir.manifest(_echo_pipeline()), "parameters": parameters}})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.get_json()["error"]


def test_an_ir_run_can_come_as_pipeline_manifest(client: FlaskClient) -> None:
    response = client.post(RUNS, json={"name": "r", "pipeline_spec": {
        "pipeline_manifest": ir.manifest(_echo_pipeline()), "parameters": [{"name": "word", "value": "yo"}]}})
    assert response.status_code == 200, response.get_data(as_text=True)
    status, nodes = ir.wait_for(client, response.get_json()["run"]["id"])
    assert status == "Succeeded"
    assert by_display(nodes)["echo"]["inputs"] == {"parameters": [{"name": "word", "value": "yo"}]}


def test_an_invalid_ir_spec_is_refused(client: FlaskClient) -> None:
    spec = _echo_pipeline()
    spec["root"]["dag"]["tasks"]["echo"]["componentRef"]["name"] = "comp-missing"
    response = client.post(RUNS, json={"name": "r", "pipeline_spec": {"workflow_manifest": ir.manifest(spec)}})
    assert response.status_code == 400
    assert "Invalid IR spec format" in response.get_json()["error"]


# -- b: parameters between container components ----------------------------------------------------------


def _typed_pipeline() -> dict:
    produce = ir.sh_component(
        "produce",
        'mkdir -p "$(dirname "$5")"; printf "%s|%s|%s|%s|%s" "$0" "$1" "$2" "$3" "$4" > "$5"; '
        'printf "%s" $(( $0 + 4 )) > "$6"; printf "%s" "$2" > "$7"; printf "%s" "[$0, 2.5]" > "$8"',
        ["{{$.inputs.parameters['n']}}", "{{$.inputs.parameters['r']}}", "{{$.inputs.parameters['b']}}",
         "{{$.inputs.parameters['l']}}", "{{$.inputs.parameters['s']}}",
         "{{$.outputs.parameters['text'].output_file}}", "{{$.outputs.parameters['total'].output_file}}",
         "{{$.outputs.parameters['flag'].output_file}}", "{{$.outputs.parameters['pair'].output_file}}"],
        inputs={"parameters": ir.parameters(n="NUMBER_INTEGER", r="NUMBER_DOUBLE", b="BOOLEAN", l="LIST",
                                            s="STRUCT")},
        outputs={"parameters": ir.parameters(text="STRING", total="NUMBER_INTEGER", flag="BOOLEAN", pair="LIST")},
    )
    check = ir.sh_component("check", ir.EXPECT, ["{{$.inputs.parameters['got']}}", "{{$.inputs.parameters['want']}}"],
                            inputs={"parameters": ir.parameters(got="STRING", want="STRING")})
    check_number = ir.sh_component(
        "check-number", ir.EXPECT, ["{{$.inputs.parameters['got']}}", "{{$.inputs.parameters['want']}}"],
        inputs={"parameters": ir.parameters(got="NUMBER_INTEGER", want="STRING")})
    check_list = ir.sh_component(
        "check-list", ir.EXPECT, ["{{$.inputs.parameters['got']}}", "{{$.inputs.parameters['want']}}"],
        inputs={"parameters": ir.parameters(got="LIST", want="STRING")})
    return ir.pipeline("typed", [produce, check, check_number, check_list], {
        "dag": {"tasks": {
            "produce": ir.task("comp-produce", parameters={
                "n": ir.pipeline_input("n"), "r": ir.const(0.5), "b": ir.pipeline_input("b"),
                "l": ir.const([1, "a"]), "s": ir.pipeline_input("s")}),
            "check-text": ir.task("comp-check", display="check-text", parameters={
                "got": ir.output_of("produce", "text"), "want": ir.pipeline_input("want_text")}),
            "check-total": ir.task("comp-check-number", display="check-total", parameters={
                "got": ir.output_of("produce", "total"), "want": ir.pipeline_input("want_total")}),
            "check-pair": ir.task("comp-check-list", display="check-pair", parameters={
                "got": ir.output_of("produce", "pair"), "want": ir.pipeline_input("want_pair")}),
        }},
        "inputDefinitions": {"parameters": ir.parameters(
            n=("NUMBER_INTEGER", 3.0), b=("BOOLEAN", True), s=("STRUCT", {"k": 1.0}),
            want_text="STRING", want_total="STRING", want_pair="STRING")},
    })


def test_typed_parameters_flow_between_container_components(client: FlaskClient) -> None:
    status, nodes = run_to_the_end(client, _typed_pipeline(), [
        {"name": "want_text", "value": '5|0.5|false|[1,"a"]|{"k":1.0}'},
        {"name": "want_total", "value": "9"}, {"name": "want_pair", "value": "[5,2.5]"},
        {"name": "n", "value": "5.0"}, {"name": "b", "value": "false"},
    ])
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    assert phases(nodes) == {"produce": "Succeeded", "check-text": "Succeeded", "check-total": "Succeeded",
                             "check-pair": "Succeeded"}
    produced = {p["name"]: p["value"] for p in by_display(nodes)["produce"]["outputs"]["parameters"]}
    assert produced == {"text": '5|0.5|false|[1,"a"]|{"k":1.0}', "total": "9", "flag": "false",
                        "pair": "[5,2.5]"}


def test_a_failed_task_fails_the_run_and_its_dependents_do_not_run(client: FlaskClient) -> None:
    fail = ir.sh_component("fail", "echo boom; exit 3", [])
    after = ir.sh_component("after", "echo should not run", [])
    aside = ir.sh_component("aside", "echo independent", [])
    spec = ir.pipeline("failing", [fail, after, aside], {"dag": {"tasks": {
        "fail": ir.task("comp-fail"), "after": ir.task("comp-after", after=["fail"]), "aside": ir.task("comp-aside"),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Failed"
    assert phases(nodes) == {"fail": "Failed", "after": "Omitted", "aside": "Succeeded"}
    assert by_display(nodes)["fail"]["message"] == "Error (exit code 3)"


# -- c: artifacts ----------------------------------------------------------------------------------------


def test_artifacts_are_stored_and_placed_at_the_path_their_uri_maps_to(client: FlaskClient, app: Flask) -> None:
    run_id = create_run(client, ir.artifact_passing())["run"]["id"]
    status, nodes = ir.wait_for(client, run_id)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    write = by_display(nodes)["write"]
    (artifact,) = write["outputs"]["artifacts"]
    assert artifact["name"] == "data"
    assert artifact["uri"] == f"minio://mlpipeline/v2/artifacts/{run_id}/{write['id']}/data"
    assert artifact["s3"] == {"key": f"artifacts/{run_id}/{write['id']}/data.tgz"}
    read = by_display(nodes)["read"]
    assert read["inputs"]["artifacts"] == [{"name": "data", **artifact}]
    # The stored artifact is what ReadArtifact serves (a .tgz of the file, as for v1 outputs).
    response = client.get(f"{RUNS}/{run_id}/nodes/{write['id']}/artifacts/data:read")
    assert response.status_code == 200 and response.get_json()["data"]


# -- lifecycle: terminate, retry, importer ---------------------------------------------------------------


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_terminating_an_ir_run_stops_its_steps(client: FlaskClient) -> None:
    marker = f"kfp-backend-ir-terminate-{uuid.uuid4().hex[:8]}"
    slow = ir.sh_component("slow", f"sleep 30; echo {marker}", [])
    after = ir.sh_component("after", "echo never", [])
    spec = ir.pipeline("slow", [slow, after], {"dag": {"tasks": {
        "slow": ir.task("comp-slow"), "after": ir.task("comp-after", after=["slow"])}}})
    run_id = create_run(client, spec)["run"]["id"]
    deadline = time.monotonic() + 30
    while not _processes_with(marker):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    assert client.post(f"{RUNS}/{run_id}/terminate").status_code == 200
    status, nodes = ir.wait_for(client, run_id, timeout=30)
    assert status == "Failed"
    assert phases(nodes) == {"slow": "Failed", "after": "Omitted"}
    assert _processes_with(marker) == []


def test_retrying_an_ir_run_keeps_its_succeeded_tasks(client: FlaskClient) -> None:
    trace = Path(f"/var/tmp/kfp-backend-ir-retry-{uuid.uuid4().hex[:8]}")
    once = ir.sh_component("once", f'echo ran >> "{trace}.count"', [])
    gate = ir.sh_component("gate", f'test -e "{trace}.open"', [])
    spec = ir.pipeline("retried", [once, gate], {"dag": {"tasks": {
        "once": ir.task("comp-once"), "gate": ir.task("comp-gate", after=["once"])}}})
    try:
        run_id = create_run(client, spec)["run"]["id"]
        status, nodes = ir.wait_for(client, run_id)
        assert (status, phases(nodes)) == ("Failed", {"once": "Succeeded", "gate": "Failed"})
        Path(f"{trace}.open").touch()
        assert client.post(f"{RUNS}/{run_id}/retry").status_code == 200
        status, nodes = ir.wait_for(client, run_id)
        assert (status, phases(nodes)) == ("Succeeded", {"once": "Succeeded", "gate": "Succeeded"})
        assert Path(f"{trace}.count").read_text() == "ran\n"
    finally:
        for suffix in (".count", ".open"):
            Path(f"{trace}{suffix}").unlink(missing_ok=True)


def test_an_importer_gives_its_uri_to_the_next_task(client: FlaskClient, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n")
    spec = ir.pipeline("importer", [
        ("comp-importer", {"executorLabel": "exec-importer",
                           "inputDefinitions": {"parameters": ir.parameters(uri="STRING")},
                           "outputDefinitions": {"artifacts": ir.artifacts("artifact")}},
         {"importer": {"artifactUri": {"runtimeParameter": "uri"},
                       "typeSchema": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
                       "metadata": {"source": "test"}}}),
        ir.sh_component("show", ir.EXPECT, ["{{$.inputs.artifacts['data'].uri}}", str(data)],
                        inputs={"artifacts": ir.artifacts("data")}),
    ], {"dag": {"tasks": {
        "importer": ir.task("comp-importer", parameters={"uri": ir.const(str(data))}),
        "show": ir.task("comp-show", artifacts={"data": ir.artifact_of("importer", "artifact")}),
    }}})
    status, nodes = run_to_the_end(client, spec)
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    assert by_display(nodes)["importer"].get("outputs") == {"artifacts": [{"name": "artifact", "uri": str(data)}]}


def test_a_restarted_executor_adopts_the_running_step_of_an_ir_run(settings: Settings) -> None:
    """The step is kept on its node: a new executor adopts it from the row, runs nothing twice."""
    marker = uuid.uuid4().hex[:8]
    counters = {name: Path(f"/var/tmp/kfp-backend-ir-adopt-{marker}-{name}") for name in ("first", "slow", "last")}

    def counted(name: str, seconds: float) -> tuple[str, dict, dict]:
        return ir.sh_component(name, f'echo ran >> "{counters[name]}"; sleep {seconds}', [])

    spec = ir.pipeline("adopt", [counted("first", 0), counted("slow", 3), counted("last", 0)], {"dag": {"tasks": {
        "first": ir.task("comp-first"), "slow": ir.task("comp-slow", after=["first"]),
        "last": ir.task("comp-last", after=["slow"])}}})
    enabled = settings.replace(executor_enabled=True)
    first_app = create_app(enabled)
    try:
        run_id = create_run(first_app.test_client(), spec)["run"]["id"]
        deadline = time.monotonic() + 30
        while not counters["slow"].exists():
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.05)
    finally:
        shutdown(first_app)  # a graceful stop leaves the step running
    second_app = create_app(enabled)
    try:
        status, nodes = ir.wait_for(second_app.test_client(), run_id)
        assert status == "Succeeded", json.dumps(nodes, indent=1)
        assert {name: path.read_text() for name, path in counters.items()} == {n: "ran\n" for n in counters}
    finally:
        shutdown(second_app)
        for path in counters.values():
            path.unlink(missing_ok=True)


@pytest.mark.parametrize("cached", [True, False], ids=["cache-on", "cache-off"])
def test_a_cached_task_reuses_the_outputs_of_an_earlier_run(client: FlaskClient, cached: bool) -> None:
    trace = Path(f"/var/tmp/kfp-backend-ir-cache-{uuid.uuid4().hex[:8]}")
    make = ir.sh_component(
        "make", f'echo ran >> "{trace}"; mkdir -p "$(dirname "$1")" "$(dirname "$2")"; '
                'printf "%s" "$0-made" > "$1"; echo data > "$2"',
        ["{{$.inputs.parameters['word']}}", "{{$.outputs.parameters['out'].output_file}}",
         "{{$.outputs.artifacts['data'].path}}"],
        inputs={"parameters": ir.parameters(word="STRING")},
        outputs={"parameters": ir.parameters(out="STRING"), "artifacts": ir.artifacts("data")})
    use = ir.sh_component("use", ir.EXPECT + '; test "$(cat "$2")" = data',
                          ["{{$.inputs.parameters['got']}}", "hi-made", "{{$.inputs.artifacts['data'].path}}"],
                          inputs={"parameters": ir.parameters(got="STRING"), "artifacts": ir.artifacts("data")})
    spec = ir.pipeline("cached", [make, use], {"dag": {"tasks": {
        "make": ir.task("comp-make", parameters={"word": ir.const("hi")},
                        cachingOptions={"enableCache": cached}),
        "use": ir.task("comp-use", parameters={"got": ir.output_of("make", "out")},
                       artifacts={"data": ir.artifact_of("make", "data")}),
    }}})
    try:
        for _ in range(2):
            status, nodes = run_to_the_end(client, spec)
            assert status == "Succeeded", json.dumps(nodes, indent=1)
        assert trace.read_text() == ("ran\n" if cached else "ran\nran\n")
    finally:
        trace.unlink(missing_ok=True)


def _counted(trace: Path, *, name: str = "cached", word: str = "hi", image: str = "alpine",
             out_type: str = "STRING") -> dict:
    """One cached task that appends a line to `trace` each time it really runs."""
    make = ir.sh_component("make", f'echo "$0" >> "{trace}"; printf 1 > "$1"',
                           ["{{$.inputs.parameters['word']}}", "{{$.outputs.parameters['out'].output_file}}"],
                           inputs={"parameters": ir.parameters(word="STRING")},
                           outputs={"parameters": ir.parameters(out=out_type)})
    make[2]["container"]["image"] = image
    return ir.pipeline(name, [make], {"dag": {"tasks": {
        "make": ir.task("comp-make", parameters={"word": ir.const(word)}, cachingOptions={"enableCache": True}),
    }}})


def test_the_cache_misses_on_any_change_of_what_a_task_runs_or_declares_and_per_pipeline_name(
        client: FlaskClient) -> None:
    trace = Path(f"/var/tmp/kfp-backend-ir-cache-{uuid.uuid4().hex[:8]}")
    variants = [
        ("first", {}),
        ("same again: a hit", {}),
        ("another parameter value", {"word": "ho"}),
        ("another image", {"image": "busybox"}),
        ("another output type", {"out_type": "NUMBER_INTEGER"}),
        ("another pipeline name", {"name": "cached-elsewhere"}),
        ("that pipeline again: a hit", {"name": "cached-elsewhere"}),
    ]
    try:
        for _, change in variants:
            status, nodes = run_to_the_end(client, _counted(trace, **change))
            assert status == "Succeeded", json.dumps(nodes, indent=1)
        assert trace.read_text().splitlines() == ["hi", "ho", "hi", "hi", "hi"]
    finally:
        trace.unlink(missing_ok=True)


class _ToolEnvironment:
    """A step environment that puts a directory holding a `greet` program first on PATH, or fails."""

    def __init__(self, bin_dir: Path, problem: str = "") -> None:
        self.bin_dir, self.problem, self.asked = bin_dir, problem, []

    def prepare_step(self, argv: list[str]) -> _ToolEnvironment:
        self.asked.append(list(argv))
        if self.problem:
            raise RuntimeError(self.problem)
        self.argv = list(argv)
        return self

    def path(self, path: str | None) -> str | None:
        return f"{self.bin_dir}:{path}"


@pytest.mark.parametrize("problem", ["", "pip install kfp==9.9 failed"], ids=["prepared", "failed"])
def test_a_step_environment_chooses_the_programs_a_step_runs(
    client: FlaskClient, app: Flask, problem: str
) -> None:
    bin_dir = Path(f"/var/tmp/kfp-backend-ir-env-{uuid.uuid4().hex[:8]}")  # the step's /tmp is its own
    bin_dir.mkdir()
    (bin_dir / "greet").write_text("#!/bin/sh\necho hello from the environment\n")
    (bin_dir / "greet").chmod(0o755)
    environment = _ToolEnvironment(bin_dir, problem)
    app.extensions["kfp_backend.executor"].step_environment = environment
    spec = ir.pipeline("environment", [ir.sh_component("greet", "greet", [])], {"dag": {"tasks": {
        "greet": ir.task("comp-greet")}}})
    try:
        status, nodes = run_to_the_end(client, spec)
    finally:
        shutil.rmtree(bin_dir)
    assert environment.asked == [["sh", "-c", "greet"]]
    if problem:
        assert (status, by_display(nodes)["greet"]["phase"]) == ("Error", "Error")
        assert by_display(nodes)["greet"]["message"] == f"could not prepare the step: {problem}"
    else:
        assert status == "Succeeded", json.dumps(nodes, indent=1)


def test_metrics_artifacts_become_the_runs_metrics(client: FlaskClient) -> None:
    """A task's system.Metrics output (log_metric writes its metadata) shows as v1 run metrics."""
    document = json.dumps({"artifacts": {"scores": {"artifacts": [{"metadata": {"accuracy": 0.9, "f1 score": 0.5}}]}}})
    score = ir.sh_component("score", 'mkdir -p "$(dirname "$0")"; printf "%s" "$1" > "$0"',
                            ["/tmp/kfp_outputs/output_metadata.json", document],
                            outputs={"artifacts": ir.artifacts("scores", title="system.Metrics")})
    spec = ir.pipeline("metrics", [score], {"dag": {"tasks": {"score": ir.task("comp-score")}}})
    created = ir.create_run(client, spec)
    status, nodes = ir.wait_for(client, created["run"]["id"])
    assert status == "Succeeded", json.dumps(nodes, indent=1)
    node_id = by_display(nodes)["score"]["id"]
    run = client.get(f"{RUNS}/{created['run']['id']}").get_json()["run"]
    assert sorted(run["metrics"], key=lambda m: m["name"]) == [
        {"name": "accuracy", "node_id": node_id, "number_value": 0.9, "format": "RAW"},
        {"name": "f1_score", "node_id": node_id, "number_value": 0.5, "format": "RAW"},
    ]
