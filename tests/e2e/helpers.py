"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kfp_server_api.exceptions import ApiException

# When set, the e2e server uses this database instead of SQLite in a temporary directory.
E2E_DATABASE_ENV = "KFP_BACKEND_E2E_DATABASE_URL"


@contextmanager
def kfp_client_for(host: str, context_dir: Path) -> Iterator[Any]:
    """The unchanged kfp 1.8.22 SDK client for `host`, isolated from any ~/.config/kfp/context.json of the
    caller: its context file is `context_dir`/context.json, never created (the default context)."""
    import kfp

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kfp.Client, "LOCAL_KFP_CONTEXT", str(context_dir / "context.json"))
        yield kfp.Client(host=host)


def name_contains(text: str) -> str:
    """A filter (JSON api.Filter, as the client sends it) keeping the items whose name contains `text`."""
    return json.dumps({"predicates": [{"op": "IS_SUBSTRING", "key": "name", "string_value": text}]})


def name_equals(name: str) -> str:
    return json.dumps({"predicates": [{"op": 1, "key": "name", "stringValue": name}]})


def api_exception(call: Callable[[], Any], status: int) -> dict[str, Any]:
    """Run `call`, which must fail with an ApiException of HTTP `status`; return the parsed JSON error body."""
    with pytest.raises(ApiException) as caught:
        call()
    error = caught.value
    assert error.status == status, f"expected HTTP {status}, got {error.status}: {error.body!r}"
    body = error.body.decode() if isinstance(error.body, bytes) else error.body
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        pytest.fail(f"the HTTP {error.status} error body is not JSON: {body!r}")
    assert isinstance(parsed, dict), parsed
    return parsed


def error_text(body: dict[str, Any]) -> str:
    """The message of either error shape (gateway `{"error", ...}` or upload `{"error_message", ...}`)."""
    return str(body.get("error") or body.get("error_message") or body.get("message") or "")


def collect_pages(fetch: Callable[[str], Any], items_attr: str) -> tuple[list[list[Any]], list[Any]]:
    """Follow next_page_token from the first page; return the pages (as item lists) and the total_size seen."""
    pages: list[list[Any]] = []
    totals: list[Any] = []
    token = ""
    for _ in range(100):
        response = fetch(token)
        pages.append(list(getattr(response, items_attr) or []))
        totals.append(response.total_size)
        token = response.next_page_token or ""
        if not token:
            return pages, totals
    pytest.fail("paging did not end within 100 pages")


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` every 0.1 s until it is true; fail saying `what` did not happen within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
