"""workflow.ir.conditions: the CEL of task conditions (as the kfp 2.17 compiler writes them) and selectors."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.conditions import (
    ConditionError,
    compile_condition,
    evaluate_condition,
    parameter_names,
    python_value,
    select,
    typed_value,
)

PICK = "pipelinechannel--flip-coin-Output"
X = "pipelinechannel--x"


def _holds(expression: str, values: dict[str, Any], types: dict[str, str] | None = None) -> bool:
    return evaluate_condition(expression, values, types)


# --- what the kfp 2.17 compiler writes ------------------------------------------------------------------


def test_string_comparisons():
    expression = f"inputs.parameter_values['{PICK}'] == 'heads'"
    assert _holds(expression, {PICK: "heads"}, {PICK: "STRING"})
    assert not _holds(expression, {PICK: "tails"}, {PICK: "STRING"})
    assert _holds(f"inputs.parameter_values['{PICK}'] != 'heads'", {PICK: "tails"}, {PICK: "STRING"})


@pytest.mark.parametrize("value", [7, 7.0, "7", "7.0"], ids=["int", "json double", "text", "double text"])
def test_integer_comparisons_whatever_form_the_number_arrives_in(value: Any):
    types = {X: "NUMBER_INTEGER"}
    assert _holds(f"int(inputs.parameter_values['{X}']) > 5", {X: value}, types)
    assert not _holds(f"int(inputs.parameter_values['{X}']) < 5", {X: value}, types)
    assert _holds(f"int(inputs.parameter_values['{X}']) == 7", {X: value}, types)
    assert _holds(f"inputs.parameter_values['{X}'] == 7", {X: value}, types)  # typed: no cast needed


def test_else_and_elif_branches():
    """dsl.If / Elif / Else: each later branch holds the negation of the earlier ones."""
    first = f"int(inputs.parameter_values['{X}']) > 50"
    second = f"!({first}) && int(inputs.parameter_values['{X}']) == 20"
    otherwise = f"!({first}) && !(int(inputs.parameter_values['{X}']) == 20)"
    types = {X: "NUMBER_INTEGER"}
    for value, taken in ((80.0, first), (20.0, second), (3.0, otherwise)):
        outcomes = {expression: _holds(expression, {X: value}, types) for expression in (first, second, otherwise)}
        assert outcomes == {first: taken == first, second: taken == second, otherwise: taken == otherwise}


def test_booleans_doubles_and_two_parameters():
    assert _holds("inputs.parameter_values['flag'] == true", {"flag": True}, {"flag": "BOOLEAN"})
    assert _holds("inputs.parameter_values['flag'] == true", {"flag": "True"}, {"flag": "BOOLEAN"})
    assert not _holds("inputs.parameter_values['flag'] == true", {"flag": "false"}, {"flag": "BOOLEAN"})
    assert _holds("inputs.parameter_values['ratio'] > 0.25", {"ratio": 0.5}, {"ratio": "NUMBER_DOUBLE"})
    assert _holds("inputs.parameter_values['ratio'] >= 1", {"ratio": 1}, {"ratio": "NUMBER_DOUBLE"})
    assert _holds("double(inputs.parameter_values['ratio']) < 2.0", {"ratio": "1.5"}, {"ratio": "NUMBER_DOUBLE"})
    both = "inputs.parameter_values['a'] == inputs.parameter_values['b'] || inputs.parameter_values['a'] == 'z'"
    assert _holds(both, {"a": "q", "b": "q"}, {"a": "STRING", "b": "STRING"})
    assert _holds(both, {"a": "z", "b": "q"})
    assert not _holds(both, {"a": "y", "b": "q"})


def test_numbers_compare_across_int_and_double():
    assert _holds("inputs.parameter_values['n'] == 2.0", {"n": 2}, {"n": "NUMBER_INTEGER"})
    assert _holds("inputs.parameter_values['n'] < 2.5", {"n": 2}, {"n": "NUMBER_INTEGER"})
    assert _holds("2.5 > inputs.parameter_values['n']", {"n": 2}, {"n": "NUMBER_INTEGER"})
    assert _holds("inputs.parameter_values['n'] != 3.0", {"n": 2}, {"n": "NUMBER_INTEGER"})
    assert _holds("1 <= 1.0 && 1.0 >= 1", {})
    # A boolean is not a number: never equal, and not ordered against one.
    assert not _holds("inputs.parameter_values['flag'] == 1", {"flag": True}, {"flag": "BOOLEAN"})
    assert _holds("inputs.parameter_values['flag'] != 1.0", {"flag": True}, {"flag": "BOOLEAN"})
    with pytest.raises(ConditionError, match="does not apply to these operand types"):
        _holds("inputs.parameter_values['flag'] > 0", {"flag": True}, {"flag": "BOOLEAN"})


def test_lists_and_structs():
    types = {"xs": "LIST", "cfg": "STRUCT"}
    values = {"xs": [1.0, 2.0, 3.0], "cfg": {"mode": "fast", "depth": 2.0}}
    assert _holds("size(inputs.parameter_values['xs']) == 3", values, types)
    assert _holds("2.0 in inputs.parameter_values['xs']", values, types)
    assert _holds("inputs.parameter_values['cfg'].mode == 'fast'", values, types)
    assert _holds("inputs.parameter_values['cfg']['depth'] > 1", values, types)
    assert _holds("size(inputs.parameter_values['xs']) == 2", {"xs": "[1, 2]"}, types)  # text of an output file
    assert _holds("inputs.parameter_values['cfg'].k == 'v'", {"cfg": '{"k": "v"}'}, types)


def test_undeclared_and_string_typed_values_keep_their_kind():
    """A loop item is declared STRING whatever it holds; undeclared values stay as they are."""
    assert _holds("inputs.parameter_values['item'] == 3", {"item": 3}, {"item": "STRING"})
    assert _holds("inputs.parameter_values['item'] == '3'", {"item": "3"}, {"item": "STRING"})
    assert _holds("inputs.parameter_values['v'] == null", {"v": None})


# --- typing values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "declared", "expected"), [
    ("text", "STRING", "text"),
    (20.0, "NUMBER_INTEGER", 20),
    ("20", "NUMBER_INTEGER", 20),
    (3, "NUMBER_DOUBLE", 3.0),
    ("0.5", "NUMBER_DOUBLE", 0.5),
    (True, "BOOLEAN", True),
    ("false", "BOOLEAN", False),
    ([1, "a"], "LIST", [1, "a"]),
    ('["a"]', "LIST", ["a"]),
    ({"a": [1]}, "STRUCT", {"a": [1]}),
    ({"state": "FAILED"}, "TASK_FINAL_STATUS", {"state": "FAILED"}),
    ({"a": 1}, None, {"a": 1}),
    (None, "NUMBER_INTEGER", None),
])
def test_typed_value(value: Any, declared: str | None, expected: Any):
    typed = python_value(typed_value(value, declared))
    assert typed == expected and type(typed) is type(expected)


@pytest.mark.parametrize(("value", "declared", "message"), [
    (2.5, "NUMBER_INTEGER", "2.5 is not a whole number (NUMBER_INTEGER)"),
    ("2.5", "NUMBER_INTEGER", "2.5 is not a whole number (NUMBER_INTEGER)"),
    (True, "NUMBER_INTEGER", "true is not a whole number (NUMBER_INTEGER)"),
    ("many", "NUMBER_INTEGER", "'many' is not a NUMBER_INTEGER"),
    ("x", "NUMBER_DOUBLE", "'x' is not a NUMBER_DOUBLE"),
    (False, "NUMBER_DOUBLE", "false is not a number (NUMBER_DOUBLE)"),
    ("yes", "BOOLEAN", "'yes' is not a BOOLEAN"),
    (1, "BOOLEAN", "1 is not a BOOLEAN"),
    ({"a": 1}, "LIST", '{"a": 1} is not a LIST'),
    ("[1]", "STRUCT", "[1] is not a STRUCT"),
])
def test_values_that_do_not_fit_their_type(value: Any, declared: str, message: str):
    with pytest.raises(ConditionError) as raised:
        typed_value(value, declared, where='input parameter "p"')
    assert str(raised.value) == f'input parameter "p": {message}.'


def test_a_value_that_does_not_fit_names_the_input():
    with pytest.raises(ConditionError, match=r'condition: input parameter "n": 1.5 is not a whole number'):
        evaluate_condition("inputs.parameter_values['n'] > 1", {"n": 1.5}, {"n": "NUMBER_INTEGER"})


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "values", "message"), [
    ("inputs.parameter_values[", {}, "is not a valid CEL expression at line 1, column 24"),
    ("1 +* 2", {}, "'1 +* 2' is not a valid CEL expression"),
    ("", {}, "the expression is empty"),
    ("   ", {}, "the expression is empty"),
    ("inputs.parameter_values['missing'] == 1", {"x": 1}, "cannot be evaluated: there is no 'missing'"),
    ("inputs.parameter_values['x']", {"x": 3}, "gives 3, not true or false"),
    ("inputs.parameter_values['x'] == 'a'", {"x": 3}, "does not apply to these operand types"),
    ("unknown(1)", {}, "cannot be evaluated: undeclared reference to 'unknown'"),
    ("1 / 0 == 1", {}, "cannot be evaluated"),
])
def test_bad_conditions_are_clear_errors(expression: str, values: dict[str, Any], message: str):
    with pytest.raises(ConditionError) as raised:
        evaluate_condition(expression, values, where='task "t" triggerPolicy.condition')
    assert isinstance(raised.value, WorkflowError)
    assert str(raised.value).startswith('task "t" triggerPolicy.condition: ')
    assert message in str(raised.value)
    assert "activation" not in str(raised.value)  # celpy's list of names in scope is left out


def test_expressions_compile_once():
    expression = f"int(inputs.parameter_values['{X}']) > 41"
    assert compile_condition(expression) is compile_condition(expression, where="elsewhere")
    # The cached program evaluates independently in parallel threads.
    results: dict[int, bool] = {}

    def evaluate(value: int) -> None:
        results[value] = evaluate_condition(expression, {X: value}, {X: "NUMBER_INTEGER"})

    threads = [threading.Thread(target=evaluate, args=(value,)) for value in range(30, 50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {value: value > 41 for value in range(30, 50)}


# --- parameter selectors --------------------------------------------------------------------------------


def test_selectors_pick_fields_of_items():
    assert select('parseJson(string_value)["tag"]', {"tag": "a", "size": "1"}) == "a"
    assert select('parseJson(string_value)["size"]', '{"tag": "a", "size": 2}') == 2
    assert select("parseJson(string_value)[1]", [1.5, 2.5]) == 2.5
    assert select("struct_value.tag", {"tag": "b"}) == "b"
    assert select("number_value * 2.0", 1.5) == 3.0
    assert select("bool_value", True) is True
    assert select("size(list_value)", [1, 2, 3]) == 3
    assert select("string_value + '!'", "hey") == "hey!"


def test_bad_selectors():
    with pytest.raises(ConditionError, match=r"parameterExpressionSelector: 'parseJson\(' is not a valid CEL"):
        select("parseJson(", {"a": 1})
    with pytest.raises(ConditionError, match="there is no 'missing'"):
        select('parseJson(string_value)["missing"]', {"a": 1})
    with pytest.raises(ConditionError, match="cannot be evaluated"):
        select("parseJson(string_value)", "not json")


# --- the inputs a condition reads -----------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "names"), [
    (f"!(int(inputs.parameter_values['{X}']) > 50) && inputs.parameter_values[\"b\"] == 2", {X, "b"}),
    ("inputs.parameter_values.c == 1 || 'x' == inputs.parameter_values['d']", {"c", "d"}),
    ("1 == 1", set()),
    ("inputs.other['a'] == 1", set()),  # not a parameter value (and fails at run time)
    ("inputs.parameter_values[inputs.parameter_values['k']] == 1", None),  # a computed key
    ("size(inputs.parameter_values) > 1", None),  # the whole map
    ("inputs.parameter_values['it\\'s'] == 1", None),  # an escape: left to run time
])
def test_parameter_names(expression: str, names: set[str] | None):
    found = parameter_names(expression)
    assert (None if found is None else set(found)) == names


def test_the_cel_environment_never_lowers_the_recursion_limit():
    """celpy sets the limit to 2500 when its environment is made: a higher limit stays."""
    code = ("import sys; sys.setrecursionlimit({limit}); "
            "from kfp_backend.workflow.ir.conditions import compile_condition; "
            "compile_condition('1 == 1'); print(sys.getrecursionlimit())")
    for limit, expected in ((10000, "10000"), (1000, "2500")):
        result = subprocess.run([sys.executable, "-c", code.format(limit=limit)], capture_output=True, text=True,
                                check=True, cwd=Path(__file__).resolve().parents[2])
        assert result.stdout.strip() == expected
