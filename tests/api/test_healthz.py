"""healthz says what the server is: its package version as `tag_name`, the commit it runs from as `commit_sha`
(set by the build, else the git checkout's HEAD, else "unknown"), in upstream's exact body."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient

import kfp_backend
from kfp_backend.app import create_app, shutdown
from kfp_backend.build_info import SOURCE_ROOT
from kfp_backend.config import Settings

HEALTHZ = "/apis/v1beta1/healthz"


def _checkout_head() -> str:
    """What `git rev-parse HEAD` says of the source tree (asked here independently), or "unknown"."""
    if shutil.which("git") is None or not (SOURCE_ROOT / ".git").exists():
        return "unknown"
    result = subprocess.run(["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


@pytest.fixture
def healthz(settings: Settings) -> Iterator[Callable[..., dict]]:
    apps = []

    def get(**changes: object) -> dict:
        app = create_app(settings.replace(**changes))
        apps.append(app)
        client: FlaskClient = app.test_client()
        response = client.get(HEALTHZ)
        assert response.status_code == 200
        return json.loads(response.get_data(as_text=True))

    yield get
    for app in apps:
        shutdown(app)


def test_tag_name_is_the_package_version_and_commit_sha_the_checkout_head(healthz) -> None:
    body = healthz()
    assert body["tag_name"] == kfp_backend.__version__ == importlib.metadata.version("kfp-backend")
    assert body["commit_sha"] == _checkout_head()
    assert body["multi_user"] is False


def test_a_build_says_its_commit_and_tag(healthz) -> None:
    body = healthz(commit_sha="0123abcd", tag_name="1.8.5")
    assert (body["commit_sha"], body["tag_name"]) == ("0123abcd", "1.8.5")
