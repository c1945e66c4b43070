"""The end of a test session: skipped tests counted by reason, one line per reason, instead of one
`SKIPPED` line per test (a run without PostgreSQL and MariaDB skips hundreds, for two reasons)."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

_PREFIX = "Skipped: "


def skip_reason(report: Any) -> str:
    """The message a skipped test report carries (`pytest.skip(...)`, a skip mark, a skipif)."""
    longrepr = report.longrepr  # (path, line, message) for a skip
    message = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
    return message.removeprefix(_PREFIX).strip() or "(no reason given)"


def summary_lines(reports: Iterable[Any]) -> list[str]:
    """`<count>  <reason>`, most frequent first."""
    counts = collections.Counter(skip_reason(report) for report in reports)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [f"{count:6d}  {reason}" for reason, count in ordered]
