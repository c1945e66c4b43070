"""What the commands print at the default log level: the schema upgrade in one line of ours, none of Alembic's
(the plugins it loads, its migration context); at DEBUG Alembic speaks again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kfp_backend.store.migrations import head_revision

REPO_ROOT = Path(__file__).resolve().parents[2]


def _db_upgrade(data_dir: Path, *flags: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_BACKEND_")}
    result = subprocess.run(
        [sys.executable, "-m", "kfp_backend", "db", "upgrade", "--data-dir", str(data_dir), *flags],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [line.split(" ", 3)[-1] for line in (result.stdout + result.stderr).splitlines()]


def test_db_upgrade_says_what_it_did_without_library_chatter(tmp_path: Path) -> None:
    head = head_revision()
    assert _db_upgrade(tmp_path / "data") == [
        f"kfp_backend: database schema upgraded from an empty database to {head}",
        f"kfp_backend: database is at revision {head}",
    ]
    assert _db_upgrade(tmp_path / "data") == [f"kfp_backend: database is at revision {head}"]
    chatty = _db_upgrade(tmp_path / "other", "--log-level", "DEBUG")
    assert any(line.startswith("alembic.") for line in chatty)
