"""What run creation does to a workflow manifest before anything runs (the "runtime workflow").

As the real API server does at CreateRun: parameter values given with the run override the
workflow's defaults (unknown names are refused), macros in parameter values are substituted
(`[[RunUUID]]`, `[[CurrentTime]]`, `[[CurrentTime.<Go layout>]]`, `{{$.currentTime.strftime('...')}}`),
every literal `{{workflow.uid}}` becomes the run id, the workflow gets its name (generateName plus a
random suffix), the `pipeline/runid` label, the run-name annotation and a service account, and the
`mlpipeline-metrics` / `mlpipeline-ui-metadata` output artifacts become optional.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from kfp_backend.services.errors import InvalidArgument

LABEL_RUN_ID = "pipeline/runid"
LABEL_CACHE_ENABLED = "pipelines.kubeflow.org/cache_enabled"
ANNOTATION_RUN_NAME = "pipelines.kubeflow.org/run_name"
DEFAULT_SERVICE_ACCOUNT = "pipeline-runner"
OPTIONAL_OUTPUT_ARTIFACTS = ("mlpipeline-ui-metadata", "mlpipeline-metrics")
WORKFLOW_UID = "{{workflow.uid}}"
# Kubernetes' rand.String alphabet (no vowels, no look-alikes): what Argo's generateName suffix uses.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LENGTH = 5
_MACRO = re.compile(r"\[\[(.*?)\]\]|\{\{\$\.(.*?)\}\}")
_STRFTIME_CALL = re.compile(r"""(currentTime|scheduledTime)\.strftime\((['"])(.*)\2\)""", re.DOTALL)


def unknown_parameter(document: Mapping[str, Any], parameters: Sequence[Mapping[str, str]]) -> str | None:
    """The first run parameter the workflow does not declare in spec.arguments.parameters, if any."""
    declared = {p.get("name") for p in _declared_parameters(document)}
    for parameter in parameters:
        if parameter["name"] not in declared:
            return parameter["name"]
    return None


def runtime_workflow(
    document: Mapping[str, Any],
    *,
    run_id: str,
    run_name: str,
    parameters: Sequence[Mapping[str, str]],
    now: int,
    service_account: str = "",
    default_service_account: str = DEFAULT_SERVICE_ACCOUNT,
    format_value: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The workflow a run executes: `document` (a validated Argo Workflow) rewritten for this run.

    By default the one-off-run macros are substituted in every declared parameter value. With
    `format_value` (job runs) only the values given in `parameters` go through it and workflow
    defaults stay as they are, as upstream formats only the parameters a job supplies.

    Raises InvalidArgument (`Unrecognized input parameter: <name>`) for an undeclared parameter.
    """
    workflow = copy.deepcopy(dict(document))
    workflow.pop("status", None)
    spec = workflow.setdefault("spec", {})

    unknown = unknown_parameter(workflow, parameters)
    if unknown is not None:
        raise InvalidArgument(f"Unrecognized input parameter: {unknown}")
    given = {p["name"]: p.get("value", "") for p in parameters}
    for declared in _declared_parameters(workflow):
        if format_value is not None:
            if declared.get("name") in given:
                declared["value"] = format_value(given[declared["name"]])
            continue
        if declared.get("name") in given:
            declared["value"] = given[declared["name"]]
        if isinstance(declared.get("value"), str):
            declared["value"] = substitute_macros(declared["value"], run_id=run_id, now=now)

    metadata = workflow.get("metadata")
    if not isinstance(metadata, dict):
        metadata = workflow["metadata"] = {}
    generate_name = metadata.get("generateName")
    if generate_name or not metadata.get("name"):
        metadata["name"] = (generate_name or "workflow-") + random_suffix()
    metadata.pop("creationTimestamp", None)
    _string_map(metadata, "labels")[LABEL_RUN_ID] = run_id
    _string_map(metadata, "annotations")[ANNOTATION_RUN_NAME] = run_name

    # The run's service account: the request's, else the workflow's own unless it is empty or the
    # SDK's default, which give way to the server's configured default.
    if service_account:
        spec["serviceAccountName"] = service_account
    elif not spec.get("serviceAccountName") or spec.get("serviceAccountName") == DEFAULT_SERVICE_ACCOUNT:
        spec["serviceAccountName"] = default_service_account

    for template in spec.get("templates") or ():
        if not isinstance(template, dict):
            continue
        template_metadata = template.get("metadata")
        if not isinstance(template_metadata, dict):
            template_metadata = template["metadata"] = {}
        labels = _string_map(template_metadata, "labels")
        labels[LABEL_RUN_ID] = run_id
        labels.setdefault(LABEL_CACHE_ENABLED, "true")
        outputs = template.get("outputs")
        artifacts = outputs.get("artifacts") if isinstance(outputs, dict) else None
        for artifact in artifacts if isinstance(artifacts, list) else ():
            if isinstance(artifact, dict) and artifact.get("name") in OPTIONAL_OUTPUT_ARTIFACTS:
                artifact["optional"] = True

    # The run id has no characters JSON escapes, so a textual replacement keeps the document valid.
    text = json.dumps(workflow, separators=(",", ":"), ensure_ascii=False)
    if WORKFLOW_UID in text:
        workflow = json.loads(text.replace(WORKFLOW_UID, run_id))
    return workflow


def random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH))


def _declared_parameters(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec")
    arguments = spec.get("arguments") if isinstance(spec, dict) else None
    declared = arguments.get("parameters") if isinstance(arguments, dict) else None
    return [p for p in declared if isinstance(p, dict)] if isinstance(declared, list) else []


def _string_map(owner: dict[str, Any], key: str) -> dict[str, Any]:
    value = owner.get(key)
    if not isinstance(value, dict):
        value = owner[key] = {}
    return value


# -- macros --------------------------------------------------------------------------------------------------


def substitute_macros(
    value: str, *, run_id: str, now: int, scheduled_at: int | None = None, index: int | None = None
) -> str:
    """Substitute the macros in a parameter value; unknown macros stay as they are.

    One-off runs know `[[RunUUID]]` and the CurrentTime forms; job runs also pass `scheduled_at` and
    `index` (`[[ScheduledTime]]`, `[[ScheduledTime.<Go layout>]]`, `{{$.scheduledTime.strftime(...)}}`,
    `[[Index]]`), which one-off runs leave as they are.
    """
    moments = {"Current": datetime.fromtimestamp(now, tz=timezone.utc)}
    if scheduled_at is not None:
        moments["Scheduled"] = datetime.fromtimestamp(scheduled_at, tz=timezone.utc)

    def replace(match: re.Match[str]) -> str:
        bracketed, dollar = match.group(1), match.group(2)
        if bracketed is not None:
            if bracketed == "RunUUID":
                return run_id
            if bracketed == "Index" and index is not None:
                return str(index)
            for prefix, moment in moments.items():
                if bracketed == f"{prefix}Time":
                    return format_go_layout("20060102150405", moment)
                if bracketed.startswith(f"{prefix}Time."):
                    return format_go_layout(bracketed[len(prefix) + 5:], moment)
            return match.group(0)
        call = _STRFTIME_CALL.fullmatch(dollar)
        moment = moments.get("Current" if call.group(1) == "currentTime" else "Scheduled") if call else None
        if call is not None and moment is not None:
            try:
                return moment.strftime(call.group(3))
            except ValueError:
                return match.group(0)
        return match.group(0)

    return _MACRO.sub(replace, value)


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def format_go_layout(layout: str, moment: datetime) -> str:
    """Format a UTC time with a Go reference layout (`2006-01-02 15:04:05`, `Jan _2`, `Mon MST`...).

    Covers Go's standard chunks: years (2006, 06), months (01, 1, Jan, January), days (02, 2, _2, 002,
    __2), weekdays (Mon, Monday), hours (15, 03, 3), minutes (04, 4), seconds (05, 5), AM/PM (PM, pm),
    zones (MST, Z07:00, -0700, -07:00, -07 ...; always UTC here) and fractions (.000, .999...).
    """
    out: list[str] = []
    i = 0
    n = len(layout)
    hour12 = moment.hour % 12 or 12
    while i < n:
        rest = layout[i:]
        token, text = _format_layout_token(rest, moment, hour12)
        if token:
            out.append(text)
            i += len(token)
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)


def _format_layout_token(rest: str, moment: datetime, hour12: int) -> tuple[str, str]:
    """(matched token, formatted text) for the layout chunk at the start of `rest`, or ("", "")."""
    first = rest[0]
    if first == "J" and rest.startswith("Jan"):
        if rest.startswith("January"):
            return "January", _MONTHS[moment.month - 1]
        return "Jan", _MONTHS[moment.month - 1][:3]
    if first == "M" and rest.startswith("Mon"):
        if rest.startswith("Monday"):
            return "Monday", _DAYS[moment.weekday()]
        return "Mon", _DAYS[moment.weekday()][:3]
    if first == "M" and rest.startswith("MST"):
        return "MST", "UTC"
    if first == "0":
        if rest.startswith("002"):
            return "002", f"{moment.timetuple().tm_yday:03d}"
        if len(rest) > 1 and rest[1] in "123456":
            value = {"1": f"{moment.month:02d}", "2": f"{moment.day:02d}", "3": f"{hour12:02d}",
                     "4": f"{moment.minute:02d}", "5": f"{moment.second:02d}", "6": f"{moment.year % 100:02d}"}
            return rest[:2], value[rest[1]]
    if first == "1":
        if rest.startswith("15"):
            return "15", f"{moment.hour:02d}"
        return "1", str(moment.month)
    if first == "2":
        if rest.startswith("2006"):
            return "2006", f"{moment.year:04d}"
        return "2", str(moment.day)
    if first == "_":
        if rest.startswith("_2006"):
            return "_2006", f"_{moment.year:04d}"
        if rest.startswith("__2"):
            return "__2", f"{moment.timetuple().tm_yday:>3d}"
        if rest.startswith("_2"):
            return "_2", f"{moment.day:>2d}"
    if first == "3":
        return "3", str(hour12)
    if first == "4":
        return "4", str(moment.minute)
    if first == "5":
        return "5", str(moment.second)
    if first == "P" and rest.startswith("PM"):
        return "PM", "PM" if moment.hour >= 12 else "AM"
    if first == "p" and rest.startswith("pm"):
        return "pm", "pm" if moment.hour >= 12 else "am"
    if first in "-Z":
        for zone in ("07:00:00", "070000", "0700", "07:00", "07"):
            if rest[1:].startswith(zone):
                token = first + zone
                if first == "Z":
                    return token, "Z"
                return token, "+" + "".join("0" if c.isdigit() else c for c in zone)
    if first in ".," and len(rest) > 1 and rest[1] in "09":
        digit = rest[1]
        j = 1
        while j < len(rest) and rest[j] == digit:
            j += 1
        if j == len(rest) or not rest[j].isdigit():
            # Whole seconds only: a fixed-width fraction is zeros, a trimmed one (.999) disappears.
            return rest[:j], (first + "0" * (j - 1)) if digit == "0" else ""
    return "", ""
