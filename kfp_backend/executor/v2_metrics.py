"""KFP v2 metrics artifacts (`system.Metrics`, filled by `Output[Metrics].log_metric`) mirrored into the
run's metrics, so v1beta1's run `metrics` and the UI show them as they show a kfp 1.8 step's
mlpipeline-metrics file.

A finished task's metrics become one mlpipeline-metrics document, reported as the v1 file is (first report
wins per (node, name); at most 50 per run). The v1 rules hold for names
(`^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$`), so a v2 name is made to fit: every other character becomes
`_`, a name not starting with a letter gets `m_` in front, trailing `-`/`_` go and it is cut at 64
characters (two names made equal: the first one logged wins). Values that are not finite numbers are left
out; the format is RAW.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

METRICS_SCHEMA = "system.Metrics"
_NOT_ALLOWED = re.compile(r"[^-_a-zA-Z0-9]")
_MAX_NAME = 64


def v1_metric_name(name: str) -> str | None:
    """`name` made a v1 metric name, or None when nothing of it is left."""
    text = _NOT_ALLOWED.sub("_", name)  # ASCII from here on
    prefixed = not text[:1].isalpha()
    if prefixed:
        text = "m_" + text
    text = text[:_MAX_NAME].rstrip("-_")
    return None if prefixed and text == "m" else text


def metrics_document(typed_outputs: Mapping[str, Any]) -> bytes | None:
    """The mlpipeline-metrics document of a task's typed outputs (`{"artifacts": {name: [artifact JSON]}}`):
    the numbers in its system.Metrics artifacts' metadata, in order; None when there are none."""
    metrics: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, artifacts in sorted((typed_outputs.get("artifacts") or {}).items()):
        for artifact in artifacts or ():
            if ((artifact.get("type") or {}).get("schemaTitle")) != METRICS_SCHEMA:
                continue
            for key, value in (artifact.get("metadata") or {}).items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    continue
                name = v1_metric_name(str(key))
                if name is None or name in seen:
                    continue
                seen.add(name)
                metrics.append({"name": name, "numberValue": float(value), "format": "RAW"})
    if not metrics:
        return None
    return json.dumps({"metrics": metrics}).encode()
