"""GET /metrics on a real app: the request counters by route template, runs by state from the database,
the executor's step and claim metrics after a real run, the text in Prometheus' format, and no label value
naming a tenant's resource in multi-user mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.services.auth import AuthService
from tests import ir_pipelines as ir
from tests.api.test_auth import API, _settings

RUN_RULE = API + "/runs/<run_id>"
REPO_ROOT = Path(__file__).resolve().parents[2]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: FlaskClient, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of /metrics, parsed by prometheus_client's own parser: (name, sorted labels) -> value."""
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def label_values(samples: Samples) -> set[str]:
    return {label_value for _, labels in samples for _, label_value in labels}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(executor_enabled=True))
    yield application
    shutdown(application)


def _two_steps() -> dict:
    echo = ir.sh_component("echo", 'echo "$0"', ["{{$.inputs.parameters['word']}}"],
                           inputs={"parameters": ir.parameters(word="STRING")})
    return ir.pipeline("metrics", [echo], {"dag": {"tasks": {
        "first": ir.task("comp-echo", display="first", parameters={"word": ir.const("a")}),
        "second": ir.task("comp-echo", display="second", after=["first"], parameters={"word": ir.const("b")}),
    }}})


def test_a_run_shows_in_the_request_run_step_and_claim_metrics(client: FlaskClient) -> None:
    before = scrape(client)
    created = ir.create_run(client, _two_steps())
    run_id = created["run"]["id"]
    status, _ = ir.wait_for(client, run_id)
    assert status == "Succeeded"
    assert client.get(f"/nothing/here/{run_id}").status_code == 404
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("kfp_backend_http_requests_total", method="POST", route=API + "/runs", status="200") == 1
    assert grew("kfp_backend_http_requests_total", method="GET", route=RUN_RULE, status="200") >= 1
    assert grew("kfp_backend_http_request_duration_seconds_count", method="GET", route=RUN_RULE) >= 1
    assert grew("kfp_backend_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert grew("kfp_backend_http_requests_total", method="GET", route="/metrics", status="200") == 1
    assert value(after, "kfp_backend_runs", state="Succeeded") >= 1
    assert grew("kfp_backend_step_launch_seconds_count") >= 2  # both steps
    assert grew("kfp_backend_executor_claim_lag_seconds_count") >= 1
    # Every step has ended: none holds a slot or waits for one.
    assert value(after, "kfp_backend_steps_running") == value(before, "kfp_backend_steps_running")
    assert value(after, "kfp_backend_steps_queued") == value(before, "kfp_backend_steps_queued")
    assert not [label for label in label_values(after) if run_id in label]


def test_runs_by_state_reports_every_state(client: FlaskClient) -> None:
    samples = scrape(client)
    states = {dict(labels)["state"] for name, labels in samples if name == "kfp_backend_runs"}
    assert {"Pending", "Running", "Succeeded", "Failed", "Error", "Other"} <= states


def test_metrics_answer_only_a_name_of_this_server(client: FlaskClient) -> None:
    # The same Host check as every endpoint (docs/auth.md): a DNS-rebinding page cannot read them.
    assert client.get("/metrics", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/metrics", headers={"Host": "127.0.0.1:8888"}).status_code == 200


def test_multi_user_metrics_are_open_and_name_no_tenant(db_url: str, tmp_path: Path) -> None:
    app = create_app(_settings(database_url=db_url, data_dir=tmp_path / "data", auth="required"))
    try:
        client = app.test_client()
        _, secret = AuthService(app.extensions["kfp_backend.services"].db).create_token("alice-metrics", ["team-m"])
        bearer = {"Authorization": f"Bearer {secret}"}
        owner = [{"key": {"type": "NAMESPACE", "id": "team-m"}, "relationship": "OWNER"}]
        experiment_name = f"secret-experiment-{uuid.uuid4().hex[:6]}"
        response = client.post(API + "/experiments", headers=bearer,
                               json={"name": experiment_name, "resource_references": owner})
        assert response.status_code == 200, response.get_data(as_text=True)
        experiment_id = response.get_json()["id"]
        assert client.get(f"{API}/experiments/{experiment_id}", headers=bearer).status_code == 200
        query = {"resource_reference_key.type": "NAMESPACE", "resource_reference_key.id": "team-m"}
        assert client.get(API + "/runs", headers=bearer, query_string=query).status_code == 200
        assert client.get(f"{API}/experiments/{experiment_id}").status_code == 401  # no token: counted too
        samples = scrape(client)  # no token: open, as healthz
        assert value(samples, "kfp_backend_http_requests_total", method="GET",
                     route=API + "/experiments/<id>", status="401") >= 1
        leaked = [label for label in label_values(samples)
                  if any(secret_part in label for secret_part in
                         ("team-m", "alice-metrics", experiment_id, experiment_name, secret))]
        assert leaked == []
        # Route templates, never a concrete path: no id of any run, experiment or job, of any test's app.
        assert [label for label in label_values(samples) if UUID.search(label)] == []
    finally:
        shutdown(app)


def test_the_body_is_prometheus_text(client: FlaskClient) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "kfp_backend_http_requests", "kfp_backend_http_request_duration_seconds", "kfp_backend_runs",
        "kfp_backend_steps_running", "kfp_backend_steps_queued", "kfp_backend_step_launch_seconds",
        "kfp_backend_scheduler_fire_lag_seconds", "kfp_backend_executor_claim_lag_seconds",
    } <= names


_PROCESS = """
import sys
from pathlib import Path
from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.store.migrations import upgrade
data = Path(sys.argv[1])
url = f"sqlite:///{data}/db.sqlite"
upgrade(url)
app = create_app(Settings(database_url=url, data_dir=data, executor_enabled=False, scheduler_enabled=False))
client = app.test_client()
for _ in range(int(sys.argv[2])):
    assert client.get("/apis/v1beta1/healthz").status_code == 200
if sys.argv[3] == "scrape":
    sys.stdout.write(client.get("/metrics").get_data(as_text=True))
shutdown(app)
"""


def test_with_a_multiprocess_dir_a_scrape_adds_up_every_process(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR (gunicorn workers): what one process counted shows in another's scrape."""
    metrics_dir, data = tmp_path / "prometheus", tmp_path / "data"
    metrics_dir.mkdir()
    data.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", _PROCESS, str(data), "3", "count"], env=env, check=True, timeout=120)
    text = subprocess.run([sys.executable, "-c", _PROCESS, str(data), "2", "scrape"], env=env, check=True,
                          timeout=120, capture_output=True, text=True).stdout
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    assert value(samples, "kfp_backend_http_requests_total", method="GET", route=API + "/healthz", status="200") == 5
    assert value(samples, "kfp_backend_runs", state="Succeeded") == 0
