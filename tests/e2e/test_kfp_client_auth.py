"""The unchanged kfp 1.8.22 client against a live server that requires bearer tokens.

`kfp.Client(host=..., existing_token=token)` sends `Authorization: Bearer <token>` on every call: with a
token from `kfp-backend token create` everything works end to end (a pipeline uploaded and run to
completion); without one, or with a revoked one, every call fails with HTTP 401 (and healthz, which the
client calls while it is constructed, stays open).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import REPO_ROOT
from tests.e2e.helpers import api_exception, name_equals
from tests.e2e.pipelines import PIPELINES, compile_pipeline
from tests.e2e.run_checks import live_server, wait_for_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A `serve --host 127.0.0.1` of its own with KFP_BACKEND_AUTH=required; yields its URL and data dir."""
    workdir = tmp_path_factory.mktemp("kfp-backend-auth")
    with live_server(workdir, env={"KFP_BACKEND_AUTH": "required"}) as base_url:
        yield base_url, workdir / "data"


def _token_cli(data_dir: Path, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_BACKEND_")}
    result = subprocess.run(
        [sys.executable, "-m", "kfp_backend", "token", *args, "--data-dir", str(data_dir)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def make_client(auth_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import kfp

    monkeypatch.setattr(kfp.Client, "LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))  # never created

    def make(token: str | None) -> Any:
        return kfp.Client(host=auth_server[0], existing_token=token)

    return make


def _new_token(auth_server: tuple[str, Path], user: str) -> tuple[str, str]:
    """(token, id) of a new token made with the CLI against the live server's database."""
    token = _token_cli(auth_server[1], "create", "--user", user, "--expires", "1h")
    listed = _token_cli(auth_server[1], "list")
    (line,) = [row for row in listed.splitlines() if token[:11] in row]
    return token, line.split()[0]


def test_healthz_is_open_and_single_user(auth_server: tuple[str, Path]) -> None:
    response = requests.get(auth_server[0] + "/apis/v1beta1/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json()["multi_user"] is False
    refused = requests.get(auth_server[0] + "/apis/v1beta1/experiments", timeout=10)
    assert refused.status_code == 401 and refused.json()["code"] == 16
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_client_with_a_token_works_end_to_end(
    auth_server: tuple[str, Path], make_client, unique: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    token, _ = _new_token(auth_server, "e2e-user")
    client = make_client(token)
    experiment = client.create_experiment(f"{unique}-exp")
    assert client.get_experiment(experiment_name=f"{unique}-exp").id == experiment.id
    package = compile_pipeline("arithmetic", tmp_path / "arithmetic.yaml")
    pipeline = client.upload_pipeline(str(package), pipeline_name=f"{unique}-pipeline")
    assert client.get_pipeline_id(f"{unique}-pipeline") == pipeline.id
    run = client.run_pipeline(experiment.id, f"{unique}-run", pipeline_id=pipeline.id, params={"a": 2, "b": 3})
    detail = wait_for_run(client, run.id)
    assert detail.run.status == "Succeeded", detail.run.error
    listed = client.list_runs(experiment_id=experiment.id, page_size=10)
    assert [r.id for r in listed.runs] == [run.id]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)  # ContainerOp.image, in kfp
        result = client.create_run_from_pipeline_func(PIPELINES["arithmetic"], arguments={"a": 1},
                                                      run_name=f"{unique}-func", experiment_name=f"{unique}-exp")
    assert wait_for_run(client, result.run_id).run.status == "Succeeded"
    assert client.list_experiments(filter=name_equals(f"{unique}-exp")).total_size == 1


def test_the_client_without_a_token_gets_401(
    auth_server: tuple[str, Path], make_client, unique: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    client = make_client(None)  # constructing it calls healthz, which is open
    body = api_exception(lambda: client.list_experiments(), 401)
    assert body["code"] == 16 and "Authorization" in body["details"][0]["error_message"]
    api_exception(lambda: client.create_experiment(f"{unique}-nope"), 401)
    api_exception(lambda: client.list_pipelines(), 401)
    api_exception(lambda: client.runs.get_run("00000000-0000-4000-8000-000000000000"), 401)
    package = compile_pipeline("arithmetic", tmp_path / "arithmetic.yaml")
    api_exception(lambda: client.upload_pipeline(str(package), pipeline_name=f"{unique}-nope"), 401)
    # Nothing was created by the refused calls.
    token, _ = _new_token(auth_server, "e2e-checker")
    assert make_client(token).list_experiments(filter=name_equals(f"{unique}-nope")).total_size in (None, 0)


def test_unknown_and_revoked_tokens_get_401(auth_server: tuple[str, Path], make_client) -> None:  # type: ignore[no-untyped-def]
    body = api_exception(lambda: make_client("kfpb_" + "x" * 43).list_experiments(), 401)
    assert body["details"][0]["error_message"] == "The bearer token is not valid."
    token, token_id = _new_token(auth_server, "e2e-revoked")
    client = make_client(token)
    client.list_experiments()
    _token_cli(auth_server[1], "revoke", token_id)
    # At once: the server reads revocations from the database on every request.
    body = api_exception(lambda: client.list_experiments(), 401)
    assert body["details"][0]["error_message"] == "The bearer token is revoked."
