"""Where a `python3` that runs `python3 -m kfp.dsl.executor_main` (kfp 2.x) is, for tests that execute
lightweight Python components: this interpreter's directory when it has kfp 2.x, else
`KFP_BACKEND_TEST_KFP2_BIN`, else the project's `.venv-kfp2/bin` (`make test-kfp2` makes it)."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.databases import in_ci

REPO = Path(__file__).resolve().parents[1]


def kfp2_bin() -> Path | None:
    try:
        if metadata.version("kfp").startswith("2."):
            return Path(sys.executable).parent
    except metadata.PackageNotFoundError:
        pass
    configured = os.environ.get("KFP_BACKEND_TEST_KFP2_BIN")
    candidate = Path(configured) if configured else REPO / ".venv-kfp2" / "bin"
    return candidate if (candidate / "python3").exists() else None


def require_kfp2_bin() -> Path:
    """The directory, or skip (fail under CI=true) when there is none."""
    found = kfp2_bin()
    if found is None:
        message = "no python3 with kfp 2.x: set KFP_BACKEND_TEST_KFP2_BIN or run `make test-kfp2` once"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found
