"""The commit of the source: a git checkout's HEAD; nothing (not a crash) without a checkout or without git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kfp_backend.build_info import checkout_commit


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "kfp_backend").mkdir(parents=True)
    _git(root, "init", "-q")
    (root / "README.md").write_text("x\n")
    _git(root, "add", "README.md")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first")
    return root


def test_a_checkout_gives_its_head(checkout: Path) -> None:
    assert checkout_commit(checkout) == _git(checkout, "rev-parse", "HEAD")


def test_a_directory_inside_another_repository_is_not_a_checkout(checkout: Path) -> None:
    # An installed package's parent (site-packages) can sit in some project's repository: not our commit.
    assert checkout_commit(checkout / "kfp_backend") is None
    assert checkout_commit(checkout.parent) is None


def test_without_git_there_is_no_commit(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(checkout / "no-such-dir"))
    checkout_commit.cache_clear()
    try:
        assert checkout_commit(checkout) is None
    finally:
        checkout_commit.cache_clear()
