"""workflow.expressions: placeholders, `when` (govaluate as Argo uses it), loop items, node ids, output files."""

from __future__ import annotations

import pytest

from kfp_backend.workflow.compile import compile_workflow
from kfp_backend.workflow.expressions import (
    ArtifactReference,
    LoopError,
    UnresolvedPlaceholder,
    WhenError,
    artifact_reference,
    evaluate_when,
    fnv1a_32,
    has_placeholders,
    item_description,
    item_scope,
    item_text,
    loop_items_from_param,
    node_id,
    parameter_value_from_file,
    placeholders,
    substitute,
    task_outputs_scope,
    template_scope,
    when_error_message,
    workflow_parameters_scope,
)

# --- placeholders ----------------------------------------------------------------------------------------


def test_substitute_replaces_every_placeholder_once():
    scope = {"inputs.parameters.x": "1", "item.a": "{{item}}", "workflow.name": "wf-abc",
             "tasks.t.outputs.parameters.p": "out"}
    assert substitute("--x={{inputs.parameters.x}} {{ item.a }} {{  workflow.name}}", scope) == "--x=1 {{item}} wf-abc"
    assert substitute('"{{tasks.t.outputs.parameters.p}}" == "out"', scope) == '"out" == "out"'
    assert substitute("no placeholders { } {{ and }", scope) == "no placeholders { } {{ and }"
    assert substitute("", scope) == ""


def test_substitute_raises_on_unknown_names():
    with pytest.raises(UnresolvedPlaceholder) as raised:
        substitute("a {{inputs.parameters.x}} {{ pod.name }}", {"inputs.parameters.x": "1"})
    assert raised.value.name == "pod.name"
    assert isinstance(raised.value, ValueError)
    assert "{{pod.name}}" in str(raised.value)


def test_has_placeholders_and_names():
    assert has_placeholders("x {{item}}")
    assert has_placeholders("{{ workflow.status }}")
    assert not has_placeholders("{item} {{ }")
    assert placeholders("{{a}} b {{ c.d }} {{a}}") == ["a", "c.d", "a"]


def test_template_scope():
    document = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "wf"},
        "spec": {"entrypoint": "step", "templates": [{
            "name": "step",
            "container": {"image": "a", "command": ["sh"]},
            "inputs": {"parameters": [{"name": "x"}, {"name": "d", "default": "dflt"}, {"name": "missing"}],
                       "artifacts": [{"name": "in", "path": "/tmp/inputs/in/data"}]},
            "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/outputs/p/data"}}],
                        "artifacts": [{"name": "a", "path": "/tmp/outputs/a/data"}]},
        }]},
    }
    template = compile_workflow(document).templates["step"]
    scope = template_scope(template, {"x": "1"}, {"workflow.name": "wf", "pod.name": "wf-1"})
    assert scope == {
        "workflow.name": "wf", "pod.name": "wf-1",
        "inputs.parameters.x": "1", "inputs.parameters.d": "dflt",
        "inputs.artifacts.in.path": "/tmp/inputs/in/data",
        "outputs.parameters.p.path": "/tmp/outputs/p/data",
        "outputs.artifacts.a.path": "/tmp/outputs/a/data",
    }
    mapped = template_scope(template, {"x": "1", "d": "given"}, {}, map_path=lambda p: "/sandbox" + p)
    assert mapped["inputs.parameters.d"] == "given"
    assert mapped["outputs.parameters.p.path"] == "/sandbox/tmp/outputs/p/data"


def test_small_scopes_and_artifact_references():
    assert task_outputs_scope("t", {"p": "v"}) == {"tasks.t.outputs.parameters.p": "v"}
    assert workflow_parameters_scope({"n": "3"}) == {"workflow.parameters.n": "3"}
    assert artifact_reference("{{tasks.write-file.outputs.artifacts.write-file-out}}") == ArtifactReference(
        "write-file", "write-file-out")
    assert artifact_reference("{{inputs.artifacts.x}}") == ArtifactReference(None, "x")
    assert artifact_reference("{{workflow.parameters.x}}") is None


# --- when ------------------------------------------------------------------------------------------------

WHEN_TABLE = [
    ('"heads" == "heads"', True),
    ('"heads" == "tails"', False),
    ('"heads" != "tails"', True),
    ('"1.0" == "1"', False),
    ("1.0 == 1", True),
    ('"1" == 1', False),
    ("5 > 3", True),
    ("3 > 5", False),
    ("10 > 9", True),
    ("9 >= 9", True),
    ("2.5 < 10", True),
    ("-1 < 0", True),
    ("heads == heads", True),
    ("heads != tails", True),
    ('heads == "heads"', True),
    ('"b" > "a"', True),
    ("true", True),
    ("false", False),
    ("!false", True),
    ("true && false", False),
    ("true || false", True),
    ("1 < 2 && (3 > 4 || 5 == 5)", True),
    ("!(1 < 2)", False),
    ("1 + 2 == 3", True),
    ("'single' == \"single\"", True),
    ('"a\\"b" == "a\\"b"', True),
    ('"abc" =~ "^a"', True),
    ('"abc" !~ "^a"', False),
    ("", True),
]


@pytest.mark.parametrize(("expression", "expected"), WHEN_TABLE)
def test_when_table(expression, expected):
    assert evaluate_when(expression) is expected


WHEN_ERRORS = [
    ("abc > 3", "cannot be used with the comparator '>', it is not a number"),
    ("3 > abc", "it is not a number"),
    ('"x" && true', "it is not a bool"),
    ("5", "Expected boolean evaluation for '5'. Got 5"),
    ("heads", "Expected boolean evaluation for 'heads'. Got heads"),
    ('"a"b" == "x"', "Unclosed string literal"),  # a value holding a quote breaks the quoted form
    ("(1 == 1", "Unbalanced parenthesis"),
    ("1 == 1)", "Unexpected token"),
    ("1 ==", "Unexpected end of expression"),
    ("== 1", "Unexpected token"),
    ("a # b", "Invalid token"),
    ("hello world == x", "Unexpected token"),
    ("   ", "Unexpected end of expression"),
]


@pytest.mark.parametrize(("expression", "why"), WHEN_ERRORS)
def test_when_errors(expression, why):
    with pytest.raises(WhenError) as raised:
        evaluate_when(expression)
    assert why in str(raised.value)


def test_when_error_message():
    try:
        evaluate_when("abc > 3")
    except WhenError as exc:
        message = when_error_message("abc > 3", exc)
    assert message == ("Invalid 'when' expression 'abc > 3': Value 'abc' cannot be used with the comparator '>', "
                       "it is not a number")


# --- loops -----------------------------------------------------------------------------------------------


def test_loop_items_from_param():
    assert loop_items_from_param('[1, "a", {"b": 2}]') == [1, "a", {"b": 2}]
    assert loop_items_from_param("[]") == []
    for bad in ('{"a": 1}', "3", "not json", "", '"[1]"'):
        with pytest.raises(LoopError) as raised:
            loop_items_from_param(bad)
        assert str(raised.value) == f"withParam value could not be parsed as a JSON list: {bad}"


def test_item_text_and_scope():
    assert item_text("a b") == "a b"
    assert item_text(1) == "1"
    assert item_text(2.5) == "2.5"
    assert item_text(True) == "true"
    assert item_text(False) == "false"
    assert item_text(None) == "null"
    assert item_text([1, "x"]) == '[1,"x"]'
    assert item_scope("hello") == {"item": "hello"}
    assert item_scope(3) == {"item": "3"}
    assert item_scope({"b": "x", "a": 1}) == {"item": '{"a":1,"b":"x"}', "item.b": "x", "item.a": "1"}
    assert item_scope({"n": {"z": 1, "y": [True]}, "f": 1.5, "t": False}) == {
        "item": '{"f":1.5,"n":{"y":[true],"z":1},"t":false}',
        "item.n": '{"y":[true],"z":1}', "item.f": "1.5", "item.t": "false",
    }
    assert item_scope([1, 2]) == {"item": "[1,2]"}
    assert item_scope("é") == {"item": "é"}


def test_item_description():
    assert item_description(0, 1) == "0:1"
    assert item_description(2, "hello world") == "2:hello world"
    assert item_description(1, 2.5) == "1:2.5"
    assert item_description(0, True) == "0:true"
    assert item_description(0, {"q": "z", "p": 1}) == "0:p:1,q:z"
    assert item_description(3, [1, "a"]) == '3:[1,"a"]'
    assert item_description(0, "f(x)") == "0:fx"
    assert item_description(0, {"a": "(1)", "b": {"c": 1}}) == '0:a:1,b:{"c":1}'


# --- node ids, output files ------------------------------------------------------------------------------


def _fnv1a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) % (1 << 32)
    return value


def test_fnv1a_32_vectors():
    assert fnv1a_32(b"") == 2166136261
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968
    assert fnv1a_32("wf.é".encode()) == _fnv1a("wf.é".encode())


def test_node_id():
    assert node_id("my-wf-x7k2p", "my-wf-x7k2p") == "my-wf-x7k2p"
    name = "my-wf-x7k2p.exit-handler-1.add"
    assert node_id("my-wf-x7k2p", name) == f"my-wf-x7k2p-{_fnv1a(name.encode())}"
    assert node_id("wf", "a") == "wf-3826002220"
    assert node_id("wf", "wf.onExit") != node_id("wf", "wf.onexit")


def test_parameter_value_from_file():
    assert parameter_value_from_file(b"a\n\n") == "a\n"
    assert parameter_value_from_file(b"a\n") == "a"
    assert parameter_value_from_file(b"a") == "a"
    assert parameter_value_from_file(b"") == ""
    assert parameter_value_from_file(b"a\r\n") == "a\r"
    assert parameter_value_from_file(b"\xff ok\n") == "\ufffd ok"
