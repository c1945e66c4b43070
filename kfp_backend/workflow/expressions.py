"""Argo's expression helpers, as pure functions: `{{...}}` substitution, `when` evaluation, loop items, node ids.

Nothing here does I/O. The executor builds a scope (a flat mapping of placeholder names such as
`inputs.parameters.x` or `tasks.t.outputs.parameters.p` to their string values), substitutes it into the
strings of the typed graph, and evaluates the substituted `when` text the way Argo v3.3 does (govaluate,
with bare identifiers read as strings).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kfp_backend.workflow.graph import Template

# `{{ name }}`: Argo trims the spaces inside the braces. The name itself never holds a brace.
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class UnresolvedPlaceholder(ValueError):
    """A `{{name}}` placeholder whose name is not in the scope."""

    def __init__(self, name: str) -> None:
        super().__init__(f"failed to resolve {{{{{name}}}}}")
        self.name = name


class WhenError(ValueError):
    """A `when` expression that does not parse, or does not evaluate to a boolean; the message says why."""


class LoopError(ValueError):
    """A `withParam` value that is not a JSON list."""


# --- placeholders ------------------------------------------------------------------------------------


def placeholders(text: str) -> list[str]:
    """The names of the `{{...}}` placeholders in `text`, in order (repeats kept)."""
    return _PLACEHOLDER.findall(text)


def has_placeholders(text: str) -> bool:
    return _PLACEHOLDER.search(text) is not None


def substitute(text: str, scope: Mapping[str, str]) -> str:
    """Replace every `{{ name }}` by scope[name] in one pass (values are not substituted again).

    Raises UnresolvedPlaceholder for the first name that is not in `scope`.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        try:
            return scope[name]
        except KeyError:
            raise UnresolvedPlaceholder(name) from None

    return _PLACEHOLDER.sub(replace, text)


def template_scope(
    template: Template,
    input_values: Mapping[str, str],
    workflow_scope: Mapping[str, str],
    map_path: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """The scope in which a template's strings (container command/args/env, raw artifact data) are substituted.

    `input_values` are the resolved input parameters by name (template defaults fill the gaps);
    `workflow_scope` holds `workflow.*`, `pod.name`... as the executor knows them. `map_path` rewrites the
    in-container paths (`/tmp/outputs/x/data`) when the executor sandboxes a step by rewriting paths.
    """
    to_path = map_path or (lambda path: path)
    scope = dict(workflow_scope)
    for parameter in template.inputs_parameters:
        value = input_values.get(parameter.name, parameter.value)
        if value is not None:
            scope[f"inputs.parameters.{parameter.name}"] = value
    for artifact in template.inputs_artifacts:
        if artifact.path is not None:
            scope[f"inputs.artifacts.{artifact.name}.path"] = to_path(artifact.path)
    for output in template.outputs_parameters:
        if output.path is not None:
            scope[f"outputs.parameters.{output.name}.path"] = to_path(output.path)
    for artifact in template.outputs_artifacts:
        if artifact.path is not None:
            scope[f"outputs.artifacts.{artifact.name}.path"] = to_path(artifact.path)
    return scope


def task_outputs_scope(task: str, parameters: Mapping[str, str]) -> dict[str, str]:
    """`tasks.<task>.outputs.parameters.<name>` entries for the output parameters of a finished task."""
    return {f"tasks.{task}.outputs.parameters.{name}": value for name, value in parameters.items()}


def workflow_parameters_scope(parameters: Mapping[str, str]) -> dict[str, str]:
    """`workflow.parameters.<name>` entries for the run's resolved pipeline parameters."""
    return {f"workflow.parameters.{name}": value for name, value in parameters.items()}


@dataclass(frozen=True)
class ArtifactReference:
    """Where an artifact argument comes from: a sibling task's output, or the enclosing template's input."""

    task: str | None  # None: the enclosing template's `inputs.artifacts.<name>`
    name: str


_TASK_ARTIFACT = re.compile(r"^\{\{\s*tasks\.([^.{}\s]+)\.outputs\.artifacts\.([^{}\s]+?)\s*\}\}$")
_INPUT_ARTIFACT = re.compile(r"^\{\{\s*inputs\.artifacts\.([^{}\s]+?)\s*\}\}$")


def artifact_reference(source: str) -> ArtifactReference | None:
    """Parse an artifact `from` expression; None when it is neither of the two forms kfp emits."""
    match = _TASK_ARTIFACT.match(source)
    if match:
        return ArtifactReference(task=match.group(1), name=match.group(2))
    match = _INPUT_ARTIFACT.match(source)
    if match:
        return ArtifactReference(task=None, name=match.group(1))
    return None


# --- loops -------------------------------------------------------------------------------------------


def loop_items_from_param(value: str) -> list[Any]:
    """The items of a substituted `withParam` value, which must be a JSON list."""
    try:
        items = json.loads(value)
    except (ValueError, RecursionError):
        items = None
    if not isinstance(items, list):
        raise LoopError(f"withParam value could not be parsed as a JSON list: {value}")
    return items


def item_text(value: Any) -> str:
    """How Argo prints an item (or a field of a dict item): strings bare, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return _compact_json(value)


def item_scope(item: Any) -> dict[str, str]:
    """`{{item}}` and, for a dict item, `{{item.KEY}}` for each key."""
    scope = {"item": item_text(item)}
    if isinstance(item, dict):
        for key, value in item.items():
            scope[f"item.{key}"] = item_text(value)
    return scope


def item_description(index: int, item: Any) -> str:
    """The `i:desc` inside an iteration's node name `T(i:desc)`; parentheses are dropped from `desc`."""
    if isinstance(item, dict):
        description = ",".join(sorted(f"{key}:{item_text(value)}" for key, value in item.items()))
    else:
        description = item_text(item)
    return f"{index}:{description.replace('(', '').replace(')', '')}"


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# --- node ids and output files -----------------------------------------------------------------------

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


def fnv1a_32(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def node_id(workflow_name: str, node_name: str) -> str:
    """Argo v3.3's node id (and pod name): the workflow name for the root, else `<wf>-<fnv32a(name)>`."""
    if node_name == workflow_name:
        return workflow_name
    return f"{workflow_name}-{fnv1a_32(node_name.encode('utf-8'))}"


def parameter_value_from_file(data: bytes) -> str:
    """An output parameter's value from the file the step wrote: UTF-8 text minus one trailing newline."""
    text = data.decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\n") else text


# --- `when` ------------------------------------------------------------------------------------------


def when_error_message(expression: str, error: Exception | str) -> str:
    """The message of the Error node Argo creates for a `when` it cannot evaluate."""
    return f"Invalid 'when' expression '{expression}': {error}"


def evaluate_when(expression: str) -> bool:
    """Evaluate a substituted `when` like Argo (govaluate; bare words are strings). An empty `when` is true."""
    if expression == "":
        return True
    parser = _Parser(_tokenize(expression))
    result = parser.parse()
    if not isinstance(result, bool):
        raise WhenError(f"Expected boolean evaluation for '{expression}'. Got {_go_text(result)}")
    return result


@dataclass(frozen=True)
class _Token:
    kind: str  # "value", "op", "(", ")"
    value: Any
    position: int


_OPERATORS = ("==", "!=", ">=", "<=", "=~", "!~", "&&", "||", ">", "<", "!", "+", "-", "*", "/", "%")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|0x[0-9a-fA-F]+")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        if char.isspace():
            position += 1
            continue
        if char in "\"'":
            value, position = _read_string(text, position)
            tokens.append(_Token("value", value, position))
            continue
        if char.isdigit() or (char == "." and position + 1 < length and text[position + 1].isdigit()):
            match = _NUMBER.match(text, position)
            assert match is not None
            literal = match.group(0)
            number = float(int(literal, 16)) if literal.startswith("0x") else float(literal)
            tokens.append(_Token("value", number, position))
            position = match.end()
            continue
        if char.isalpha() or char == "_":
            end = position
            while end < length and (text[end].isalnum() or text[end] in "_."):
                end += 1
            word = text[position:end]
            if word == "true":
                tokens.append(_Token("value", True, position))
            elif word == "false":
                tokens.append(_Token("value", False, position))
            else:
                tokens.append(_Token("value", word, position))  # a govaluate variable: Argo reads it as a string
            position = end
            continue
        if char in "()":
            tokens.append(_Token(char, char, position))
            position += 1
            continue
        for operator in _OPERATORS:
            if text.startswith(operator, position):
                tokens.append(_Token("op", operator, position))
                position += len(operator)
                break
        else:
            raise WhenError(f"Invalid token: '{char}' at position {position + 1}")
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            chars.append(text[position + 1])
            position += 2
            continue
        if char == quote:
            return "".join(chars), position + 1
        chars.append(char)
        position += 1
    raise WhenError(f"Unclosed string literal starting at position {start + 1}")


_COMPARATORS = ("==", "!=", ">", "<", ">=", "<=", "=~", "!~")


class _Parser:
    """Recursive descent over govaluate's precedence: || < && < comparators < + - < * / % < prefix."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def parse(self) -> Any:
        if not self.tokens:
            raise WhenError("Unexpected end of expression")
        value = self._or()
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            raise WhenError(f"Unexpected token '{token.value}' at position {token.position + 1}")
        return value

    def _peek_op(self, operators: Iterable[str]) -> str | None:
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            if token.kind == "op" and token.value in operators:
                self.index += 1
                return token.value
        return None

    def _or(self) -> Any:
        left = self._and()
        while self._peek_op(("||",)):
            right = self._and()
            left = _bool_operand(left, "||") | _bool_operand(right, "||")
        return left

    def _and(self) -> Any:
        left = self._comparison()
        while self._peek_op(("&&",)):
            right = self._comparison()
            left = _bool_operand(left, "&&") & _bool_operand(right, "&&")
        return left

    def _comparison(self) -> Any:
        left = self._additive()
        while operator := self._peek_op(_COMPARATORS):
            right = self._additive()
            left = _compare(operator, left, right)
        return left

    def _additive(self) -> Any:
        left = self._multiplicative()
        while operator := self._peek_op(("+", "-")):
            right = self._multiplicative()
            if operator == "+" and isinstance(left, str) and isinstance(right, str):
                left = left + right
            else:
                left = _arithmetic(operator, left, right)
        return left

    def _multiplicative(self) -> Any:
        left = self._prefix()
        while operator := self._peek_op(("*", "/", "%")):
            left = _arithmetic(operator, left, self._prefix())
        return left

    def _prefix(self) -> Any:
        if self._peek_op(("!",)):
            return not _bool_operand(self._prefix(), "!")
        if self._peek_op(("-",)):
            value = self._prefix()
            if not _is_number(value):
                raise WhenError(f"Value '{_go_text(value)}' cannot be used with the modifier '-', it is not a number")
            return -value
        return self._primary()

    def _primary(self) -> Any:
        if self.index >= len(self.tokens):
            raise WhenError("Unexpected end of expression")
        token = self.tokens[self.index]
        self.index += 1
        if token.kind == "value":
            return token.value
        if token.kind == "(":
            value = self._or()
            if self.index >= len(self.tokens) or self.tokens[self.index].kind != ")":
                raise WhenError("Unbalanced parenthesis")
            self.index += 1
            return value
        raise WhenError(f"Unexpected token '{token.value}' at position {token.position + 1}")


def _is_number(value: Any) -> bool:
    return isinstance(value, float) and not isinstance(value, bool)


def _bool_operand(value: Any, operator: str) -> bool:
    if not isinstance(value, bool):
        raise WhenError(f"Value '{_go_text(value)}' cannot be used with the logical operator '{operator}', "
                        "it is not a bool")
    return value


def _compare(operator: str, left: Any, right: Any) -> bool:
    if operator == "==":
        return type(left) is type(right) and left == right
    if operator == "!=":
        return not (type(left) is type(right) and left == right)
    if operator in ("=~", "!~"):
        for value in (left, right):
            if not isinstance(value, str):
                raise WhenError(f"Value '{_go_text(value)}' cannot be used with the comparator '{operator}', "
                                "it is not a string")
        try:
            found = re.search(right, left) is not None
        except re.error as exc:
            raise WhenError(f"Unable to compile regexp pattern '{right}': {exc}") from None
        return found if operator == "=~" else not found
    if (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str)):
        return {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[operator]
    culprit = left if not _is_number(left) else right
    raise WhenError(f"Value '{_go_text(culprit)}' cannot be used with the comparator '{operator}', it is not a number")


def _arithmetic(operator: str, left: Any, right: Any) -> float:
    for value in (left, right):
        if not _is_number(value):
            raise WhenError(f"Value '{_go_text(value)}' cannot be used with the modifier '{operator}', "
                            "it is not a number")
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    if right == 0:
        return math.nan if operator == "%" or left == 0 else math.copysign(math.inf, left)
    return left / right if operator == "/" else math.fmod(left, right)


def _go_text(value: Any) -> str:
    """Go's %v of a govaluate value (float64 prints without a trailing .0)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)
