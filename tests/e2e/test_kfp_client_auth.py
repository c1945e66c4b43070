"""The unchanged kfp 1.8.22 client against a live multi-user server (authentication required), on SQLite
and on PostgreSQL.

`kfp.Client(host=..., existing_token=token, namespace=ns)` sends `Authorization: Bearer <token>` on every
call and, since healthz says `multi_user: true`, names its namespace where upstream's multi-user mode
wants one. With a token from `kfp-backend token create --namespace ns` everything works end to end in
that namespace (an experiment, a shared pipeline uploaded and run to completion, a recurring run); a
token of another namespace sees none of it and gets 403 for its ids; without a token, or with a revoked
one, every call fails with HTTP 401 (and healthz, which the client calls while it is constructed, stays
open).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.databases import DatabaseFactory
from tests.e2e.helpers import api_exception, name_equals
from tests.e2e.pipelines import PIPELINES, compile_pipeline
from tests.e2e.run_checks import wait_for_run
from tests.e2e.servers import REPO_ROOT, live_server

pytestmark = pytest.mark.e2e


class Server:
    """A live server of its own: its URL, and how the `token` CLI reaches its database."""

    def __init__(self, url: str, data_dir: Path, database_url: str | None) -> None:
        self.url = url
        self.data_dir = data_dir
        self.database_url = database_url

    def token_cli(self, *args: str) -> str:
        env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_BACKEND_")}
        where = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            where += ["--database-url", self.database_url]
        result = subprocess.run(
            [sys.executable, "-m", "kfp_backend", "token", *args, *where],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def new_token(self, user: str, *namespaces: str) -> tuple[str, str]:
        """(token, id) of a new token made with the CLI against the live server's database."""
        limits = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
        token = self.token_cli("create", "--user", user, "--expires", "1h", *limits)
        listed = self.token_cli("list")
        (line,) = [row for row in listed.splitlines() if token[:11] in row]
        return token, line.split()[0]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def auth_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    database_factories: dict[str, DatabaseFactory],
) -> Iterator[Server]:
    """`serve --host 127.0.0.1` with KFP_BACKEND_AUTH=required, on SQLite or a fresh PostgreSQL database."""
    workdir = tmp_path_factory.mktemp(f"kfp-backend-auth-{request.param}")
    if request.param == "sqlite":
        with live_server(workdir, env={"KFP_BACKEND_AUTH": "required"}) as base_url:
            yield Server(base_url, workdir / "data", None)
        return
    with (
        database_factories["postgres"].fresh() as url,
        live_server(workdir, database_url=url, env={"KFP_BACKEND_AUTH": "required"}) as base_url,
    ):
        yield Server(base_url, workdir / "data", url)


@pytest.fixture
def make_client(auth_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import kfp

    monkeypatch.setattr(kfp.Client, "LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))  # never created

    def make(token: str | None, namespace: str = "kubeflow") -> Any:
        # "kubeflow" is the client's default: no namespace of its own then.
        return kfp.Client(host=auth_server.url, existing_token=token, namespace=namespace)

    return make


def test_healthz_is_open_and_multi_user(auth_server: Server) -> None:
    response = requests.get(auth_server.url + "/apis/v1beta1/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json()["multi_user"] is True
    refused = requests.get(auth_server.url + "/apis/v1beta1/experiments", timeout=10)
    assert refused.status_code == 401 and refused.json()["code"] == 16
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_client_with_a_token_works_end_to_end_in_its_namespace(
    auth_server: Server, make_client, unique: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    team, other_team = f"{unique}-a", f"{unique}-b"
    token, _ = auth_server.new_token("e2e-user", team)
    client = make_client(token, team)
    assert client.get_user_namespace() == team
    experiment = client.create_experiment(f"{unique}-exp")
    assert experiment.resource_references[0].key.id == team
    assert client.get_experiment(experiment_name=f"{unique}-exp").id == experiment.id
    package = compile_pipeline("arithmetic", tmp_path / "arithmetic.yaml")
    pipeline = client.upload_pipeline(str(package), pipeline_name=f"{unique}-pipeline")  # shared
    assert client.get_pipeline_id(f"{unique}-pipeline") == pipeline.id
    run = client.run_pipeline(experiment.id, f"{unique}-run", pipeline_id=pipeline.id, params={"a": 2, "b": 3})
    detail = wait_for_run(client, run.id)
    assert detail.run.status == "Succeeded", detail.run.error
    assert [r.id for r in client.list_runs(experiment_id=experiment.id, page_size=10).runs] == [run.id]
    assert [r.id for r in client.list_runs(page_size=10).runs] == [run.id]  # by the client's namespace
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)  # ContainerOp.image, in kfp
        result = client.create_run_from_pipeline_func(PIPELINES["arithmetic"], arguments={"a": 1},
                                                      run_name=f"{unique}-func", experiment_name=f"{unique}-exp")
    assert wait_for_run(client, result.run_id).run.status == "Succeeded"
    assert client.list_experiments(filter=name_equals(f"{unique}-exp")).total_size == 1
    job = client.create_recurring_run(experiment.id, f"{unique}-job", interval_second=3600, pipeline_id=pipeline.id,
                                      params={"a": 1, "b": 1}, enabled=False)
    assert [j.id for j in client.list_recurring_runs(experiment_id=experiment.id).jobs] == [job.id]

    # Another namespace's token: nothing of it listed, its ids refused with 403.
    other_token, _ = auth_server.new_token("e2e-other", other_team)
    other = make_client(other_token, other_team)
    assert not other.list_experiments().experiments
    assert not other.list_runs().runs
    assert other.get_pipeline_id(f"{unique}-pipeline") == pipeline.id  # shared pipelines are everyone's
    for call in (lambda: other.get_experiment(experiment_id=experiment.id), lambda: other.get_run(run.id),
                 lambda: other.list_runs(experiment_id=experiment.id), lambda: other.get_recurring_run(job.id),
                 lambda: other.list_recurring_runs(experiment_id=experiment.id),
                 lambda: other.list_experiments(namespace=team), lambda: other.runs.delete_run(run.id),
                 lambda: other.create_experiment(f"{unique}-intruder", namespace=team),
                 lambda: other.run_pipeline(experiment.id, "intruder", pipeline_id=pipeline.id)):
        body = api_exception(call, 403)
        assert body["code"] == 7
        assert body["details"][0]["error_message"].startswith("User 'e2e-other' is not authorized")
    assert client.get_run(run.id).run.status == "Succeeded"  # still there

    # Upstream's multi-user rule, through the client: a list without a namespace is refused (the client
    # sends a NAMESPACE key with an empty id).
    no_namespace = make_client(token)
    body = api_exception(lambda: no_namespace.list_experiments(), 400)
    assert body["details"][0]["error_message"] == "Invalid resource references for experiment. Namespace is empty."


def test_the_client_without_a_token_gets_401(
    auth_server: Server, make_client, unique: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    client = make_client(None, unique)  # constructing it calls healthz, which is open
    body = api_exception(lambda: client.list_experiments(), 401)
    assert body["code"] == 16 and "Authorization" in body["details"][0]["error_message"]
    api_exception(lambda: client.create_experiment(f"{unique}-nope"), 401)
    api_exception(lambda: client.list_pipelines(), 401)
    api_exception(lambda: client.runs.get_run("00000000-0000-4000-8000-000000000000"), 401)
    package = compile_pipeline("arithmetic", tmp_path / "arithmetic.yaml")
    api_exception(lambda: client.upload_pipeline(str(package), pipeline_name=f"{unique}-nope"), 401)
    # Nothing was created by the refused calls.
    token, _ = auth_server.new_token("e2e-checker")  # not limited by namespace
    checker = make_client(token, unique)
    assert checker.list_experiments(filter=name_equals(f"{unique}-nope")).total_size in (None, 0)
    assert checker.get_pipeline_id(f"{unique}-nope") is None


def test_unknown_and_revoked_tokens_get_401(auth_server: Server, make_client, unique: str) -> None:  # type: ignore[no-untyped-def]
    body = api_exception(lambda: make_client("kfpb_" + "x" * 43, unique).list_experiments(), 401)
    assert body["details"][0]["error_message"] == "The bearer token is not valid."
    token, token_id = auth_server.new_token("e2e-revoked", unique)
    client = make_client(token, unique)
    client.list_experiments()
    auth_server.token_cli("revoke", token_id)
    # At once: the server reads revocations from the database on every request.
    body = api_exception(lambda: client.list_experiments(), 401)
    assert body["details"][0]["error_message"] == "The bearer token is revoked."


def test_references_and_pipeline_urls_through_the_client(
    auth_server: Server, make_client, unique: str, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """Through the client's own API objects: a run may not name a JOB reference (only the scheduler links
    a run to its job), nor two experiments; and the server refuses to download a pipeline from itself (a
    loopback address) in multi-user mode."""
    from kfp_server_api import (
        ApiPipeline,
        ApiPipelineSpec,
        ApiResourceKey,
        ApiResourceReference,
        ApiRun,
        ApiUrl,
    )

    team = f"{unique}-refs"
    token, _ = auth_server.new_token("e2e-refs", team)
    client = make_client(token, team)
    experiment = client.create_experiment(f"{unique}-exp")
    other = client.create_experiment(f"{unique}-other")
    manifest = json.dumps(yaml.safe_load(compile_pipeline("arithmetic", tmp_path / "a.yaml").read_text()))

    def reference(kind: str, id: str, relationship: str) -> ApiResourceReference:
        return ApiResourceReference(key=ApiResourceKey(type=kind, id=id), relationship=relationship)

    owner = reference("EXPERIMENT", experiment.id, "OWNER")
    for extra, message in (
        (reference("JOB", "00000000-0000-4000-8000-000000000000", "CREATOR"),
         "Unsupported resource type: JOB. Only the scheduler links a run to the job that created it."),
        (reference("EXPERIMENT", other.id, "CREATOR"),
         "Invalid resource references: more than one EXPERIMENT reference (2)."),
    ):
        run = ApiRun(name=f"{unique}-run", pipeline_spec=ApiPipelineSpec(workflow_manifest=manifest),
                     resource_references=[owner, extra])
        body = api_exception(lambda run=run: client.runs.create_run(body=run), 400)
        assert body["details"][0]["error_message"] == message
    assert not client.list_runs(experiment_id=experiment.id).runs

    own_url = f"{auth_server.url}/apis/v1beta1/healthz"
    from_itself = ApiPipeline(name=f"{unique}-p", url=ApiUrl(pipeline_url=own_url))
    body = api_exception(lambda: client.pipelines.create_pipeline(body=from_itself), 400)
    assert body["details"][0]["error_message"].startswith(
        f"Invalid Pipeline URL {own_url}. Please specify a valid URL: in multi-user mode the server does not "
        "download from loopback"), body
    assert client.get_pipeline_id(f"{unique}-p") is None
