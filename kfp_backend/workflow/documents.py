"""Reading a pipeline file's YAML or JSON text safely, for Argo manifests (manifest.py) and KFP v2 pipeline
specs (ir/document.py): a safe YAML loader that keeps dates as text, our own wording for what cannot be read
(never the offending line: the file may come from a URL), and a bound on what YAML aliases may expand to.
Every message starts with the `failed` wording the caller gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from kfp_backend.workflow.errors import WorkflowError

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# How many more values than characters a document may expand to through YAML aliases.
_ALIAS_SLACK = 1_000_000

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader (no arbitrary objects) without implicit timestamps: a date stays the string it was."""


_SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


def read_document(text: str | bytes, failed: str) -> Any:
    """The one YAML or JSON document in `text`; WorkflowError when it cannot be read as one."""
    text = _decode(text, failed)
    with _read_errors(failed):
        if text.lstrip().startswith(("{", "[")):
            try:
                document = json.loads(text, parse_constant=_reject_constant)
            except ValueError:
                document = yaml.load(text, Loader=_SafeLoader)  # YAML flow style also starts with a bracket
        else:
            document = yaml.load(text, Loader=_SafeLoader)
    _check_size(document, len(text), failed)
    return document


def read_documents(text: str | bytes, failed: str) -> list[Any]:
    """The documents of a YAML (possibly several, separated by `---`) or JSON file, empty ones left out."""
    text = _decode(text, failed)
    if text.lstrip().startswith(("{", "[")):
        return [read_document(text, failed)]  # JSON, or YAML in flow style: always one document
    with _read_errors(failed):
        documents = [document for document in yaml.load_all(text, Loader=_SafeLoader) if document is not None]
    _check_size(documents, len(text), failed)
    return documents


def _decode(text: str | bytes, failed: str) -> str:
    """`text`, decoded from UTF-8 (a byte order mark dropped) if it is bytes."""
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise WorkflowError(f"{failed}: the file is not UTF-8 text.") from None
    return text


@contextmanager
def _read_errors(failed: str) -> Iterator[None]:
    """YAML's errors, and a document nested too deeply to read, as WorkflowError in our own wording."""
    try:
        yield
    except yaml.MarkedYAMLError as exc:
        where = f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})" if exc.problem_mark else ""
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise WorkflowError(f"{failed}: {problem}{where}.") from None
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{failed}: {type(exc).__name__}.") from None
    except RecursionError:
        raise WorkflowError(f"{failed}: the document is nested too deeply.") from None


def _check_size(document: Any, text_length: int, failed: str) -> None:
    """Aliases can make a small file expand into an enormous (or cyclic) document. A document without
    aliases holds fewer values than its text has characters; anchors reused in moderation stay well within
    _ALIAS_SLACK more."""
    budget = text_length + _ALIAS_SLACK
    stack = [document]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > budget:
            raise WorkflowError(f"{failed}: the document expands to too many values (YAML aliases?).")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")
