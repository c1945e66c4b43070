"""`serve --workers`: what the supervisor starts and the pieces it hands its children (kfp_backend/processes/).
The processes themselves are tested live in tests/e2e/test_api_replicas.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfp_backend.config import Settings
from kfp_backend.processes.supervisor import child_commands, metrics_dir
from kfp_backend.processes.web import MULTIPROC_DIR_VARIABLE, bind_address


def test_bind_addresses_put_ipv6_in_brackets() -> None:
    assert bind_address("127.0.0.1", 8888) == "127.0.0.1:8888"
    assert bind_address("0.0.0.0", 80) == "0.0.0.0:80"
    assert bind_address("::", 8888) == "[::]:8888"
    assert bind_address("[::1]", 8888) == "[::1]:8888"
    assert bind_address("localhost", 1) == "localhost:1"


def test_the_executor_and_the_scheduler_are_started_only_when_enabled() -> None:
    def names(**changes: object) -> list[str]:
        return [child.name for child in child_commands(Settings(workers=2, **changes))]

    assert names() == ["web", "executor", "scheduler"]
    assert names(scheduler_enabled=False) == ["web", "executor"]
    assert names(executor_enabled=False, scheduler_enabled=False) == ["web"]
    commands = {child.name: child.command[1:] for child in child_commands(Settings(workers=2))}
    assert commands == {"web": ["-m", "kfp_backend.processes.web"], "executor": ["-m", "kfp_backend", "executor"],
                        "scheduler": ["-m", "kfp_backend", "scheduler"]}


def test_a_given_metrics_dir_is_made_and_loses_only_its_stale_values(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    given = tmp_path / "metrics"
    monkeypatch.setenv(MULTIPROC_DIR_VARIABLE, str(given))
    assert metrics_dir() == (given, False)
    (given / "counter_123.db").write_bytes(b"x")
    (given / "notes.txt").write_text("kept")
    assert metrics_dir() == (given, False)
    assert sorted(path.name for path in given.iterdir()) == ["notes.txt"]


def test_without_a_metrics_dir_a_private_one_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_DIR_VARIABLE, raising=False)
    path, owned = metrics_dir()
    try:
        assert owned and path.is_dir() and not any(path.iterdir())
    finally:
        path.rmdir()
