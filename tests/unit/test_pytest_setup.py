"""How a test session reads (setup.cfg and tests/conftest.py): skips counted by reason at the end instead of a
line each, failures still listed, and the kfp 1.8 deprecation notices the tests provoke on purpose filtered."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

from kfp import dsl

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_skips_are_counted_by_reason_and_failures_still_listed(tmp_path: Path) -> None:
    # A module with database-parametrized tests, run without PostgreSQL and MariaDB: half its tests skip.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_BACKEND_TEST_") and k != "CI"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "tests/unit/test_store_insert.py",
         "--basetemp", str(tmp_path / "t")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "SKIPPED [" not in out, out
    section = re.search(r"-+ (\d+) skipped, by reason -+\n((?:\s+\d+  .+\n)+)", out)
    assert section, out
    counts = {reason: int(count) for count, reason in re.findall(r"^\s+(\d+)  (.+)$", section.group(2), re.M)}
    assert set(counts) == {"KFP_BACKEND_TEST_POSTGRES_URL is not set", "KFP_BACKEND_TEST_MYSQL_URL is not set"}
    assert sum(counts.values()) == int(section.group(1)) > 0
    assert len(set(counts.values())) == 1  # as many tests per database

    failing = tmp_path / "test_failing.py"
    failing.write_text("import pytest\n\ndef test_fails():\n    assert False\n\n"
                       "@pytest.mark.skip(reason='not today')\ndef test_skipped():\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", str(failing), "-c",
         str(REPO_ROOT / "setup.cfg"), "--rootdir", str(REPO_ROOT), "--confcutdir", str(REPO_ROOT)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "FAILED " in result.stdout and "test_fails" in result.stdout, result.stdout
    assert "SKIPPED [" not in result.stdout


def test_kfp_deprecation_notices_are_filtered() -> None:
    # Within a test the ini filters are in force: what kfp 1.8 says of its own deprecated API is dropped.
    with warnings.catch_warnings(record=True) as caught:
        op = dsl.ContainerOp(name="direct", image="alpine", command=["true"])  # FutureWarning in kfp
        assert op.image == "alpine"  # PendingDeprecationWarning in kfp
    assert [str(w.message)[:60] for w in caught] == []
