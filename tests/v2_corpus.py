"""The shared KFP v2 corpus (`../shared/pipelines-v2`: compiled pipelines with their `NAME.expected.json`) and the
README's rules for its task states, for the executor's corpus test and the kfp 2.x client's."""

from __future__ import annotations

import json
from collections import Counter

from tests.conftest import SHARED_DIR

CORPUS = SHARED_DIR / "pipelines-v2"
NAMES = sorted(path.name[: -len(".expected.json")] for path in CORPUS.glob("*.expected.json")) \
    if CORPUS.is_dir() else []


def expected_of(name: str) -> dict:
    return json.loads((CORPUS / f"{name}.expected.json").read_text())


def task_problems(expected: dict[str, dict], states: dict[str, list[str]]) -> list[str]:
    """What differs from the README's rules, given the task states by display name: SUCCEEDED/FAILED need at
    least one task of that name, all in that state; SKIPPED allows none or only SKIPPED ones; `states` counts
    instances (SKIPPED ones only when counted); `optional` tasks may be absent."""
    problems = []
    for name, want in expected.items():
        got = states.get(name, [])
        if "states" in want:
            counted = Counter(state for state in got if state != "SKIPPED" or "SKIPPED" in want["states"])
            if dict(counted) != want["states"]:
                problems.append(f"{name}: {dict(counted)} != {want['states']}")
        elif want["state"] == "SKIPPED":
            if any(state != "SKIPPED" for state in got):
                problems.append(f"{name}: {got}, expected not to run")
        elif not got:
            if not want.get("optional"):
                problems.append(f"{name}: missing")
        elif any(state != want["state"] for state in got):
            problems.append(f"{name}: {got} != {want['state']}")
    return problems
