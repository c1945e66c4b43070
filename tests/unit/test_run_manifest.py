"""Run creation's rewriting of a workflow: parameters, macros, Go time layouts, names, labels, accounts."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timezone

import pytest

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.run_manifest import format_go_layout, runtime_workflow, substitute_macros

MOMENT = datetime(2024, 5, 1, 13, 4, 5, tzinfo=timezone.utc)  # a Wednesday, day 122
NOW = int(MOMENT.timestamp())
RUN_ID = "0b9c6f8e-1d2a-4c4e-9f00-123456789abc"


@pytest.mark.parametrize(("layout", "expected"), [
    ("20060102150405", "20240501130405"),
    ("2006-01-02T15:04:05Z07:00", "2024-05-01T13:04:05Z"),
    ("2006-01-02", "2024-05-01"),
    ("Jan _2 Mon 3:4:5 PM MST", "May  1 Wed 1:4:5 PM UTC"),
    ("January Monday 06 002 __2", "May Wednesday 24 122 122"),
    ("1/2 03pm", "5/1 01pm"),
    ("-0700|-07:00|-07|Z0700", "+0000|+00:00|+00|Z"),
    ("05.000|05.999|05,00", "05.000|05|05,00"),
    ("run-15h", "run-13h"),
    ("no tokens here!", "no tokens here!"),
])
def test_go_layouts(layout: str, expected: str) -> None:
    assert format_go_layout(layout, MOMENT) == expected


def test_macros_in_parameter_values() -> None:
    def sub(value: str) -> str:
        return substitute_macros(value, run_id=RUN_ID, now=NOW)

    assert sub("[[RunUUID]]") == RUN_ID
    assert sub("out/[[RunUUID]]/[[CurrentTime]]") == f"out/{RUN_ID}/20240501130405"
    assert sub("[[CurrentTime.2006-01-02]] at [[CurrentTime.15:04]]") == "2024-05-01 at 13:04"
    assert sub("{{$.currentTime.strftime('%Y/%m/%d')}}") == "2024/05/01"
    assert sub('{{$.currentTime.strftime("%H")}}') == "13"
    # Not for one-off runs, or unknown: left as they are.
    for kept in ("[[ScheduledTime]]", "[[Index]]", "[[Nope]]", "{{$.scheduledTime.strftime('%Y')}}",
                 "{{workflow.uid}}", "{{$.other}}", "[[", "plain"):
        assert sub(kept) == kept


def _workflow() -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "demo-", "creationTimestamp": None,
                     "annotations": {"pipelines.kubeflow.org/kfp_sdk_version": "1.8.22"}},
        "spec": {
            "entrypoint": "demo",
            "arguments": {"parameters": [
                {"name": "a", "value": "1"},
                {"name": "when", "value": "[[CurrentTime.2006]]"},
                {"name": "required"},
            ]},
            "templates": [
                {"name": "demo", "dag": {"tasks": [{"name": "step", "template": "step"}]}},
                {"name": "step",
                 "container": {"image": "alpine", "command": ["echo", "{{workflow.uid}}", "{{inputs.parameters.a}}"]},
                 "outputs": {"artifacts": [
                     {"name": "mlpipeline-ui-metadata", "path": "/ui.json"},
                     {"name": "mlpipeline-metrics", "path": "/metrics.json"},
                     {"name": "step-out", "path": "/tmp/outputs/out/data"},
                 ]}},
            ],
        },
        "status": {"startedAt": None},
    }


def test_runtime_workflow() -> None:
    document = _workflow()
    original = copy.deepcopy(document)
    workflow = runtime_workflow(document, run_id=RUN_ID, run_name="my run", now=NOW,
                                parameters=[{"name": "required", "value": "x-[[RunUUID]]"}, {"name": "a", "value": ""}])
    assert document == original  # the input is not modified
    assert "status" not in workflow
    metadata = workflow["metadata"]
    assert re.fullmatch(r"demo-[bcdfghjklmnpqrstvwxz2456789]{5}", metadata["name"])
    assert metadata["generateName"] == "demo-"
    assert "creationTimestamp" not in metadata
    assert metadata["labels"] == {"pipeline/runid": RUN_ID}
    assert metadata["annotations"] == {"pipelines.kubeflow.org/kfp_sdk_version": "1.8.22",
                                       "pipelines.kubeflow.org/run_name": "my run"}
    assert workflow["spec"]["arguments"]["parameters"] == [
        {"name": "a", "value": ""}, {"name": "when", "value": "2024"}, {"name": "required", "value": f"x-{RUN_ID}"},
    ]
    assert workflow["spec"]["serviceAccountName"] == "pipeline-runner"
    step = workflow["spec"]["templates"][1]
    assert step["container"]["command"] == ["echo", RUN_ID, "{{inputs.parameters.a}}"]
    assert step["metadata"]["labels"] == {"pipeline/runid": RUN_ID, "pipelines.kubeflow.org/cache_enabled": "true"}
    assert [a.get("optional") for a in step["outputs"]["artifacts"]] == [True, True, None]


def test_runtime_workflow_names_and_service_accounts() -> None:
    document = _workflow()
    del document["metadata"]["generateName"]
    document["metadata"]["name"] = "fixed"
    document["spec"]["serviceAccountName"] = "own-sa"

    def build(**kwargs: object) -> dict:
        return runtime_workflow(document, run_id=RUN_ID, run_name="r", parameters=[], now=NOW, **kwargs)  # type: ignore[arg-type]

    assert build()["metadata"]["name"] == "fixed"
    assert build()["spec"]["serviceAccountName"] == "own-sa"
    assert build(service_account="asked")["spec"]["serviceAccountName"] == "asked"
    document["spec"]["serviceAccountName"] = "pipeline-runner"
    assert build(default_service_account="configured")["spec"]["serviceAccountName"] == "configured"
    del document["metadata"]["name"]
    assert re.fullmatch(r"workflow-[a-z0-9]{5}", build()["metadata"]["name"])
    names = {build()["metadata"]["name"] for _ in range(20)}
    assert len(names) > 1


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        runtime_workflow(_workflow(), run_id=RUN_ID, run_name="r", now=NOW,
                         parameters=[{"name": "a", "value": "2"}, {"name": "b", "value": "3"}])
    assert caught.value.external_message == "Unrecognized input parameter: b"
    document = _workflow()
    del document["spec"]["arguments"]
    with pytest.raises(InvalidArgument):
        runtime_workflow(document, run_id=RUN_ID, run_name="r", now=NOW, parameters=[{"name": "a", "value": "1"}])
    assert "arguments" not in runtime_workflow(document, run_id=RUN_ID, run_name="r", now=NOW, parameters=[])["spec"]
