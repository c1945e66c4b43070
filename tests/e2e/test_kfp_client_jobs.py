"""Recurring runs through the unchanged kfp 1.8.22 client against a live server.

The jobs here are created disabled, or enabled with a start time far in the future, so that no scheduler
fires them while the API is checked.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.e2e.helpers import api_exception, collect_pages, error_text
from tests.e2e.pipelines import compile_pipeline

pytestmark = pytest.mark.e2e

FAR_FUTURE = "2999-01-01T00:00:00Z"
FAR_FUTURE_END = "2999-12-31T00:00:00Z"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline("arithmetic", tmp_path_factory.mktemp("job-packages") / "arithmetic.yaml")


def test_create_get_list_enable_disable_delete(kfp_client, unique, package):
    experiment = kfp_client.create_experiment(f"{unique}-jobs")
    cron = kfp_client.create_recurring_run(
        experiment.id, f"{unique}-cron", description="every hour", cron_expression="0 0 * * * *",
        pipeline_package_path=str(package), params={"greeting": "scheduled"}, max_concurrency=2,
        no_catchup=True, enabled=False,
    )
    assert cron.id and cron.name == f"{unique}-cron"
    assert cron.description == "every hour"
    assert cron.enabled is None  # false is left out on the wire
    assert cron.no_catchup is True
    assert cron.max_concurrency == "2"
    assert cron.status == "NO_STATUS"
    assert cron.mode is None
    assert cron.trigger.cron_schedule.cron == "0 0 * * * *"
    assert cron.trigger.periodic_schedule is None
    assert cron.pipeline_spec.parameters[0].name == "greeting"
    assert cron.pipeline_spec.parameters[0].value == "scheduled"
    assert json.loads(cron.pipeline_spec.workflow_manifest)["kind"] == "Workflow"
    assert [(r.key.type, r.key.id, r.name, r.relationship) for r in cron.resource_references] == [
        ("EXPERIMENT", experiment.id, f"{unique}-jobs", "OWNER")
    ]
    assert cron.service_account == "pipeline-runner"
    assert isinstance(cron.created_at, datetime) and cron.created_at == cron.updated_at

    periodic = kfp_client.create_recurring_run(
        experiment.id, f"{unique}-periodic", interval_second=3600, start_time=FAR_FUTURE,
        end_time=FAR_FUTURE_END, pipeline_package_path=str(package), enabled=True,
    )
    assert periodic.enabled is True
    assert periodic.no_catchup is None
    assert periodic.max_concurrency == "1"  # the client's default
    schedule = periodic.trigger.periodic_schedule
    assert schedule.interval_second == "3600"
    assert schedule.start_time == datetime(2999, 1, 1, tzinfo=timezone.utc)
    assert schedule.end_time == datetime(2999, 12, 31, tzinfo=timezone.utc)

    got = kfp_client.get_recurring_run(cron.id)
    assert got.to_dict() == cron.to_dict()

    listed = kfp_client.list_recurring_runs(experiment_id=experiment.id, sort_by="name")
    assert [job.name for job in listed.jobs] == [f"{unique}-cron", f"{unique}-periodic"]
    assert listed.total_size == 2
    assert listed.jobs[0].pipeline_spec.workflow_manifest is None  # lists leave manifests out
    pages, totals = collect_pages(
        lambda token: kfp_client.list_recurring_runs(experiment_id=experiment.id, page_size=1, page_token=token,
                                                     sort_by="created_at desc"), "jobs")
    assert [len(page) for page in pages] == [1, 1] and totals == [2, 2]
    assert {page[0].id for page in pages} == {cron.id, periodic.id}

    kfp_client.disable_job(periodic.id)
    assert kfp_client.get_recurring_run(periodic.id).enabled is None
    kfp_client.disable_job(periodic.id)  # idempotent
    kfp_client._job_api.enable_job(periodic.id)
    assert kfp_client.get_recurring_run(periodic.id).enabled is True

    kfp_client.delete_job(cron.id)
    body = api_exception(lambda: kfp_client.get_recurring_run(cron.id), 404)
    assert body["code"] == 5 and error_text(body).endswith("not found.")
    assert [job.id for job in kfp_client.list_recurring_runs(experiment_id=experiment.id).jobs] == [periodic.id]
    kfp_client.delete_job(periodic.id)
    assert kfp_client.list_recurring_runs(experiment_id=experiment.id).jobs is None


def test_create_from_an_uploaded_pipeline_and_version(kfp_client, unique, package):
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name=f"{unique}-pipeline")
    experiment = kfp_client.create_experiment(f"{unique}-from-pipeline")
    job = kfp_client.create_recurring_run(
        experiment.id, f"{unique}-by-version", cron_expression="@every 1h", version_id=pipeline.id,
        enabled=False,
    )
    types = sorted((r.key.type, r.relationship) for r in job.resource_references)
    assert types == [("EXPERIMENT", "OWNER"), ("PIPELINE_VERSION", "CREATOR")]
    assert job.trigger.cron_schedule.cron == "@every 1h"
    by_pipeline = kfp_client.create_recurring_run(
        experiment.id, f"{unique}-by-pipeline", interval_second=60, pipeline_id=pipeline.id, enabled=False,
    )
    assert by_pipeline.pipeline_spec.pipeline_id == pipeline.id
    assert by_pipeline.pipeline_spec.pipeline_name == f"{unique}-pipeline"
    for created in (job, by_pipeline):
        kfp_client.delete_job(created.id)


def test_validation_errors_reach_the_client(kfp_client, unique, package):
    experiment = kfp_client.create_experiment(f"{unique}-invalid")

    def create(**kwargs):
        return kfp_client.create_recurring_run(experiment.id, f"{unique}-bad", pipeline_package_path=str(package),
                                               enabled=False, **kwargs)

    body = api_exception(lambda: create(cron_expression="0 0 0 * * 7"), 400)
    assert body["code"] == 3
    assert error_text(body).endswith(
        "Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). "
        "Error: End of range (7) above maximum (6): 7")
    body = api_exception(lambda: create(cron_expression="@hourly", max_concurrency=11), 400)
    assert "The max concurrency of the job is out of range. Support 1-10. Received 11." in error_text(body)
    body = api_exception(lambda: create(interval_second=-1), 400)
    assert "Found invalid period schedule interval -1. Set at interval to least 1 second." in error_text(body)
    body = api_exception(lambda: create(interval_second=60, params={"nope": 1}), 400)
    assert error_text(body).endswith("Unrecognized input parameter: nope")
    body = api_exception(lambda: create(interval_second=60, start_time=FAR_FUTURE_END, end_time=FAR_FUTURE), 400)
    assert "is before its start time" in error_text(body)
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (lambda: kfp_client.get_recurring_run(missing), lambda: kfp_client.delete_job(missing),
                 lambda: kfp_client.disable_job(missing), lambda: kfp_client._job_api.enable_job(missing)):
        body = api_exception(call, 404)
        assert error_text(body).endswith(f"Job {missing} not found.")
    assert kfp_client.list_recurring_runs(experiment_id=experiment.id).jobs is None
