"""workflow.compile: kfp 1.8 pipelines (compiled at test time) to the typed graph, and what it refuses."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfp_backend.workflow.compile import compile_workflow, parse_duration
from kfp_backend.workflow.graph import (
    ArtifactDecl,
    DagTask,
    OutputParameterDecl,
    ParameterDecl,
    RetryStrategy,
)
from kfp_backend.workflow.manifest import WorkflowError, load_document, parse_workflow, validate_workflow
from tests.api.test_upload import upload, upload_error
from tests.workflow_fixtures import compiled

# --- kfp 1.8.22 pipelines --------------------------------------------------------------------------------


def test_parameters_and_output_parameters():
    graph = compile_workflow(compiled("params"))
    assert graph.name == "params-and-outputs"
    assert graph.entrypoint == "params-and-outputs"
    assert graph.arguments == (
        ParameterDecl("required"), ParameterDecl("a", "1.5"), ParameterDecl("b", "7.0"),
        ParameterDecl("greeting", "hello"),
    )
    assert graph.on_exit is None and graph.active_deadline_seconds is None and graph.parallelism is None

    root = graph.templates[graph.entrypoint]
    assert root.kind == "dag" and root.container is None
    assert sorted(root.inputs_parameters, key=lambda p: p.name) == [
        ParameterDecl("a"), ParameterDecl("b"), ParameterDecl("greeting"), ParameterDecl("required")]
    assert root.tasks["add-2"] == DagTask(
        name="add-2", template="add-2", dependencies=("add",),
        parameters=(ParameterDecl("add-Output", "{{tasks.add.outputs.parameters.add-Output}}"),),
    )
    assert root.tasks["echo"].dependencies == ("add-2",)
    assert sorted(root.graph.edges) == [("add", "add-2"), ("add-2", "echo")]
    assert root.task_order() == ("add", "add-2", "echo", "echo-2")
    assert root.leaves() == ["echo", "echo-2"]

    add = graph.templates["add"]
    assert add.kind == "container" and add.graph is None and add.tasks == {}
    assert add.container.command[:2] == ("sh", "-ec")
    assert add.container.args == ("--a", "{{inputs.parameters.a}}", "--b", "{{inputs.parameters.b}}",
                                  "----output-paths", "/tmp/outputs/Output/data")
    assert add.container.image == "python:3.10-slim"
    assert add.outputs_parameters == (OutputParameterDecl("add-Output", path="/tmp/outputs/Output/data"),)
    assert add.outputs_artifacts == (ArtifactDecl("add-Output", path="/tmp/outputs/Output/data"),)
    assert add.retry is None and add.active_deadline_seconds is None
    assert add.labels["pipelines.kubeflow.org/pipeline-sdk-type"] == "kfp"
    assert "pipelines.kubeflow.org/component_spec" in add.annotations
    # A constant argument is inlined by the compiler.
    assert "2" in graph.templates["add-2"].container.args


def test_file_artifacts():
    graph = compile_workflow(compiled("files"))
    assert graph.name == "files-pipeline"
    root = graph.templates["files-pipeline"]
    assert root.tasks["read-file"].artifacts == (
        ArtifactDecl("write-file-out", source="{{tasks.write-file.outputs.artifacts.write-file-out}}"),
    )
    assert root.tasks["read-file"].dependencies == ("write-file",)
    assert graph.templates["read-file"].inputs_artifacts == (
        ArtifactDecl("write-file-out", path="/tmp/inputs/source/data"),
    )
    assert graph.templates["write-file"].outputs_artifacts == (
        ArtifactDecl("write-file-out", path="/tmp/outputs/out/data"),
    )
    assert graph.templates["write-file"].outputs_parameters == ()


def test_conditions():
    graph = compile_workflow(compiled("conditions"))
    root = graph.templates["conditions"]
    assert root.tasks["condition-1"].when == '"{{tasks.flip.outputs.parameters.flip-Output}}" == "heads"'
    assert root.tasks["condition-1"].dependencies == ("flip",)
    assert root.tasks["condition-2"].when == "{{tasks.add.outputs.parameters.add-Output}} > 3"
    assert root.tasks["condition-2"].dependencies == ("add",)
    assert root.tasks["flip"].when is None
    assert root.leaves() == ["condition-1", "condition-2"]
    assert graph.templates["condition-1"].kind == "dag"
    assert list(graph.templates["condition-1"].tasks) == ["echo"]


def test_loops_static_dicts_and_with_param():
    graph = compile_workflow(compiled("loops"))
    root = graph.templates["loops"]
    static = root.tasks["for-loop-2"]
    assert static.with_items == (1, 2, 3) and static.with_param is None
    assert static.parameters == (ParameterDecl("loop-item-param-1", "{{item}}"),)
    assert graph.templates["for-loop-2"].parallelism == 2
    dicts = root.tasks["for-loop-4"]
    assert dicts.with_items == ({"p": 1, "q": "z"},)
    assert dicts.parameters == (ParameterDecl("loop-item-param-3-subvar-q", "{{item.q}}"),)
    assert graph.templates["for-loop-4"].parallelism is None  # kfp's `parallelism: 0` is "no limit"
    upstream = root.tasks["for-loop-5"]
    assert upstream.with_items is None
    assert upstream.with_param == "{{tasks.produce-list.outputs.parameters.produce-list-Output}}"
    assert upstream.dependencies == ("produce-list",)
    assert root.leaves() == ["for-loop-2", "for-loop-4", "for-loop-5"]


def test_nested_loops():
    graph = compile_workflow(compiled("nested-loops"))
    outer = graph.templates["nested-loops"].tasks["for-loop-2"]
    assert outer.with_items == ("a", "b")
    inner = graph.templates["for-loop-2"].tasks["for-loop-4"]
    assert inner.with_items == (1, 2)
    assert inner.parameters == (ParameterDecl("loop-item-param-1", "{{inputs.parameters.loop-item-param-1}}"),
                                ParameterDecl("loop-item-param-3", "{{item}}"))
    body = graph.templates["for-loop-4"]
    assert body.tasks["echo"].dependencies == ("echo-2",)
    assert body.task_order() == ("echo-2", "echo")
    assert body.leaves() == ["echo"]


def test_exit_handler():
    graph = compile_workflow(compiled("exit-handler"))
    assert graph.on_exit == "echo"
    assert graph.templates["echo"].kind == "container"
    assert list(graph.templates["exit-handler"].tasks) == ["exit-handler-1"]
    assert list(graph.templates["exit-handler-1"].tasks) == ["echo-2"]


def test_retry_timeouts_parallelism_and_display_name():
    graph = compile_workflow(compiled("retry-timeout"))
    assert graph.active_deadline_seconds == 600
    assert graph.parallelism == 4
    step = graph.templates["echo"]
    assert step.retry == RetryStrategy(limit=3, policy="Always", backoff_seconds=5.0, backoff_factor=2.0,
                                       backoff_max_seconds=60.0)
    assert step.active_deadline_seconds == 60
    assert step.annotations["pipelines.kubeflow.org/task_display_name"] == "Flaky step"


# --- hand-written workflows ------------------------------------------------------------------------------


def container(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "container": {"image": "alpine", "command": ["echo", "hi"]}, **extra}


def dag(name: str, *tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "dag": {"tasks": list(tasks)}, **extra}


def workflow(*templates: dict[str, Any], entrypoint: str = "main", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hand-"},
        "spec": {"entrypoint": entrypoint, "templates": list(templates), **spec},
    }


def simple() -> dict[str, Any]:
    return workflow(dag("main", {"name": "a", "template": "step"}), container("step"))


def test_names_and_numeric_strings():
    document = simple()
    assert compile_workflow(document).name == "hand"
    document["metadata"] = {"name": "exact-name", "generateName": "ignored-"}
    assert compile_workflow(document).name == "exact-name"
    document["metadata"] = {}
    assert compile_workflow(document).name == "workflow"

    document = simple()
    step = document["spec"]["templates"][1]
    step.update(retryStrategy={"limit": "2", "backoff": {"duration": "90", "factor": "3", "maxDuration": "1h1m"}},
                activeDeadlineSeconds="30")
    step["container"].update(args=["--n", 3, True], env=[
        {"name": "PLAIN", "value": "x"}, {"name": "EMPTY"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ], workingDir="/w")
    document["spec"].update(activeDeadlineSeconds="120", parallelism=0)
    graph = compile_workflow(document)
    template = graph.templates["step"]
    assert template.retry == RetryStrategy(limit=2, backoff_seconds=90.0, backoff_factor=3.0,
                                           backoff_max_seconds=3660.0)
    assert template.active_deadline_seconds == 30.0
    assert template.container.args == ("--n", "3", "true")
    assert template.container.env == (("PLAIN", "x"), ("EMPTY", ""))
    assert template.container.field_refs == (("POD", "metadata.name"),)
    assert template.container.working_dir == "/w"
    assert graph.active_deadline_seconds == 120.0 and graph.parallelism is None


def test_empty_retry_strategy_retries_without_limit():
    document = simple()
    document["spec"]["templates"][1]["retryStrategy"] = {}
    assert compile_workflow(document).templates["step"].retry == RetryStrategy(limit=None)


def test_optional_output_artifacts():
    document = simple()
    document["spec"]["templates"][1]["outputs"] = {"artifacts": [
        {"name": "mlpipeline-ui-metadata", "path": "/tmp/ui"},
        {"name": "mlpipeline-metrics", "path": "/tmp/metrics"},
        {"name": "data", "path": "/tmp/data"},
        {"name": "maybe", "path": "/tmp/maybe", "optional": True},
    ]}
    optional = {a.name: a.optional for a in compile_workflow(document).templates["step"].outputs_artifacts}
    assert optional == {"mlpipeline-ui-metadata": True, "mlpipeline-metrics": True, "data": False, "maybe": True}


def test_arguments_artifacts_and_raw_inputs():
    document = workflow(
        dag("main", {"name": "a", "template": "step",
                     "arguments": {"artifacts": [{"name": "in", "raw": {"data": "{{workflow.parameters.t}}"}}]}}),
        container("step", inputs={"artifacts": [{"name": "in", "path": "/tmp/inputs/in/data"},
                                                {"name": "c", "path": "/tmp/c", "raw": {"data": "const"}}]}),
        arguments={"parameters": [{"name": "t", "value": 5}],
                   "artifacts": [{"name": "t", "raw": {"data": "{{workflow.parameters.t}}"}}]},
    )
    graph = compile_workflow(document)
    assert graph.arguments == (ParameterDecl("t", "5"),)
    assert graph.argument_artifacts == (ArtifactDecl("t", raw="{{workflow.parameters.t}}"),)
    assert graph.templates["main"].tasks["a"].artifacts == (ArtifactDecl("in", raw="{{workflow.parameters.t}}"),)
    assert graph.templates["step"].inputs_artifacts[1] == ArtifactDecl("c", path="/tmp/c", raw="const")


def test_dag_outputs():
    document = workflow(
        dag("main", {"name": "a", "template": "step"},
            outputs={"parameters": [{"name": "p", "valueFrom": {"parameter": "{{tasks.a.outputs.parameters.o}}"}}],
                     "artifacts": [{"name": "f", "from": "{{tasks.a.outputs.artifacts.f}}"}]}),
        container("step", outputs={"parameters": [{"name": "o", "valueFrom": {"path": "/o", "default": "d"}}],
                                   "artifacts": [{"name": "f", "path": "/f"}]}),
    )
    graph = compile_workflow(document)
    assert graph.templates["main"].outputs_parameters == (
        OutputParameterDecl("p", expression="{{tasks.a.outputs.parameters.o}}"),
    )
    assert graph.templates["main"].outputs_artifacts == (ArtifactDecl("f", source="{{tasks.a.outputs.artifacts.f}}"),)
    assert graph.templates["step"].outputs_parameters == (OutputParameterDecl("o", path="/o", default="d"),)


def test_steps_templates_run_as_dags():
    document = workflow(
        {"name": "main", "steps": [
            [{"name": "first", "template": "step"}],
            [{"name": "left", "template": "step", "withItems": ["x", "y"],
              "arguments": {"parameters": [{"name": "m", "value": "{{steps.first.outputs.parameters.o}}"}]}},
             {"name": "right", "template": "step", "when": "{{steps.first.outputs.parameters.o}} == go",
              "arguments": {"parameters": [{"name": "m", "value": "{{item}}"}]}, "withParam": "[1]"}],
            [],
            [{"name": "last", "template": "step", "arguments": {"parameters": [{"name": "m", "value": "z"}]}}],
        ]},
        container("step", inputs={"parameters": [{"name": "m", "default": ""}]},
                  outputs={"parameters": [{"name": "o", "valueFrom": {"path": "/o"}}]}),
    )
    template = compile_workflow(document).templates["main"]
    assert template.kind == "dag"
    assert {name: task.dependencies for name, task in template.tasks.items()} == {
        "first": (), "left": ("first",), "right": ("first",), "last": ("left", "right"),
    }
    assert template.tasks["left"].parameters == (ParameterDecl("m", "{{tasks.first.outputs.parameters.o}}"),)
    assert template.tasks["right"].when == "{{tasks.first.outputs.parameters.o}} == go"
    assert template.leaves() == ["last"]


def _with(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(document)
    target: Any = document
    keys = path.split("/")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return document


STEP = "spec/templates/1"
TASK = "spec/templates/0/dag/tasks/0"

REFUSED = {
    "resource template": (_with(simple(), STEP, {"name": "step", "resource": {"action": "create"}}),
                          'template "step" is a resource template'),
    "script template": (_with(simple(), STEP, {"name": "step", "script": {"image": "a", "source": "x"}}),
                        'template "step" is a script template'),
    "suspend template": (_with(simple(), STEP, {"name": "step", "suspend": {}}), 'template "step" is a suspend'),
    "no kind": (_with(simple(), STEP, {"name": "step"}), 'template "step" has no container or dag'),
    "no command": (_with(simple(), f"{STEP}/container", {"image": "alpine", "args": ["x"]}),
                   "ENTRYPOINT cannot be emulated"),
    "no image": (_with(simple(), f"{STEP}/container", {"command": ["x"]}), "container.image is missing"),
    "secret env": (_with(simple(), f"{STEP}/container/env",
                         [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
                   'env "S" comes from secretKeyRef'),
    "sidecars": (_with(simple(), f"{STEP}/sidecars", [{"name": "s", "image": "x"}]), "sidecars"),
    "init containers": (_with(simple(), f"{STEP}/initContainers", [{"name": "s", "image": "x"}]), "init containers"),
    "unknown template": (_with(simple(), f"{TASK}/template", "nope"), 'calls template "nope", which does not exist'),
    "unknown dependency": (_with(simple(), f"{TASK}/dependencies", ["ghost"]), 'depends on "ghost"'),
    "depends": (_with(simple(), f"{TASK}/depends", "b.Succeeded"), "'depends' expressions are not supported"),
    "continueOn": (_with(simple(), f"{TASK}/continueOn", {"failed": True}), "'continueOn' is not supported"),
    "withSequence": (_with(simple(), f"{TASK}/withSequence", {"count": 3}), "'withSequence' is not supported"),
    "templateRef": (_with(simple(), f"{TASK}/templateRef", {"name": "x", "template": "y"}), "'templateRef'"),
    "items and param": (_with(_with(simple(), f"{TASK}/withItems", [1]), f"{TASK}/withParam", "[1]"),
                        "both withItems and withParam"),
    "withItems not a list": (_with(simple(), f"{TASK}/withItems", "abc"), "withItems must be a list"),
    "entrypoint": (_with(simple(), "spec/entrypoint", "nope"), 'spec.entrypoint "nope" is not the name'),
    "onExit": (_with(simple(), "spec/onExit", "nope"), 'spec.onExit "nope" is not the name of a template'),
    "bad limit": (_with(simple(), f"{STEP}/retryStrategy", {"limit": "{{inputs.parameters.n}}"}),
                  "retryStrategy.limit"),
    "negative limit": (_with(simple(), f"{STEP}/retryStrategy", {"limit": -1}), "must not be negative"),
    "bad policy": (_with(simple(), f"{STEP}/retryStrategy", {"retryPolicy": "Sometimes"}), "retryPolicy"),
    "bad backoff": (_with(simple(), f"{STEP}/retryStrategy", {"backoff": {"duration": "soon"}}), "not a duration"),
    "dag retry": (_with(simple(), "spec/templates/0/retryStrategy", {"limit": 1}), "only supported on container"),
    "bad deadline": (_with(simple(), f"{STEP}/activeDeadlineSeconds", "ten"), "activeDeadlineSeconds"),
    "negative parallelism": (_with(simple(), "spec/parallelism", -1), "must not be negative"),
    "duplicate task": (_with(simple(), "spec/templates/0/dag/tasks", [{"name": "a", "template": "step"}] * 2),
                       'task name "a" is used more than once'),
    "empty dag": (_with(simple(), "spec/templates/0/dag/tasks", []), "dag.tasks must be a non-empty list"),
    "s3 input": (_with(simple(), f"{STEP}/inputs", {"artifacts": [{"name": "x", "path": "/x", "s3": {"key": "k"}}]}),
                 'input artifact "x" is fetched from s3'),
    "output jsonPath": (_with(simple(), f"{STEP}/outputs",
                              {"parameters": [{"name": "o", "valueFrom": {"jsonPath": "{.x}"}}]}),
                        "valueFrom.jsonPath is not supported"),
    "unknown input": (_with(simple(), f"{STEP}/container/args", ["{{inputs.parameters.nope}}"]),
                      "{{inputs.parameters.nope}}, which is not an input parameter"),
    "unknown workflow parameter": (_with(simple(), f"{STEP}/container/args", ["{{workflow.parameters.nope}}"]),
                                   "not in spec.arguments.parameters"),
    "missing argument": (_with(simple(), f"{STEP}/inputs", {"parameters": [{"name": "m"}]}),
                         'does not supply input parameter "m"'),
    "item outside loop": (_with(simple(), f"{TASK}/when", "{{item}} == 1"), "has no withItems or withParam"),
    "templateDefaults": (_with(simple(), "spec/templateDefaults", {"timeout": "1m"}), "spec.templateDefaults"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused(case):
    document, message = REFUSED[case]
    with pytest.raises(WorkflowError) as raised:
        compile_workflow(document)
    assert message in str(raised.value)
    # The same check runs when a manifest is uploaded or a run is created.
    with pytest.raises(WorkflowError, match="workflow"):
        validate_workflow(document)


def test_dependency_cycles_are_refused():
    document = workflow(
        dag("main", {"name": "a", "template": "step", "dependencies": ["c"]},
            {"name": "b", "template": "step", "dependencies": ["a"]},
            {"name": "c", "template": "step", "dependencies": ["b"]}),
        container("step"),
    )
    with pytest.raises(WorkflowError, match=r"cycle \(. -> . -> . -> .\)"):
        compile_workflow(document)
    document = _with(simple(), f"{TASK}/dependencies", ["a"])
    with pytest.raises(WorkflowError, match=r"cycle \(a -> a\)"):
        compile_workflow(document)


def test_recursive_dags_are_refused():
    document = workflow(
        dag("main", {"name": "a", "template": "inner"}),
        dag("inner", {"name": "b", "template": "main", "when": "1 == 2"}),
    )
    with pytest.raises(WorkflowError, match="recursive templates are not supported"):
        compile_workflow(document)
    document = workflow(dag("main", {"name": "a", "template": "main"}))
    with pytest.raises(WorkflowError, match=r'template "main" calls itself \(main -> main\)'):
        compile_workflow(document)


def test_references_to_tasks_must_be_dependencies_with_that_output():
    base = workflow(
        dag("main", {"name": "a", "template": "step"},
            {"name": "b", "template": "step", "dependencies": ["a"],
             "arguments": {"parameters": [{"name": "m", "value": "{{tasks.a.outputs.parameters.o}}"}]}}),
        container("step", inputs={"parameters": [{"name": "m", "default": "x"}]},
                  outputs={"parameters": [{"name": "o", "valueFrom": {"path": "/o"}}]}),
    )
    compile_workflow(base)
    with pytest.raises(WorkflowError, match='without depending on task "a"'):
        compile_workflow(_with(base, "spec/templates/0/dag/tasks/1/dependencies", []))
    with pytest.raises(WorkflowError, match='template "step" has no such output'):
        compile_workflow(_with(base, "spec/templates/0/dag/tasks/1/arguments/parameters/0/value",
                               "{{tasks.a.outputs.parameters.other}}"))
    with pytest.raises(WorkflowError, match='there is no task "z"'):
        compile_workflow(_with(base, "spec/templates/0/dag/tasks/1/arguments/parameters/0/value",
                               "{{tasks.z.outputs.parameters.o}}"))


def test_ignored_kubernetes_fields():
    document = simple()
    document["spec"].update(serviceAccountName="runner", ttlStrategy={"secondsAfterCompletion": 5},
                            podDisruptionBudget={"minAvailable": 1}, imagePullSecrets=[{"name": "x"}],
                            volumes=[{"name": "v"}], nodeSelector={"a": "b"}, tolerations=[{}])
    document["spec"]["templates"][1].update(podSpecPatch='{"x": 1}', nodeSelector={"a": "b"},
                                            volumes=[{"name": "v"}])
    document["spec"]["templates"][1]["container"].update(
        resources={"limits": {"cpu": "1"}}, volumeMounts=[{"name": "v", "mountPath": "/v"}],
        securityContext={"privileged": True}, imagePullPolicy="Always")
    assert compile_workflow(document).templates["step"].container.command == ("echo", "hi")


def test_parse_duration():
    assert parse_duration("5s", "d") == 5
    assert parse_duration("1m", "d") == 60
    assert parse_duration("1h30m", "d") == 5400
    assert parse_duration("500ms", "d") == 0.5
    assert parse_duration("10", "d") == 10
    assert parse_duration(7, "d") == 7
    for bad in ("5x", "", "m", "-5s"):
        with pytest.raises(WorkflowError):
            parse_duration(bad, "d")


def test_upload_of_an_unsupported_manifest_is_400(client):
    document = _with(simple(), STEP, {"name": "step", "resource": {"action": "create"}})
    error = upload_error(upload(client, "resource.yaml", yaml.safe_dump(document).encode()), 400)
    assert 'template "step" is a resource template' in error


def test_parse_workflow_refuses_an_unsupported_manifest():
    document = _with(simple(), f"{STEP}/container", {"image": "alpine"})
    with pytest.raises(WorkflowError, match="no command"):
        parse_workflow(json.dumps(document))


# --- every real pipeline compiles ------------------------------------------------------------------------


def _argo_workflows(shared_dir: Path) -> list[Path]:
    roots = [shared_dir / "pipelines", shared_dir / "reference" / "upstream-test-resources"]
    found = []
    for root in roots:
        for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.json")]):
            try:
                document = load_document(path.read_bytes())
            except WorkflowError:
                continue
            if isinstance(document, dict) and document.get("kind") == "Workflow":
                found.append(path)
    return found


def test_every_shared_workflow_compiles(shared_dir: Path):
    paths = _argo_workflows(shared_dir)
    assert len(paths) >= 20, paths
    for path in paths:
        workflow_ = parse_workflow(path.read_bytes())
        graph = compile_workflow(workflow_.document)
        assert graph.entrypoint in graph.templates, path
        for template in graph.templates.values():
            if template.kind == "dag":
                assert template.task_order(), (path, template.name)
            else:
                assert template.container is not None and template.container.command, (path, template.name)
