"""Text every supported database stores as given, checked before anything is written.

SQLite, PostgreSQL and MariaDB disagree on what they accept: PostgreSQL refuses a NUL character in text,
SQLite and MariaDB keep it (and a step's argv or environment cannot carry it); a value longer than its
column fails on PostgreSQL and MariaDB but is stored whole by SQLite; nothing encodes a lone surrogate
as UTF-8. The services check every text field of a request here, so that each database gives the same
answer: InvalidArgument naming the field, e.g. `run.pipeline_spec.parameters[0].value contains a NUL
character.` Fields are named as on the wire (`<resource>.<field>`, list items by index).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kfp_backend.services.errors import InvalidArgument
from kfp_backend.services.references import ResourceReference

# Free text (descriptions, URLs) goes into TEXT columns, which hold 65535 bytes on MySQL and MariaDB;
# upstream sizes pipeline and version descriptions the same (`size:65535`).
MAX_TEXT_BYTES = 65535


def text_problem(
    field: str, value: str, *, max_bytes: int | None = MAX_TEXT_BYTES, max_chars: int | None = None
) -> str | None:
    """Why some database cannot store `value` (a message naming `field`), or None. `max_bytes=None`:
    a long-text column, whose size the request limit already bounds."""
    if "\x00" in value:
        return f"{field} contains a NUL character, which cannot be stored."
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{field} is not valid Unicode text (it holds a lone surrogate)."
    if max_chars is not None and len(value) > max_chars:
        return f"{field} is longer than {max_chars} characters."
    if max_bytes is not None and size > max_bytes:
        return f"{field} is longer than {max_bytes} bytes (UTF-8)."
    return None


def check_text(
    field: str, value: str, *, max_bytes: int | None = MAX_TEXT_BYTES, max_chars: int | None = None
) -> None:
    """InvalidArgument unless every database can store `value` (see text_problem)."""
    problem = text_problem(field, value, max_bytes=max_bytes, max_chars=max_chars)
    if problem is not None:
        raise InvalidArgument(problem)


def check_texts(fields: Iterable[tuple[str, str]]) -> None:
    """check_text on each (field, value) pair, in order."""
    for field, value in fields:
        check_text(field, value)


def check_parameter_texts(field: str, parameters: Sequence[Mapping[str, str]] | None) -> None:
    """Each parameter's name and value (`<field>[i].name`, `<field>[i].value`)."""
    for index, parameter in enumerate(parameters or ()):
        check_text(f"{field}[{index}].name", parameter.get("name", ""))
        check_text(f"{field}[{index}].value", parameter.get("value", ""))


def check_reference_ids(field: str, references: Sequence[ResourceReference]) -> None:
    """Each reference's key id (`<field>[i].key.id`): every id is looked up (an id that names nothing is a
    404), none is stored as given, so only what no database can compare is refused here."""
    for index, reference in enumerate(references):
        check_text(f"{field}[{index}].key.id", reference.key.id)
