"""The package metadata: an SPDX license string (no deprecation banner from setuptools >= 77 at install) and one
version, kfp_backend.__version__, which healthz also reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_license_is_an_spdx_expression_with_a_setuptools_that_reads_it() -> None:
    config = tomllib.loads(PYPROJECT.read_text())
    assert config["project"]["license"] == "Apache-2.0"
    requirement = next(r for r in config["build-system"]["requires"] if r.startswith("setuptools"))
    minimum = re.fullmatch(r"setuptools>=(\d+)", requirement)
    assert minimum and int(minimum.group(1)) >= 77, requirement


def test_the_version_has_one_source() -> None:
    config = tomllib.loads(PYPROJECT.read_text())
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "kfp_backend.__version__"}


def test_the_web_uis_templates_and_assets_are_package_data() -> None:
    """An installed server serves its UI: every file under kfp_backend/ui/templates and static is listed."""
    from fnmatch import fnmatch

    config = tomllib.loads(PYPROJECT.read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["kfp_backend.ui"]
    ui = PYPROJECT.parent / "kfp_backend" / "ui"
    files = [p.relative_to(ui).as_posix() for d in ("templates", "static") for p in (ui / d).rglob("*") if p.is_file()]
    assert files and [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)] == []
