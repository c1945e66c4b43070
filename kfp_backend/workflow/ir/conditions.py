"""CEL expressions of a KFP v2 pipeline spec: task conditions and input parameter selectors.

`triggerPolicy.condition` is a CEL expression over the task's resolved input parameters, e.g.
`int(inputs.parameter_values['pipelinechannel--pick-Output']) > 50 && !(...)`; `evaluate_condition` gives
its truth with each value typed as the IR declares it (`typed_value`). `parameterExpressionSelector` is
a CEL expression over one value (`parseJson(string_value)["tag"]` picks a field of a loop item);
`select` applies it. Expressions are compiled once and cached (cel-python, module `celpy`).

Numbers compare across int and double (`2 == 2.0`, `5 < 5.5`), as the current CEL specification
defines: JSON numbers reach the executor as doubles and kfp casts only some operands.
Every problem raises ConditionError (a WorkflowError) saying which expression and why.
"""

from __future__ import annotations

import json
import math
import operator
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELSyntaxError, CELUnsupportedError, base_functions

from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.ir.model import (
    BOOLEAN,
    LIST,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    STRING,
    STRUCT,
    TASK_FINAL_STATUS,
)


class ConditionError(WorkflowError):
    """A condition or selector that does not compile, or cannot be evaluated on the values given."""


_CACHE_SIZE = 4096
_lock = threading.Lock()  # compiling goes through celpy's one shared parser
_environment: celpy.Environment | None = None


def _cel() -> celpy.Environment:
    """The CEL environment, made on first use (building celpy's parser takes a fifth of a second)."""
    global _environment
    if _environment is None:
        previous = sys.getrecursionlimit()
        _environment = celpy.Environment()  # sets the recursion limit to what CEL nesting needs (2500)...
        sys.setrecursionlimit(max(previous, sys.getrecursionlimit()))  # ...never lowering a higher one
    return _environment


def _numeric(python_operator: Callable[[Any, Any], bool], base: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """A comparison that compares int with double by value, booleans with numbers never, and anything else
    as celpy does."""

    def compare(left: Any, right: Any) -> Any:
        if _is_number(left) and _is_number(right) and type(left) is not type(right):
            return celtypes.BoolType(python_operator(float(left), float(right)))
        if (_is_number(left) and isinstance(right, celtypes.BoolType)) \
                or (_is_number(right) and isinstance(left, celtypes.BoolType)):
            # celpy's booleans are Python ints; in CEL a boolean never equals a number.
            if python_operator in (operator.eq, operator.ne):
                return celtypes.BoolType(python_operator is operator.ne)
            raise TypeError("no such overload")
        return base(left, right)

    return compare


def _is_number(value: Any) -> bool:
    return isinstance(value, celtypes.IntType | celtypes.UintType | celtypes.DoubleType) \
        and not isinstance(value, celtypes.BoolType)


def _parse_json(text: Any) -> Any:
    if not isinstance(text, str):
        raise TypeError(f"parseJson takes a string, not {type(text).__name__}")
    return celpy.json_to_cel(json.loads(text))


_FUNCTIONS: dict[str, Any] = {
    name: _numeric(python_operator, base_functions[name])
    for name, python_operator in (("_==_", operator.eq), ("_!=_", operator.ne), ("_<_", operator.lt),
                                  ("_<=_", operator.le), ("_>_", operator.gt), ("_>=_", operator.ge))
}
_FUNCTIONS["parseJson"] = _parse_json


@dataclass(frozen=True)
class CompiledExpression:
    text: str
    program: Any  # a celpy Runner: evaluating it builds its own evaluator, so threads may share it

    def run(self, variables: Mapping[str, Any], where: str) -> Any:
        try:
            result = self.program.evaluate(dict(variables))
        except CELEvalError as exc:
            raise ConditionError(f"{where}: {self.text!r} cannot be evaluated: {_reason(exc)}.") from None
        except (TypeError, ValueError, KeyError, ArithmeticError, RecursionError) as exc:
            raise ConditionError(f"{where}: {self.text!r} cannot be evaluated: {exc}.") from None
        if isinstance(result, CELEvalError):  # errors can also come back as values
            raise ConditionError(f"{where}: {self.text!r} cannot be evaluated: {_reason(result)}.")
        return result


def compile_condition(expression: str, where: str = "condition") -> CompiledExpression:
    """The compiled form of a CEL expression (cached); ConditionError when it is not valid CEL."""
    try:
        return _compile(expression)
    except ConditionError as exc:
        raise ConditionError(f"{where}: {exc}") from None


compile_selector = compile_condition  # a selector is a CEL expression too; only its variables differ


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(expression: str) -> CompiledExpression:
    if not isinstance(expression, str) or not expression.strip():
        raise ConditionError("the expression is empty")
    with _lock:
        try:
            environment = _cel()
            tree = environment.compile(expression)
            program = environment.program(tree, functions=_FUNCTIONS)
        except (CELParseError, CELSyntaxError, CELUnsupportedError) as exc:
            where = f" at line {exc.line}, column {exc.column}" if getattr(exc, "line", None) else ""
            raise ConditionError(f"{expression!r} is not a valid CEL expression{where}") from None
        except RecursionError:
            raise ConditionError(f"{expression!r} is nested too deeply") from None
    return CompiledExpression(expression, program)


def parameter_names(expression: str) -> frozenset[str] | None:
    """The input parameters a condition reads (`inputs.parameter_values['x']` or `.x`), so that a name the
    task does not pass is refused before run time; None when it reads them in a way only a run can tell
    (a computed key, the whole map)."""
    tree = compile_condition(expression).program.ast
    names: set[str] = set()
    reads = mentions = 0
    for node in tree.iter_subtrees():
        if node.data in ("member_index", "member_dot") and _is_parameter_values(node.children[0]):
            name = _string_literal(node.children[1]) if node.data == "member_index" else str(node.children[1])
            if name is None:
                return None
            names.add(name)
            reads += 1
        elif node.data == "member_dot" and _is_inputs_dot(node) and node.children[1] == "parameter_values":
            mentions += 1
    return frozenset(names) if reads == mentions else None


def _is_inputs_dot(node: Any) -> bool:
    """`inputs.<field>`: a member_dot on the bare identifier `inputs`."""
    target = _only_child_chain(node.children[0])
    return getattr(target, "type", None) == "IDENT" and target == "inputs"


def _is_parameter_values(node: Any) -> bool:
    """A `member` holding exactly `inputs.parameter_values`."""
    if getattr(node, "data", None) != "member" or len(node.children) != 1:
        return False
    inner = node.children[0]
    return getattr(inner, "data", None) == "member_dot" and _is_inputs_dot(inner) \
        and inner.children[1] == "parameter_values"


def _only_child_chain(node: Any) -> Any:
    """Down a chain of one-child trees to what it holds (a token, or the first tree with several children)."""
    while hasattr(node, "children") and len(node.children) == 1:
        node = node.children[0]
    return node


def _string_literal(node: Any) -> str | None:
    """The text of a plain quoted string literal; None for anything else (escapes, raw or triple quotes)."""
    token = _only_child_chain(node)
    text = str(token) if getattr(token, "type", None) == "STRING_LIT" else ""
    plain = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" and "\\" not in text
    return text[1:-1] if plain and text[:3] not in ("'''", '"""') else None


def evaluate_condition(
    expression: str,
    values: Mapping[str, Any],
    types: Mapping[str, str] | None = None,
    where: str = "condition",
) -> bool:
    """Whether a task's condition holds, given its resolved input parameters (`values`, by input name) and
    their declared types (`types`, e.g. the called component's inputDefinitions: name -> parameterType)."""
    compiled = compile_condition(expression, where)
    types = types or {}
    parameter_values = celtypes.MapType({
        celtypes.StringType(name): typed_value(value, types.get(name), f'{where}: input parameter "{name}"')
        for name, value in values.items()
    })
    result = compiled.run({"inputs": celtypes.MapType({celtypes.StringType("parameter_values"): parameter_values})},
                          where)
    if not isinstance(result, celtypes.BoolType):
        raise ConditionError(f"{where}: {expression!r} gives {python_value(result)!r}, not true or false.")
    return bool(result)


def select(selector: str, value: Any, where: str = "parameterExpressionSelector") -> Any:
    """The value a parameterExpressionSelector picks from `value` (a JSON value), as a JSON value.

    The selector sees `string_value` (the value itself if it is a string, else its JSON text, which
    `parseJson` reads back), and `number_value`, `bool_value`, `list_value`, `struct_value` for a value of
    that kind.
    """
    compiled = compile_selector(selector, where)
    variables: dict[str, Any] = {
        "string_value": celtypes.StringType(value if isinstance(value, str) else json.dumps(value)),
        "number_value": celtypes.DoubleType(0.0),
        "bool_value": celtypes.BoolType(False),
        "list_value": celtypes.ListType(),
        "struct_value": celtypes.MapType(),
    }
    if isinstance(value, bool):
        variables["bool_value"] = celtypes.BoolType(value)
    elif isinstance(value, int | float):
        variables["number_value"] = celtypes.DoubleType(value)
    elif isinstance(value, list):
        variables["list_value"] = celpy.json_to_cel(value)
    elif isinstance(value, Mapping):
        variables["struct_value"] = celpy.json_to_cel(dict(value))
    return python_value(compiled.run(variables, where))


def typed_value(value: Any, declared: str | None, where: str = "value") -> Any:
    """A JSON value (or the text of one, as read from an output file) as the CEL value of its declared
    parameter type. Numbers arrive as doubles: an integer type makes `20.0` the int 20."""
    if isinstance(value, str) and declared not in (None, STRING):
        value = _decoded(value, declared, where)
    if value is None:
        return None
    if declared == NUMBER_INTEGER:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not float(value).is_integer():
            raise ConditionError(f"{where}: {_show(value)} is not a whole number (NUMBER_INTEGER).")
        return celtypes.IntType(int(value))
    if declared == NUMBER_DOUBLE:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConditionError(f"{where}: {_show(value)} is not a number (NUMBER_DOUBLE).")
        return celtypes.DoubleType(float(value))
    expected = {BOOLEAN: bool, LIST: list, STRUCT: Mapping, TASK_FINAL_STATUS: Mapping}.get(declared or "")
    if expected is not None and not isinstance(value, expected):
        raise ConditionError(f"{where}: {_show(value)} is not a {declared}.")
    # STRING and undeclared values keep their own kind: a loop item is declared STRING whatever it holds.
    try:
        return celpy.json_to_cel(dict(value) if isinstance(value, Mapping) else value)
    except ValueError as exc:
        raise ConditionError(f"{where}: {exc}.") from None


def _decoded(text: str, declared: str, where: str) -> Any:
    if declared == BOOLEAN and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"  # Python's str(True) as well as JSON's true
    try:
        return json.loads(text)
    except ValueError:
        raise ConditionError(f"{where}: {_show(text)} is not a {declared}.") from None


def python_value(value: Any) -> Any:
    """A CEL value as the plain JSON value it stands for."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.ListType):
        return [python_value(item) for item in value]
    if isinstance(value, celtypes.MapType):
        return {python_value(key): python_value(item) for key, item in value.items()}
    if isinstance(value, celtypes.NullType):
        return None
    return value


def _reason(error: CELEvalError) -> str:
    message = str(error.args[0]) if error.args else "evaluation failed"
    message = message.split(" (in activation")[0]  # celpy appends every name in scope
    details = error.args[2] if len(error.args) > 2 else ()
    if message == "no such key" and details:
        return f"there is no {python_value(details[0])!r}"
    if "no such overload" in message or "no matching overload" in message:
        return f"an operator or function does not apply to these operand types ({message})"
    return message


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text[:100]) if isinstance(value, str) else text[:100]
