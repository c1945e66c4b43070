"""Against the live server (authentication off, as `make serve`): the exact requests a browser sends for a hostile
page are refused and run nothing, while the kfp 1.8.22 client, which sends JSON and multipart bodies and no
Origin, does everything it did before."""

from __future__ import annotations

import http.client
import json
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from tests.e2e.pipelines import echo_op
from tests.hostile_page import browser, shell_workflow

pytestmark = pytest.mark.e2e

PWNED = "/tmp/kfp-backend-cross-site-pwned"


def raw(server_url: str, method: str, path: str, headers: dict[str, str], body: str = "") -> tuple[int, dict]:
    """One request with exactly these headers (http.client adds only Content-Length and Accept-Encoding)."""
    address = urlsplit(server_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        data = body.encode()
        if data or method in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data or None)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def runs_named(server_url: str, name: str) -> list[dict]:
    query = quote(json.dumps({"predicates": [{"key": "name", "op": "EQUALS", "string_value": name}]}))
    status, body = raw(server_url, "GET", f"/apis/v1beta1/runs?filter={query}",
                       {"Host": urlsplit(server_url).netloc})
    assert status == 200, body
    return body.get("runs", [])


def test_a_hostile_pages_requests_are_refused(server_url: str, unique: str) -> None:
    host = urlsplit(server_url).netloc  # 127.0.0.1:<port>
    name = f"{unique}-pwn"
    run = json.dumps({"name": name, "pipeline_spec": {"workflow_manifest": shell_workflow(f"touch {PWNED}")}})
    page = browser("http://evil.example", host)
    # fetch() with a text/plain body, and a <form enctype="text/plain"> spelling the JSON: no preflight.
    status, body = raw(server_url, "POST", "/apis/v1beta1/runs", {**page, "Content-Type": "text/plain;charset=UTF-8"},
                       run)
    assert (status, body["code"]) == (403, 7), body
    assert "Origin 'http://evil.example' is not this server" in body["error"]
    form = {**page, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        status, body = raw(server_url, "POST", "/apis/v1beta1/runs", {**form, "Content-Type": content_type}, run)
        assert (status, body["code"]) == (403, 7), body
        # A browser that sends no Origin with a form: the body's type is refused.
        without_origin = {key: value for key, value in form.items() if key != "Origin"}
        status, body = raw(server_url, "POST", "/apis/v1beta1/runs",
                           {**without_origin, "Content-Type": content_type}, run)
        assert (status, body["code"]) == (415, 3), body
    # DNS rebinding: same-origin for the browser, so JSON goes out and answers could be read; the Host is
    # the page's name.
    rebound = {**page, "Host": f"attacker.example:{urlsplit(server_url).port}",
               "Origin": f"http://attacker.example:{urlsplit(server_url).port}", "Sec-Fetch-Site": "same-origin",
               "Sec-Fetch-Mode": "cors", "Content-Type": "application/json"}
    status, body = raw(server_url, "POST", "/apis/v1beta1/runs", rebound, run)
    assert (status, body["code"]) == (400, 3), body
    assert body["error"].startswith(f"Invalid Host header 'attacker.example:{urlsplit(server_url).port}'")
    read = {key: value for key, value in rebound.items() if key not in ("Origin", "Content-Type")}
    for path in ("/apis/v1beta1/runs", "/apis/v1beta1/experiments", "/apis/v1beta1/healthz"):
        status, body = raw(server_url, "GET", path, read)
        assert (status, body["code"]) == (400, 3), (path, body)
    assert runs_named(server_url, name) == []
    # The same request with the server's own name and a JSON body is accepted: the checks are what refused.
    status, body = raw(server_url, "POST", "/apis/v1beta1/runs", {"Host": host, "Content-Type": "application/json"},
                       json.dumps({"name": name, "pipeline_spec": {"workflow_manifest": shell_workflow("true")}}))
    assert status == 200, body
    assert [r["id"] for r in runs_named(server_url, name)] == [body["run"]["id"]]


def test_the_kfp_client_still_works(kfp_client, unique: str, tmp_path: Path) -> None:
    from kfp import compiler, dsl

    @dsl.pipeline(name=f"{unique}-hello")
    def hello(text: str = "hi"):
        echo_op(text)

    package = tmp_path / "hello.yaml"
    compiler.Compiler().compile(hello, str(package))
    experiment = kfp_client.create_experiment(f"{unique}-experiment", description="through the guard")
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-pipeline")
    version = kfp_client.upload_pipeline_version(str(package), f"{unique}-v2", pipeline_id=pipeline.id)
    run = kfp_client.run_pipeline(experiment.id, f"{unique}-run", version_id=version.id, params={"text": "x"})
    assert kfp_client.wait_for_run_completion(run.id, timeout=120).run.status == "Succeeded"
    kfp_client._run_api.archive_run(run.id)
    kfp_client._run_api.unarchive_run(run.id)
    result = kfp_client.create_run_from_pipeline_func(hello, arguments={"text": "y"}, experiment_name=experiment.name,
                                                      run_name=f"{unique}-run-2")
    kfp_client._run_api.terminate_run(result.run_id)
    job = kfp_client.create_recurring_run(experiment.id, f"{unique}-job", cron_expression="0 0 0 * * *",
                                          pipeline_package_path=str(package), enabled=False)
    kfp_client._job_api.enable_job(job.id)  # kfp 1.8 has no Client method for these: the generated API
    kfp_client.disable_job(job.id)
    kfp_client.delete_job(job.id)
    kfp_client.archive_experiment(experiment.id)
    kfp_client._experiment_api.unarchive_experiment(experiment.id)
    kfp_client.delete_pipeline_version(version.id)
    kfp_client.delete_pipeline(pipeline.id)
    names = [r.name for r in kfp_client.list_runs(experiment_id=experiment.id, page_size=10).runs]
    assert sorted(names) == [f"{unique}-run", f"{unique}-run-2"]
    assert uuid.UUID(kfp_client.get_experiment(experiment_id=experiment.id).id)
