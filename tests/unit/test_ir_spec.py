"""workflow.ir: KFP v2 pipeline specs (IR) read into the typed model, and what is refused at upload."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir import is_pipeline_spec, parse_pipeline_spec
from kfp_backend.workflow.ir.conditions import evaluate_condition, select
from kfp_backend.workflow.ir.document import load_documents, split_documents
from kfp_backend.workflow.ir.model import (
    ALL_UPSTREAM_TASKS_COMPLETED,
    ALL_UPSTREAM_TASKS_SUCCEEDED,
    ArtifactIterator,
    ArtifactSelector,
    ArtifactSpec,
    ArtifactType,
    ComponentInputArtifact,
    ComponentInputParameter,
    Constant,
    ContainerExecutor,
    DagOutputArtifact,
    DagOutputParameter,
    ImporterExecutor,
    ParameterIterator,
    ParameterSelector,
    ParameterSpec,
    PipelineSpec,
    Resources,
    RetryPolicy,
    TaskFinalStatus,
    TaskInputArtifact,
    TaskInputParameter,
    TaskOutputArtifact,
    TaskOutputParameter,
    TriggerPolicy,
)
from tests.databases import in_ci

# A hand-written pipeline spec using every field the model reads. `make` writes a dataset and a size;
# `train` (retried, cached) reads both when `flag` holds; `branches` is a DAG with If/Else outputs;
# `loop` fans out over `items` two at a time, `fan` over raw items and over the collected models;
# `load` imports an artifact; `notify` runs after `train` whatever happened, with its final status.
SPEC_YAML = """
pipelineInfo:
  name: every-field
  displayName: Every field
  description: A pipeline spec that uses every field
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
defaultPipelineRoot: minio://bucket/root
root:
  inputDefinitions:
    parameters:
      word: {parameterType: STRING, defaultValue: hello, isOptional: true, description: a word}
      count: {parameterType: NUMBER_INTEGER, defaultValue: 2.0, isOptional: true}
      ratio: {parameterType: NUMBER_DOUBLE, defaultValue: 1}
      flag: {parameterType: BOOLEAN, defaultValue: false}
      items: {parameterType: LIST, defaultValue: [1, 2, 3]}
      config: {parameterType: STRUCT, defaultValue: {depth: 1.0}}
      required: {parameterType: STRING}
      uri: {parameterType: STRING, defaultValue: "s3://bucket/data.csv"}
  outputDefinitions:
    parameters:
      answer: {parameterType: STRING}
    artifacts:
      model: {artifactType: {schemaTitle: system.Model, schemaVersion: 0.0.1}}
  dag:
    outputs:
      parameters:
        answer:
          valueFromParameter: {producerSubtask: branches, outputParameterKey: pick}
      artifacts:
        model:
          artifactSelectors:
          - {producerSubtask: train, outputArtifactKey: model}
    tasks:
      make:
        taskInfo: {name: make data}
        componentRef: {name: comp-make}
        cachingOptions: {enableCache: true}
        inputs:
          parameters:
            word: {componentInputParameter: word}
            rows: {runtimeValue: {constant: 3.0}}
      train:
        taskInfo: {name: train}
        componentRef: {name: comp-train}
        dependentTasks: [make]
        cachingOptions: {}
        inputs:
          parameters:
            size: {taskOutputParameter: {producerTask: make, outputParameterKey: size}}
            flag: {componentInputParameter: flag}
          artifacts:
            data: {taskOutputArtifact: {producerTask: make, outputArtifactKey: data}}
        triggerPolicy:
          condition: inputs.parameter_values['flag'] == true
        retryPolicy:
          maxRetryCount: 2
          backoffDuration: 1.5s
          backoffFactor: 2.0
          backoffMaxDuration: 3600s
      branches:
        taskInfo: {name: branches}
        componentRef: {name: comp-branches}
        inputs:
          parameters:
            count: {componentInputParameter: count}
      loop:
        taskInfo: {name: loop}
        componentRef: {name: comp-loop}
        inputs:
          parameters:
            items-in: {componentInputParameter: items}
        parameterIterator:
          itemInput: item
          items: {inputParameter: items-in}
        iteratorPolicy: {parallelismLimit: 2}
      fan:
        taskInfo: {name: fan}
        componentRef: {name: comp-fan}
        parameterIterator:
          itemInput: entry
          items: {raw: '[{"tag": "a"}, {"tag": "b"}]'}
      fan-artifacts:
        taskInfo: {name: fan artifacts}
        componentRef: {name: comp-fan-artifacts}
        dependentTasks: [loop]
        inputs:
          artifacts:
            models: {taskOutputArtifact: {producerTask: loop, outputArtifactKey: models}}
        artifactIterator:
          itemInput: one-model
          items: {inputArtifact: models}
      load:
        taskInfo: {name: load}
        componentRef: {name: comp-load}
        inputs:
          parameters:
            uri: {componentInputParameter: uri}
      notify:
        taskInfo: {name: notify}
        componentRef: {name: comp-notify}
        dependentTasks: [train]
        inputs:
          parameters:
            status: {taskFinalStatus: {producerTask: train}}
        triggerPolicy: {strategy: ALL_UPSTREAM_TASKS_COMPLETED}
components:
  comp-make:
    executorLabel: exec-make
    inputDefinitions:
      parameters:
        word: {parameterType: STRING}
        rows: {parameterType: NUMBER_INTEGER}
    outputDefinitions:
      parameters:
        size: {parameterType: NUMBER_INTEGER}
      artifacts:
        data: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
  comp-train:
    executorLabel: exec-train
    inputDefinitions:
      parameters:
        size: {parameterType: NUMBER_INTEGER}
        flag: {parameterType: BOOLEAN}
      artifacts:
        data: {artifactType: {schemaTitle: system.Dataset}}
        extra: {artifactType: {schemaTitle: system.Artifact}, isOptional: true, description: unused}
    outputDefinitions:
      artifacts:
        model: {artifactType: {schemaTitle: system.Model}}
  comp-branches:
    inputDefinitions:
      parameters:
        count: {parameterType: NUMBER_INTEGER}
    outputDefinitions:
      parameters:
        pick: {parameterType: STRING}
    dag:
      outputs:
        parameters:
          pick:
            valueFromOneof:
              parameterSelectors:
              - {producerSubtask: big, outputParameterKey: Output}
              - {producerSubtask: small, outputParameterKey: Output}
      tasks:
        big:
          taskInfo: {name: big}
          componentRef: {name: comp-say}
          inputs:
            parameters:
              count: {componentInputParameter: count}
          triggerPolicy:
            condition: int(inputs.parameter_values['count']) > 5
        small:
          taskInfo: {name: small}
          componentRef: {name: comp-say}
          inputs:
            parameters:
              count: {componentInputParameter: count}
          triggerPolicy:
            condition: '!(int(inputs.parameter_values[''count'']) > 5)'
  comp-say:
    executorLabel: exec-say
    inputDefinitions:
      parameters:
        count: {parameterType: NUMBER_INTEGER}
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
  comp-loop:
    inputDefinitions:
      parameters:
        items-in: {parameterType: LIST}
        item: {parameterType: NUMBER_INTEGER}
    outputDefinitions:
      artifacts:
        models: {artifactType: {schemaTitle: system.Model}, isArtifactList: true}
    dag:
      outputs:
        artifacts:
          models:
            artifactSelectors:
            - {producerSubtask: train-one, outputArtifactKey: model}
      tasks:
        train-one:
          taskInfo: {name: train one}
          componentRef: {name: comp-train-one}
          inputs:
            parameters:
              n: {componentInputParameter: item}
  comp-train-one:
    executorLabel: exec-say
    inputDefinitions:
      parameters:
        n: {parameterType: NUMBER_INTEGER}
    outputDefinitions:
      artifacts:
        model: {artifactType: {schemaTitle: system.Model}}
  comp-fan:
    inputDefinitions:
      parameters:
        entry: {parameterType: STRUCT}
    dag:
      tasks:
        describe:
          taskInfo: {name: describe}
          componentRef: {name: comp-describe}
          inputs:
            parameters:
              tag:
                componentInputParameter: entry
                parameterExpressionSelector: parseJson(string_value)["tag"]
  comp-describe:
    executorLabel: exec-say
    inputDefinitions:
      parameters:
        tag: {parameterType: STRING}
  comp-fan-artifacts:
    inputDefinitions:
      artifacts:
        models: {artifactType: {schemaTitle: system.Model}, isArtifactList: true}
        one-model: {artifactType: {schemaTitle: system.Model}}
    dag:
      tasks:
        inspect:
          taskInfo: {name: inspect}
          componentRef: {name: comp-inspect}
          inputs:
            artifacts:
              model: {componentInputArtifact: one-model}
  comp-inspect:
    executorLabel: exec-say
    inputDefinitions:
      artifacts:
        model: {artifactType: {schemaTitle: system.Model}}
  comp-load:
    executorLabel: exec-load
    inputDefinitions:
      parameters:
        uri: {parameterType: STRING}
    outputDefinitions:
      artifacts:
        artifact: {artifactType: {schemaTitle: system.Dataset}}
  comp-notify:
    executorLabel: exec-say
    inputDefinitions:
      parameters:
        status: {parameterType: TASK_FINAL_STATUS, isOptional: true}
deploymentSpec:
  executors:
    exec-make:
      container:
        image: python:3.11
        command: [sh, -c, 'echo "$0" > "$1"']
        args: ["{{$.inputs.parameters['word']}}", "{{$.outputs.artifacts['data'].path}}"]
        env:
        - {name: MODE, value: fast}
        - {name: EMPTY}
        resources:
          resourceCpuLimit: "2"
          resourceMemoryLimit: 1G
          resourceCpuRequest: 500m
          resourceMemoryRequest: 256Mi
          accelerator: {resourceType: nvidia.com/gpu, resourceCount: "1"}
    exec-train:
      container:
        image: python:3.11
        command: [python3, -c, pass]
    exec-say:
      container:
        image: alpine
        command: [sh, -c, 'echo hi']
        resources: {cpuLimit: 1.5, memoryLimit: 2.0}
    exec-load:
      importer:
        artifactUri: {runtimeParameter: uri}
        typeSchema: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}
        metadata: {source: upstream}
        reimport: true
"""

PLATFORM_YAML = """
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-make:
          nodeSelector: {labels: {disk: ssd}}
"""


def spec_document() -> dict[str, Any]:
    return yaml.safe_load(SPEC_YAML)


def parsed() -> PipelineSpec:
    return parse_pipeline_spec(SPEC_YAML)


# --- what is read ---------------------------------------------------------------------------------------


def test_pipeline_info_and_versions():
    spec = parsed()
    assert spec.name == "every-field"
    assert spec.display_name == "Every field"
    assert spec.description == "A pipeline spec that uses every field"
    assert spec.schema_version == "2.1.0" and spec.sdk_version == "kfp-2.17.3"
    assert spec.default_pipeline_root == "minio://bucket/root"
    assert spec.platform_spec is None
    assert spec.document == spec_document()


def test_root_inputs_are_typed_with_their_defaults():
    root = parsed().root
    assert root.name == "root" and root.executor_label is None and root.dag is not None
    parameters = root.inputs.parameters
    assert parameters["word"] == ParameterSpec("word", "STRING", "hello", True, True, "a word")
    # JSON numbers are doubles: an integer default reads as an int, a double as a float.
    assert parameters["count"].default == 2 and type(parameters["count"].default) is int
    assert parameters["ratio"].default == 1.0 and type(parameters["ratio"].default) is float
    assert parameters["flag"] == ParameterSpec("flag", "BOOLEAN", False, has_default=True)
    assert parameters["items"].default == [1, 2, 3] and parameters["items"].type == "LIST"
    assert parameters["config"].default == {"depth": 1.0} and parameters["config"].type == "STRUCT"
    assert parameters["required"] == ParameterSpec("required", "STRING")
    assert not parameters["required"].has_default and not parameters["required"].optional
    assert root.outputs.parameters["answer"] == ParameterSpec("answer", "STRING")
    assert root.outputs.artifacts["model"] == ArtifactSpec("model", ArtifactType("system.Model", "0.0.1"))


def test_components_with_executors_or_dags():
    spec = parsed()
    train = spec.components["comp-train"]
    assert train.executor_label == "exec-train" and train.dag is None
    assert train.inputs.artifacts["data"] == ArtifactSpec("data", ArtifactType("system.Dataset"))
    assert train.inputs.artifacts["extra"] == ArtifactSpec(
        "extra", ArtifactType("system.Artifact"), optional=True, description="unused")
    assert spec.components["comp-loop"].outputs.artifacts["models"].is_list
    assert spec.components["comp-notify"].inputs.parameters["status"] == ParameterSpec(
        "status", "TASK_FINAL_STATUS", optional=True)
    branches = spec.components["comp-branches"]
    assert branches.executor_label is None and set(branches.dag.tasks) == {"big", "small"}
    assert spec.component("root") is spec.root
    assert spec.component("comp-say") is spec.components["comp-say"]


def test_container_executors():
    executors = parsed().executors
    assert executors["exec-make"] == ContainerExecutor(
        image="python:3.11",
        command=("sh", "-c", 'echo "$0" > "$1"'),
        args=("{{$.inputs.parameters['word']}}", "{{$.outputs.artifacts['data'].path}}"),
        env=(("MODE", "fast"), ("EMPTY", "")),
        resources=Resources(cpu_limit="2", memory_limit="1G", cpu_request="500m", memory_request="256Mi",
                            accelerator_type="nvidia.com/gpu", accelerator_count="1"),
    )
    assert executors["exec-train"] == ContainerExecutor("python:3.11", ("python3", "-c", "pass"))
    assert executors["exec-say"].resources == Resources(cpu_limit="1.5", memory_limit="2.0")


def test_importer_executor():
    importer = parsed().executors["exec-load"]
    assert importer == ImporterExecutor(
        type=ArtifactType("system.Dataset", "0.0.1"), artifact_uri=None, artifact_uri_parameter="uri",
        metadata={"source": "upstream"}, reimport=True,
    )
    document = spec_document()
    document["deploymentSpec"]["executors"]["exec-load"]["importer"] = {
        "artifactUri": {"constant": "gs://bucket/file"}, "typeSchema": {"schemaTitle": "system.Artifact"}}
    constant = parse_pipeline_spec(document).executors["exec-load"]
    assert constant == ImporterExecutor(ArtifactType("system.Artifact"), artifact_uri="gs://bucket/file")


def test_task_inputs_from_every_source():
    spec = parsed()
    tasks = spec.root.dag.tasks
    make = tasks["make"]
    assert make.display_name == "make data" and make.component == "comp-make" and make.enable_cache
    assert make.parameters == {
        "word": TaskInputParameter("word", ComponentInputParameter("word")),
        "rows": TaskInputParameter("rows", Constant(3.0)),
    }
    train = tasks["train"]
    assert train.dependent_tasks == ("make",) and not train.enable_cache  # cachingOptions: {} is off
    assert train.parameters["size"].source == TaskOutputParameter("make", "size")
    assert train.artifacts == {"data": TaskInputArtifact("data", TaskOutputArtifact("make", "data"))}
    assert tasks["notify"].parameters["status"].source == TaskFinalStatus("train")
    describe = spec.components["comp-fan"].dag.tasks["describe"]
    assert describe.parameters["tag"] == TaskInputParameter(
        "tag", ComponentInputParameter("entry"), selector='parseJson(string_value)["tag"]')
    inspect = spec.components["comp-fan-artifacts"].dag.tasks["inspect"]
    assert inspect.artifacts["model"].source == ComponentInputArtifact("one-model")


def test_an_input_only_named_in_another_inputs_constant_is_accepted():
    """The kfp compiler passes each pipeline channel of an f-string (`f"{word}-x"`) as an extra task input
    that the component does not declare; the constant names it, so it is no unknown input."""
    document = spec_document()
    inputs = document["root"]["dag"]["tasks"]["make"]["inputs"]["parameters"]
    inputs["word"] = {"runtimeValue": {"constant": "{{$.inputs.parameters['pipelinechannel--word']}}-x"}}
    inputs["pipelinechannel--word"] = {"componentInputParameter": "word"}
    make = parse_pipeline_spec(yaml.safe_dump(document)).root.dag.tasks["make"]
    assert make.parameters["pipelinechannel--word"].source == ComponentInputParameter("word")


def test_task_policies():
    tasks = parsed().root.dag.tasks
    assert tasks["train"].trigger == TriggerPolicy("inputs.parameter_values['flag'] == true",
                                                   ALL_UPSTREAM_TASKS_SUCCEEDED)
    assert tasks["train"].retry == RetryPolicy(2, backoff_seconds=1.5, backoff_factor=2.0, backoff_max_seconds=3600)
    assert tasks["notify"].trigger == TriggerPolicy(None, ALL_UPSTREAM_TASKS_COMPLETED)
    assert tasks["make"].trigger == TriggerPolicy() and tasks["make"].retry is None
    loop = tasks["loop"]
    assert loop.parameter_iterator == ParameterIterator(item_input="item", input_parameter="items-in")
    assert loop.iterator is loop.parameter_iterator and loop.parallelism_limit == 2
    fan = tasks["fan"]
    assert fan.parameter_iterator == ParameterIterator("entry", raw='[{"tag": "a"}, {"tag": "b"}]')
    assert fan.parallelism_limit is None
    assert tasks["fan-artifacts"].artifact_iterator == ArtifactIterator("one-model", "models")
    assert tasks["make"].iterator is None


def test_dag_outputs_and_order():
    spec = parsed()
    root = spec.root.dag
    assert root.output_parameters == {"answer": DagOutputParameter("answer", (ParameterSelector("branches", "pick"),))}
    assert root.output_artifacts == {"model": DagOutputArtifact("model", (ArtifactSelector("train", "model"),))}
    branches = spec.components["comp-branches"].dag
    assert branches.output_parameters["pick"] == DagOutputParameter(
        "pick", (ParameterSelector("big", "Output"), ParameterSelector("small", "Output")), one_of=True)
    # Upstream tasks are dependentTasks plus the producers of inputs; the order puts them first.
    assert root.upstream["train"] == ("make",)
    assert root.upstream["notify"] == ("train",)
    assert root.upstream["fan-artifacts"] == ("loop",)
    assert root.upstream["make"] == ()
    assert root.order == ("branches", "fan", "load", "loop", "fan-artifacts", "make", "train", "notify")


def test_producers_count_as_upstream_without_dependent_tasks():
    document = spec_document()
    del document["root"]["dag"]["tasks"]["train"]["dependentTasks"]
    train = parse_pipeline_spec(document).root.dag
    assert train.upstream["train"] == ("make",)
    assert train.order.index("make") < train.order.index("train")


# --- the forms a spec comes in --------------------------------------------------------------------------


def test_a_platform_spec_after_the_pipeline_spec_is_kept():
    text = SPEC_YAML + "\n---\n" + PLATFORM_YAML
    spec = parse_pipeline_spec(text)
    assert spec.platform_spec == yaml.safe_load(PLATFORM_YAML)
    assert spec.document == spec_document()
    assert parse_pipeline_spec(text.encode()).platform_spec == spec.platform_spec
    assert parse_pipeline_spec([spec_document(), yaml.safe_load(PLATFORM_YAML)]).platform_spec == spec.platform_spec


def test_wrapped_and_json_forms():
    wrapped = {"pipeline_spec": spec_document(), "platform_spec": yaml.safe_load(PLATFORM_YAML)}
    spec = parse_pipeline_spec(wrapped)
    assert spec.name == "every-field" and spec.platform_spec == wrapped["platform_spec"]
    assert parse_pipeline_spec(json.dumps(wrapped)).platform_spec == wrapped["platform_spec"]
    assert parse_pipeline_spec({"pipelineSpec": spec_document()}).platform_spec is None
    assert parse_pipeline_spec(json.dumps(spec_document())) == parsed()
    # A trailing document separator adds no document.
    assert load_documents(SPEC_YAML + "\n---\n") == [spec_document()]
    assert split_documents(SPEC_YAML).platform_spec is None


ARGO_WORKFLOW = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                 "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]}}


def test_is_pipeline_spec_tells_ir_from_argo():
    assert is_pipeline_spec(spec_document())
    assert is_pipeline_spec({"pipeline_spec": spec_document()})
    assert is_pipeline_spec({"pipelineSpec": spec_document(), "platformSpec": {"platforms": {}}})
    assert is_pipeline_spec([spec_document(), yaml.safe_load(PLATFORM_YAML)])
    assert not is_pipeline_spec(ARGO_WORKFLOW)
    assert not is_pipeline_spec({"pipelineInfo": {"name": "x"}})  # no root
    for other in (None, "text", 3, [], [ARGO_WORKFLOW], {"pipeline_spec": "x"}):
        assert not is_pipeline_spec(other)


# --- what is refused ------------------------------------------------------------------------------------


def _tasks(document: dict[str, Any]) -> dict[str, Any]:
    return document["root"]["dag"]["tasks"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to the document: set the value at a slash-separated path (None deletes it)."""

    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = document
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)

    return change


REFUSALS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown component", _set("root/dag/tasks/make/componentRef/name", "comp-nope"),
     'Invalid pipeline spec: root task "make" calls component "comp-nope", which components does not define.'),
    ("unknown executor", _set("components/comp-make/executorLabel", "exec-nope"),
     'component "comp-make" names executor "exec-nope", which deploymentSpec.executors does not define.'),
    ("unknown dependency", _set("root/dag/tasks/train/dependentTasks", ["make", "ghost"]),
     'root task "train" depends on task "ghost", which is not a task of this DAG.'),
    ("unknown producer of a parameter",
     _set("root/dag/tasks/train/inputs/parameters/size/taskOutputParameter/producerTask", "ghost"),
     'root task "train" takes input "size" from task "ghost", which is not a task of this DAG.'),
    ("unknown producer of an artifact",
     _set("root/dag/tasks/train/inputs/artifacts/data/taskOutputArtifact/producerTask", "ghost"),
     'root task "train" takes input "data" from task "ghost"'),
    ("unknown producer of a final status",
     _set("root/dag/tasks/notify/inputs/parameters/status/taskFinalStatus/producerTask", "ghost"),
     'root task "notify" takes input "status" from task "ghost"'),
    ("dependency cycle", _set("root/dag/tasks/make/dependentTasks", ["notify"]),
     "root: the task dependencies form a cycle (make -> train -> notify -> make)."),
    ("self dependency", _set("root/dag/tasks/make/dependentTasks", ["make"]),
     "the task dependencies form a cycle (make -> make)"),
    ("unknown input name", _set("root/dag/tasks/make/inputs/parameters/colour", {"runtimeValue": {"constant": 1}}),
     'root task "make" passes input parameter "colour", which component "comp-make" does not declare.'),
    ("unknown input artifact name",
     _set("root/dag/tasks/train/inputs/artifacts/other", {"componentInputArtifact": "x"}),
     'root task "train" passes input artifact "other", which component "comp-train" does not declare.'),
    ("unknown component input", _set("root/dag/tasks/make/inputs/parameters/word/componentInputParameter", "nope"),
     'root task "make" reads input parameter "nope", which root does not declare.'),
    ("unknown component input artifact",
     _set("components/comp-fan-artifacts/dag/tasks/inspect/inputs/artifacts/model/componentInputArtifact", "nope"),
     'component "comp-fan-artifacts" task "inspect" reads input artifact "nope"'),
    ("unknown output parameter",
     _set("root/dag/tasks/train/inputs/parameters/size/taskOutputParameter/outputParameterKey", "rows"),
     'reads output parameter "rows" of task "make", which component "comp-make" does not declare.'),
    ("unknown output artifact",
     _set("root/dag/tasks/train/inputs/artifacts/data/taskOutputArtifact/outputArtifactKey", "model"),
     'reads output artifact "model" of task "make", which component "comp-make" does not declare.'),
    ("missing input", _set("root/dag/tasks/make/inputs/parameters/rows", None),
     'root task "make" does not pass input parameter "rows" of component "comp-make".'),
    ("missing input artifact", _set("root/dag/tasks/train/inputs/artifacts/data", None),
     'root task "train" does not pass input artifact "data" of component "comp-train".'),
    ("iterating over an input not passed", _set("root/dag/tasks/loop/parameterIterator/items/inputParameter", "x"),
     'root task "loop" iterates over input parameter "x", which it does not pass.'),
    ("loop item not declared", _set("root/dag/tasks/loop/parameterIterator/itemInput", "thing"),
     'passes each item as input parameter "thing", which component "comp-loop" does not declare.'),
    ("artifact loop over an input not passed",
     _set("root/dag/tasks/fan-artifacts/artifactIterator/items/inputArtifact", "x"),
     'root task "fan-artifacts" iterates over input artifact "x", which it does not pass.'),
    ("dag output from an unknown task", _set("root/dag/outputs/parameters/answer/valueFromParameter/producerSubtask",
                                             "ghost"),
     'root: dag output parameter "answer" comes from task "ghost", which is not a task of this DAG.'),
    ("dag output of an unknown key",
     _set("components/comp-loop/dag/outputs/artifacts/models/artifactSelectors", [
         {"producerSubtask": "train-one", "outputArtifactKey": "nope"}]),
     'dag output artifact "models" comes from output "nope" of task "train-one"'),
    ("dag output not declared", _set("root/outputDefinitions", None),
     'root: dag output parameter "answer" is not in its outputDefinitions.'),
    ("recursion", _set("components/comp-loop/dag/tasks/train-one/componentRef/name", "comp-loop"),
     'Unsupported pipeline spec: component "comp-loop" calls itself'),
    ("bad condition", _set("root/dag/tasks/train/triggerPolicy/condition", "inputs.parameter_values['flag'] ==="),
     "root task \"train\" triggerPolicy.condition: \"inputs.parameter_values['flag'] ===\" is not a valid CEL "
     "expression"),
    ("condition on an input the task does not pass",
     _set("root/dag/tasks/train/triggerPolicy/condition", "inputs.parameter_values['flag'] && "
                                                          "inputs.parameter_values.ghost == 1"),
     'root task "train" triggerPolicy.condition reads input parameter "ghost", which the task does not pass.'),
    ("bad selector",
     _set("components/comp-fan/dag/tasks/describe/inputs/parameters/tag/parameterExpressionSelector", "parseJson("),
     'input parameter "tag": \'parseJson(\' is not a valid CEL expression'),
    ("bad strategy", _set("root/dag/tasks/notify/triggerPolicy/strategy", "SOMETIMES"),
     'root task "notify" triggerPolicy: strategy "SOMETIMES" is not one of'),
    ("both executor and dag", _set("components/comp-loop/executorLabel", "exec-say"),
     'component "comp-loop" must have exactly one of executorLabel and dag.'),
    ("neither executor nor dag", _set("components/comp-make/executorLabel", None),
     'component "comp-make" must have exactly one of executorLabel and dag.'),
    ("unknown parameter type", _set("components/comp-make/inputDefinitions/parameters/rows/parameterType", "INT64"),
     'parameter "rows": parameterType "INT64" is not one of STRING'),
    ("default of the wrong type", _set("root/inputDefinitions/parameters/count/defaultValue", 2.5),
     'root inputDefinitions parameter "count": the defaultValue 2.5 is not a NUMBER_INTEGER.'),
    ("boolean default for a number", _set("root/inputDefinitions/parameters/ratio/defaultValue", True),
     "the defaultValue true is not a NUMBER_DOUBLE."),
    ("two input sources", _set("root/dag/tasks/make/inputs/parameters/word/runtimeValue", {"constant": "x"}),
     'root task "make" input parameter "word" must have exactly one of componentInputParameter'),
    ("a runtime parameter", _set("root/dag/tasks/make/inputs/parameters/rows/runtimeValue", {"runtimeParameter": "x"}),
     "Unsupported pipeline spec: root task \"make\" input parameter \"rows\": runtimeValue.runtimeParameter"),
    ("raw items that are not a list", _set("root/dag/tasks/fan/parameterIterator/items/raw", '{"a": 1}'),
     'root task "fan" parameterIterator: items.raw must be a JSON list.'),
    ("raw items that are not JSON", _set("root/dag/tasks/fan/parameterIterator/items/raw", "[1,"),
     "items.raw is not valid JSON."),
    ("both iterators", _set("root/dag/tasks/fan/artifactIterator", {"itemInput": "a", "items": {"inputArtifact": "b"}}),
     'root task "fan" has both parameterIterator and artifactIterator.'),
    ("negative retries", _set("root/dag/tasks/train/retryPolicy/maxRetryCount", -1),
     "retryPolicy maxRetryCount must be a non-negative whole number."),
    ("bad backoff", _set("root/dag/tasks/train/retryPolicy/backoffDuration", "1m"),
     'retryPolicy backoffDuration "1m" is not a duration in seconds'),
    ("bad parallelism", _set("root/dag/tasks/loop/iteratorPolicy/parallelismLimit", "two"),
     "iteratorPolicy.parallelismLimit must be a non-negative whole number."),
    ("resolver executor", _set("deploymentSpec/executors/exec-train", {"resolver": {"outputArtifactQueries": {}}}),
     'Unsupported pipeline spec: executor "exec-train" is a resolver'),
    ("custom job executor", _set("deploymentSpec/executors/exec-train", {"customJob": {"customJob": {}}}),
     'executor "exec-train" is a Vertex AI custom job'),
    ("container without command", _set("deploymentSpec/executors/exec-train/container/command", None),
     'Unsupported pipeline spec: executor "exec-train": the container has no command.'),
    ("container without image", _set("deploymentSpec/executors/exec-train/container/image", ""),
     'executor "exec-train": container.image is missing.'),
    ("importer URI from an undeclared input",
     _set("deploymentSpec/executors/exec-load/importer/artifactUri/runtimeParameter", "other"),
     'component "comp-load": its importer reads the URI from input parameter "other", which component "comp-load" '
     "does not declare."),
    ("no pipeline name", _set("pipelineInfo/name", None), "Invalid pipeline spec: pipelineInfo.name is missing."),
    ("another schema", _set("schemaVersion", "3.0.0"), 'schemaVersion "3.0.0" is not a 2.x pipeline spec schema.'),
    ("root without a dag", _set("root/dag", None), "root must be a DAG (root.dag)."),
    ("a dag without tasks", _set("components/comp-fan/dag/tasks", {}),
     'component "comp-fan": dag.tasks must name at least one task.'),
    ("a component named root", _set("components/root", {"executorLabel": "exec-say"}),
     '"root" cannot be the name of a component'),
    ("dependentTasks not a list", _set("root/dag/tasks/train/dependentTasks", "make"),
     'root task "train" dependentTasks must be a list.'),
]


@pytest.mark.parametrize(("change", "message"), [(change, message) for _, change, message in REFUSALS],
                         ids=[name for name, _, _ in REFUSALS])
def test_refused(change: Callable[[dict[str, Any]], None], message: str):
    document = spec_document()
    change(document)
    with pytest.raises(WorkflowError) as raised:
        parse_pipeline_spec(document)
    assert message in str(raised.value)


@pytest.mark.parametrize(("source", "message"), [
    (ARGO_WORKFLOW, "expected a KFP v2 pipeline spec (an object with pipelineInfo and root, as the kfp 2.x SDK "
                    "compiles), got an Argo Workflow (a kfp 1.x pipeline)."),
    ({"name": "x"}, "got an object without pipelineInfo and root."),
    ("just text", "got a string."),
    ("[1, 2]", "got a list."),
    ("", "Invalid pipeline spec: the document is empty."),
    ("a: [1,", "Failed to parse the pipeline spec:"),
    (b"\xff\xfe", "Failed to parse the pipeline spec: the file is not UTF-8 text."),
    (SPEC_YAML + "\n---\n" + PLATFORM_YAML + "\n---\n{a: 1}\n",
     "expected a pipeline spec, optionally followed by a platform spec, got 3 documents."),
    (SPEC_YAML + "\n---\n{a: 1}\n", "the document after the pipeline spec must be a platform spec (platforms:)."),
    ([{"pipeline_spec": yaml.safe_load(SPEC_YAML)}, {"platforms": {}}],
     "a wrapped pipeline spec cannot be followed by another document."),
], ids=["argo", "object", "string", "list", "empty", "bad yaml", "not utf-8", "three documents",
        "not a platform spec", "wrapped and platform"])
def test_refused_documents(source: Any, message: str):
    with pytest.raises(WorkflowError) as raised:
        parse_pipeline_spec(source)
    assert message in str(raised.value)


def test_yaml_aliases_cannot_expand_without_bound():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(7))
    with pytest.raises(WorkflowError, match="expands to too many values"):
        load_documents(bomb)


# --- the shared corpus of pipelines compiled by the kfp 2.17 SDK ----------------------------------------


def _corpus(shared_dir: Path) -> list[Path]:
    directory = shared_dir / "pipelines-v2"
    if not directory.is_dir():
        if in_ci():
            pytest.fail(f"{directory} is missing under CI=true")
        pytest.skip(f"{directory} is not present")
    paths = sorted(directory.glob("*.yaml"))
    assert paths, directory
    return paths


def _components(spec: PipelineSpec) -> list[Any]:
    return [spec.root, *spec.components.values()]


def _plausible(kind: str | None) -> Any:
    """A value of a parameter type as it reaches the executor (JSON numbers are doubles)."""
    return {"STRING": "fast", "NUMBER_INTEGER": 20.0, "NUMBER_DOUBLE": 0.5, "BOOLEAN": True, "LIST": [1.0, 2.0],
            "STRUCT": {"a": 1.0}}.get(kind or "", "x")


def test_every_corpus_pipeline_parses_with_its_expected_tasks(shared_dir: Path):
    for path in _corpus(shared_dir):
        spec = parse_pipeline_spec(path.read_text())
        expected = json.loads(path.with_name(path.stem + ".expected.json").read_text())
        assert spec.name.replace("-", "_") == expected["pipeline"], path
        display_names = {task.display_name for component in _components(spec) if component.dag
                         for task in component.dag.tasks.values()}
        assert set(expected["tasks"]) <= display_names, (path, set(expected["tasks"]) - display_names)
        # Every run argument names a pipeline parameter.
        assert set(expected["arguments"]) <= set(spec.root.inputs.parameters), path
        for component in _components(spec):
            if component.executor_label is not None:
                assert spec.executors[component.executor_label], (path, component.name)


def test_every_corpus_condition_and_selector_evaluates(shared_dir: Path):
    conditions = selectors = 0
    for path in _corpus(shared_dir):
        spec = parse_pipeline_spec(path.read_text())
        for component in _components(spec):
            if component.dag is None:
                continue
            for task in component.dag.tasks.values():
                called = spec.components[task.component]
                if task.trigger.condition is not None:
                    types = {name: called.inputs.parameters[name].type for name in task.parameters}
                    values = {name: _plausible(kind) for name, kind in types.items()}
                    assert evaluate_condition(task.trigger.condition, values, types) in (True, False), (path, task)
                    conditions += 1
                iterator = task.parameter_iterator
                if iterator is None or iterator.raw is None or called.dag is None:
                    continue
                for inner in called.dag.tasks.values():
                    for parameter in inner.parameters.values():
                        if parameter.selector is not None and parameter.source == ComponentInputParameter(
                                iterator.item_input):
                            for item in json.loads(iterator.raw):
                                assert select(parameter.selector, item) is not None, (path, inner.name)
                                selectors += 1
    assert conditions >= 5 and selectors >= 2, (conditions, selectors)


def test_corpus_branches_take_the_expected_way(shared_dir: Path):
    """condition_branches: pick gives 20 (as a JSON double) and mode is 'fast': only If-not, Elif and the
    fast branch hold."""
    path = next((p for p in _corpus(shared_dir) if p.stem == "condition_branches"), None)
    if path is None:
        pytest.skip("condition_branches.yaml is not in the corpus")
    spec = parse_pipeline_spec(path.read_text())
    outcomes = {}
    for component in _components(spec):
        for task in (component.dag.tasks.values() if component.dag else ()):
            if task.trigger.condition is not None:
                values = {"pipelinechannel--pick-Output": 20.0, "pipelinechannel--mode": "fast"}
                given = {name: values[name] for name in task.parameters}
                types = {name: spec.components[task.component].inputs.parameters[name].type for name in given}
                outcomes[task.display_name] = evaluate_condition(task.trigger.condition, given, types)
    assert outcomes == {"big": False, "twenty": True, "other": False, "is-fast": True, "not-fast": False}
