"""A live server for the session and the real kfp 2.x client (`kfp.Client(host=...)`) pointed at it.

These tests run from their own venv (`make test-kfp2`, .venv-kfp2: kfp 2.x and the project); the main suite,
whose venv holds kfp 1.8, leaves this directory out (setup.cfg).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import live_server

KFP_VERSION = "2.17.3"  # the SDK these tests pin (pyproject.toml, extra test-kfp2)


@pytest.fixture(scope="session", autouse=True)
def kfp2_sdk() -> None:
    import kfp

    found = kfp.__version__
    assert found == KFP_VERSION, f"tests/kfp2 needs kfp=={KFP_VERSION}, found {found}: run them with make test-kfp2"


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory, step_envs_dir: Path) -> Iterator[str]:
    # The step environments (kfp 2.x for lightweight components) outlive the session: prepared once.
    env = {"KFP_BACKEND_STEP_ENVS_DIR": str(step_envs_dir)}
    with live_server(tmp_path_factory.mktemp("kfp2-server"), env=env) as url:
        yield url


@pytest.fixture(scope="session")
def client(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The unchanged kfp 2.x client, isolated from any ~/.config/kfp/context.json of the caller."""
    import kfp

    context = tmp_path_factory.mktemp("kfp-context") / "context.json"  # never created: the default context
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(context))
        yield kfp.Client(host=server_url)


@pytest.fixture
def unique() -> str:
    """A fresh name prefix, so tests never see each other's data."""
    return f"kfp2-{uuid.uuid4().hex[:12]}"
