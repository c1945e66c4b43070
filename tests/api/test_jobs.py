"""JobService over HTTP on every database: create (wire shape, triggers, validation and its messages), get,
list (paging, sort, filter, reference keys), delete (runs stay), enable/disable, and the experiment archive
cascade. Nothing fires here: no scheduler runs, a recording fake takes the JobScheduling hook."""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from kfp import compiler, dsl
from kfp.components import create_component_from_func
from sqlalchemy import update

from kfp_backend.config import Settings
from kfp_backend.scheduler.firing import JobFiring
from kfp_backend.services.all_services import Services
from kfp_backend.services.schedule_state import ScheduleStateService
from kfp_backend.store.models import Job, JobManifest, Run
from tests.api.recorded_hooks import RecordingScheduling, recording_app
from tests.api.run_references import experiment, experiment_ref, upload, version_ref
from tests.gateway_errors import error_message, gateway_error

API = "/apis/v1beta1"
JOBS = f"{API}/jobs"
EPOCH = "1970-01-01T00:00:00Z"
VALIDATE = "Validate create job request failed.: Invalid input error: "
CREATE_FAILED = "Failed to create a new job.: "
CRON_ERROR = (VALIDATE + "Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). "
              "Error: ")
BASE_IMAGE = "python:3.10-slim"
FAR_FUTURE = "2999-01-01T00:00:00Z"


# -- a pipeline, compiled at test time ----------------------------------------------------------------------


def _echo(text: str) -> str:
    print(text)
    return text


echo_op = create_component_from_func(_echo, base_image=BASE_IMAGE)


@dsl.pipeline(name="jobs-api", description="Echoes its parameters.")
def jobs_pipeline(message: str = "hello", when: str = "[[ScheduledTime]]"):
    echo_op(message)
    echo_op(when)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("job-pipelines") / "jobs.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(jobs_pipeline, str(path))
    text = path.read_text()
    return {"yaml": text, "json": json.dumps(yaml.safe_load(text))}


# -- app with a recording scheduler hook ------------------------------------------------------------------------


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    yield from recording_app(settings)


@pytest.fixture
def scheduling(services: Services) -> RecordingScheduling:
    assert isinstance(services.jobs.scheduling, RecordingScheduling)
    return services.jobs.scheduling


# -- helpers ---------------------------------------------------------------------------------------------------


def create_job(client: FlaskClient, body: dict) -> dict:
    response = client.post(JOBS, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def manifest_job(client: FlaskClient, manifest: str, name: str = "job", **extra: Any) -> dict:
    spec = {"workflow_manifest": manifest, **extra.pop("spec", {})}
    body = {"name": name, "pipeline_spec": spec, "max_concurrency": "1", **extra}
    return create_job(client, body)


def get_job(client: FlaskClient, job_id: str) -> dict:
    response = client.get(f"{JOBS}/{job_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def list_jobs(client: FlaskClient, **params: Any) -> dict:
    response = client.get(JOBS, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def names(body: dict) -> list[str]:
    return [job.get("name", "") for job in body.get("jobs", [])]


def stored_job(services: Services, job_id: str) -> Job | None:
    with services.db.transaction(write=False) as session:
        return session.get(Job, job_id)


def set_job(services: Services, job_id: str, **values: Any) -> None:
    with services.db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def default_experiment_id(client: FlaskClient) -> str:
    by_name = json.dumps({"predicates": [{"key": "name", "op": "EQUALS", "string_value": "Default"}]})
    return client.get(f"{API}/experiments", query_string={"filter": by_name}).get_json()["experiments"][0]["id"]


# -- create and get --------------------------------------------------------------------------------------------


def test_create_a_cron_job_from_a_manifest_and_get_it(
    client: FlaskClient, manifests: dict[str, str], services: Services, scheduling: RecordingScheduling
) -> None:
    before = int(time.time())
    job = create_job(client, {
        "name": "nightly", "description": "every night",
        "pipeline_spec": {"workflow_manifest": manifests["json"],
                          "parameters": [{"name": "message", "value": "hi [[Index]]"}]},
        "max_concurrency": "3",
        "trigger": {"cron_schedule": {"start_time": "2030-01-02T03:04:05Z", "end_time": "2031-01-01T00:00:00Z",
                                      "cron": "0 0 * * * *"}},
        "enabled": True, "no_catchup": True, "mode": "ENABLED",
    })
    after = int(time.time())
    job_id = job["id"]
    assert uuid.UUID(job_id).version == 4
    assert list(job) == ["id", "name", "description", "pipeline_spec", "resource_references", "service_account",
                         "max_concurrency", "trigger", "created_at", "updated_at", "status", "enabled", "no_catchup"]
    assert job["name"] == "nightly" and job["description"] == "every night"
    assert job["pipeline_spec"] == {"workflow_manifest": manifests["json"],
                                    "parameters": [{"name": "message", "value": "hi [[Index]]"}]}
    assert job["resource_references"] == [
        {"key": {"type": "EXPERIMENT", "id": default_experiment_id(client)}, "name": "Default", "relationship": "OWNER"}
    ]
    assert job["service_account"] == "pipeline-runner"
    assert job["max_concurrency"] == "3"
    assert job["trigger"] == {"cron_schedule": {"start_time": "2030-01-02T03:04:05Z",
                                                "end_time": "2031-01-01T00:00:00Z", "cron": "0 0 * * * *"}}
    assert job["created_at"] == job["updated_at"]
    created = int(time.mktime(time.strptime(job["created_at"], "%Y-%m-%dT%H:%M:%SZ"))) - time.timezone
    assert before <= created <= after
    assert job["status"] == "NO_STATUS"
    assert job["enabled"] is True and job["no_catchup"] is True
    assert "mode" not in job

    assert get_job(client, job_id) == job
    assert scheduling.changed == [job_id]

    row = stored_job(services, job_id)
    assert row is not None
    assert (row.trigger_kind, row.cron, row.interval_seconds) == ("cron", "0 0 * * * *", 0)
    assert (row.start_time, row.end_time) == (1893553445, 1924992000)
    assert (row.next_fire_at, row.last_scheduled_at, row.last_index) == (0, 0, 0)
    assert row.experiment_id == default_experiment_id(client)
    assert json.loads(row.parameters) == [{"name": "message", "value": "hi [[Index]]"}]
    with services.db.transaction(write=False) as session:
        manifest = session.get(JobManifest, job_id)
        assert manifest is not None and manifest.pipeline_spec_manifest == manifests["json"]

    # Listing never reads manifests: everything but the manifest.
    listed = list_jobs(client)
    assert listed["total_size"] == 1
    assert listed["jobs"] == [{**job, "pipeline_spec": {"parameters": job["pipeline_spec"]["parameters"]}}]


def test_triggers_names_and_defaults_on_the_wire(client: FlaskClient, manifests: dict[str, str],
                                                 services: Services) -> None:
    # lowerCamelCase keys and int64 as a number are read too.
    periodic = create_job(client, {"name": "periodic", "pipelineSpec": {"workflowManifest": manifests["yaml"]},
                                   "trigger": {"periodicSchedule": {"intervalSecond": 3600, "startTime": FAR_FUTURE}},
                                   "maxConcurrency": 10})
    assert periodic["trigger"] == {"periodic_schedule": {"start_time": FAR_FUTURE, "interval_second": "3600"}}
    assert periodic["max_concurrency"] == "10"
    assert "enabled" not in periodic and "no_catchup" not in periodic  # false is omitted
    row = stored_job(services, periodic["id"])
    assert row is not None and (row.trigger_kind, row.interval_seconds, row.cron) == ("periodic", 3600, "")

    # Neither schedule: an empty trigger object, as upstream shows it.
    for body in ({}, {"trigger": {}}, {"trigger": None}):
        job = manifest_job(client, manifests["yaml"], "once", **body)
        assert job["trigger"] == {}
        row = stored_job(services, job["id"])
        assert row is not None and (row.trigger_kind, row.start_time, row.end_time) == ("", 0, 0)

    # No name check for jobs: an empty name is allowed (and omitted on the wire).
    unnamed = manifest_job(client, manifests["yaml"], "")
    assert "name" not in unnamed
    assert get_job(client, unnamed["id"]) == unnamed

    custom = manifest_job(client, manifests["yaml"], "sa", service_account="custom-sa", enabled="true",
                          trigger={"cron_schedule": {"cron": "@every 1h30m"}})
    assert custom["service_account"] == "custom-sa"
    assert custom["enabled"] is True
    assert custom["trigger"] == {"cron_schedule": {"cron": "@every 1h30m"}}


def test_create_from_a_pipeline_or_a_version(client: FlaskClient, manifests: dict[str, str]) -> None:
    pipeline = upload(client, manifests["yaml"], "jobs-api")
    exp = experiment(client, "training")
    by_pipeline = create_job(client, {"name": "p", "pipeline_spec": {"pipeline_id": pipeline["id"]},
                                      "resource_references": [experiment_ref(exp["id"])], "max_concurrency": 10,
                                      "enabled": True})
    template = client.get(f"{API}/pipeline_versions/{pipeline['id']}/templates").get_json()["template"]
    assert by_pipeline["pipeline_spec"] == {"pipeline_id": pipeline["id"], "pipeline_name": "jobs-api",
                                            "workflow_manifest": template}
    assert by_pipeline["resource_references"] == [
        {"key": {"type": "EXPERIMENT", "id": exp["id"]}, "name": "training", "relationship": "OWNER"},
        {"key": {"type": "PIPELINE_VERSION", "id": pipeline["id"]}, "name": "jobs-api", "relationship": "CREATOR"},
    ]
    assert by_pipeline["trigger"] == {}

    by_version = create_job(client, {"name": "v", "resource_references": [version_ref(pipeline["id"])],
                                     "pipeline_spec": {"parameters": [{"name": "message", "value": "x"}]},
                                     "max_concurrency": 1})
    assert set(by_version["pipeline_spec"]) == {"workflow_manifest", "parameters"}
    assert [r["key"]["type"] for r in by_version["resource_references"]] == ["PIPELINE_VERSION", "EXPERIMENT"]
    assert by_version["resource_references"][1]["name"] == "Default"

    # package_id is the job's pipeline id: sortable and filterable.
    by_package = json.dumps({"predicates": [{"key": "package_id", "op": "EQUALS", "string_value": pipeline["id"]}]})
    assert names(list_jobs(client, filter=by_package)) == ["p"]
    assert names(list_jobs(client, sort_by="package_id desc")) == ["p", "v"]
    by_version_key = {"resource_reference_key.type": "PIPELINE_VERSION", "resource_reference_key.id": pipeline["id"]}
    assert names(list_jobs(client, sort_by="name", **by_version_key)) == ["p", "v"]


def test_create_validation_and_messages(client: FlaskClient, manifests: dict[str, str],
                                        scheduling: RecordingScheduling) -> None:
    manifest = manifests["json"]
    pipeline = upload(client, manifests["yaml"], "p")
    other = upload(client, manifests["yaml"], "other")
    gone = str(uuid.uuid4())

    def job(**fields: Any) -> dict:
        return {"name": "n", "pipeline_spec": {"workflow_manifest": manifest}, "max_concurrency": 1, **fields}

    cases: list[tuple[dict, int, int, str]] = [
        # The pipeline spec, with the same rules and messages as runs.
        ({}, 400, 3, VALIDATE + "Please specify a pipeline by providing a (workflow manifest or pipeline manifest) or "
         "(pipeline id or/and pipeline version)."),
        (job(pipeline_spec={"workflow_manifest": manifest, "pipeline_manifest": "{}"}), 400, 3,
         VALIDATE + "Please don't specify both workflow manifest and pipeline manifest."),
        (job(pipeline_spec={"workflow_manifest": manifest, "pipeline_id": pipeline["id"]}), 400, 3,
         VALIDATE + "Please don't specify a pipeline version or pipeline ID when you specify a workflow manifest "
         "or pipeline manifest."),
        (job(resource_references=[version_ref(pipeline["id"])]), 400, 3,
         VALIDATE + "Please don't specify a pipeline version or pipeline ID when you specify a workflow manifest "
         "or pipeline manifest."),
        (job(pipeline_spec={"pipeline_id": gone}), 404, 5,
         f"Validate create job request failed.: Get pipelineId failed.: ResourceNotFoundError: Pipeline {gone} "
         "not found."),
        (job(pipeline_spec={}, resource_references=[version_ref(gone)]), 404, 5,
         f"Validate create job request failed.: Get pipelineVersionId failed.: ResourceNotFoundError: Version {gone} "
         "not found."),
        (job(pipeline_spec={"pipeline_id": other["id"]}, resource_references=[version_ref(pipeline["id"])]), 400, 3,
         VALIDATE + "pipeline ID should be parent of pipeline version."),
        (job(pipeline_spec={"workflow_manifest": "kind: Nope"}), 400, 3, None),
        (job(pipeline_spec={"workflow_manifest": manifest, "parameters": [{"name": "message"}],
                            "runtime_config": {}}), 400, 3,
         VALIDATE + "Please don't specify both parameters and runtime config."),
        (job(pipeline_spec={"workflow_manifest": manifest, "parameters": [{"name": "message", "value": "v" * 10000}]}),
         400, 3, VALIDATE + "The input parameter length exceed maximum size of 10000."),
        # The spec is checked before the job's own fields.
        (job(pipeline_spec={}, max_concurrency=0), 400, 3, VALIDATE + "Please specify a pipeline by providing a "
         "(workflow manifest or pipeline manifest) or (pipeline id or/and pipeline version)."),
        # Max concurrency 1..10; missing is 0.
        (job(max_concurrency=None), 400, 3,
         VALIDATE + "The max concurrency of the job is out of range. Support 1-10. Received 0."),
        (job(max_concurrency="11"), 400, 3,
         VALIDATE + "The max concurrency of the job is out of range. Support 1-10. Received 11."),
        (job(max_concurrency=-1), 400, 3,
         VALIDATE + "The max concurrency of the job is out of range. Support 1-10. Received -1."),
        # Cron.
        (job(trigger={"cron_schedule": {}}), 400, 3, CRON_ERROR + "Empty spec string"),
        (job(trigger={"cron_schedule": {"cron": "* * *"}}), 400, 3,
         CRON_ERROR + "Expected 5 to 6 fields, found 3: * * *"),
        (job(trigger={"cron_schedule": {"cron": "0 0 0 * * 7"}}), 400, 3,
         CRON_ERROR + "End of range (7) above maximum (6): 7"),
        (job(trigger={"cron_schedule": {"cron": "@every 1d"}}), 400, 3,
         CRON_ERROR + 'Failed to parse duration @every 1d: time: unknown unit "d" in duration "1d"'),
        (job(max_concurrency=20, trigger={"cron_schedule": {"cron": "bad"}}), 400, 3,
         VALIDATE + "The max concurrency of the job is out of range. Support 1-10. Received 20."),
        (job(trigger={"cron_schedule": {"cron": "0 " * 200 + "0"}}), 400, 3, None),
        # Periodic.
        (job(trigger={"periodic_schedule": {}}), 400, 3,
         VALIDATE + "Found invalid period schedule interval 0. Set at interval to least 1 second."),
        (job(trigger={"periodic_schedule": {"interval_second": "-5"}}), 400, 3,
         VALIDATE + "Found invalid period schedule interval -5. Set at interval to least 1 second."),
        # Our addition: an end before the start.
        (job(trigger={"periodic_schedule": {"interval_second": 60, "start_time": "2030-01-02T00:00:00Z",
                                            "end_time": "2030-01-01T00:00:00Z"}}), 400, 3,
         VALIDATE + "The end time of the schedule (2030-01-01T00:00:00Z) is before its start time "
         "(2030-01-02T00:00:00Z)."),
        (job(trigger={"cron_schedule": {"cron": "@hourly", "start_time": "2030-01-02T00:00:00Z",
                                        "end_time": "2030-01-01T23:59:59Z"}}), 400, 3,
         VALIDATE + "The end time of the schedule (2030-01-01T23:59:59Z) is before its start time "
         "(2030-01-02T00:00:00Z)."),
        # References and parameters, checked when the job is created.
        (job(resource_references=[experiment_ref(gone)], pipeline_spec={
            "workflow_manifest": manifest, "parameters": [{"name": "nope"}]}), 404, 5,
         CREATE_FAILED + f"ResourceNotFoundError: Experiment {gone} not found."),
        (job(resource_references=[{"key": {"type": "PIPELINE", "id": pipeline["id"]}, "relationship": "OWNER"}]),
         400, 3, CREATE_FAILED + "Invalid input error: Unsupported resource type: PIPELINE"),
        (job(pipeline_spec={"workflow_manifest": manifest,
                            "parameters": [{"name": "message", "value": "a"}, {"name": "nope"}]}), 400, 3,
         CREATE_FAILED + "Failed to verify parameters.: Invalid input error: Unrecognized input parameter: nope"),
        # Column limits.
        (job(name="x" * 256), 400, 3, VALIDATE + "Job name is too long. Support maximum length of 255 characters."),
        (job(description="a\x00b"), 400, 3,
         VALIDATE + "job.description contains a NUL character, which cannot be stored."),
    ]
    for body, status, code, message in cases:
        body = {key: value for key, value in body.items() if value is not None}
        gateway_error(client.post(JOBS, json=body), status, code, message)

    # Malformed bodies.
    for body in (
        job(trigger={"cron_schedule": {"cron": "@hourly"}, "periodic_schedule": {"interval_second": 5}}),
        job(enabled="yes"),
        job(max_concurrency="many"),
        job(mode="SOMETIMES"),
        job(trigger={"cron_schedule": {"cron": "@hourly", "start_time": "tomorrow"}}),
    ):
        body = gateway_error(client.post(JOBS, json=body), 400, 3)
        assert body["error"].startswith("Invalid input error: Invalid request body: ")

    bad_cron = gateway_error(client.post(JOBS, json=job(trigger={"cron_schedule": {"cron": "0 0 0 * * 7"}})), 400, 3)
    assert error_message(bad_cron) == (
        "Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). "
        "Error: End of range (7) above maximum (6): 7")
    assert list_jobs(client) == {}
    assert scheduling.changed == []


# -- list ------------------------------------------------------------------------------------------------------


def test_list_paging_sorting_filtering_and_keys(client: FlaskClient, manifests: dict[str, str]) -> None:
    exp = experiment(client, "mine")
    created = []
    for name in ("b-job", "c-job", "a-job"):
        refs = [experiment_ref(exp["id"])] if name != "c-job" else []
        created.append(manifest_job(client, manifests["json"], name, resource_references=refs))
        time.sleep(0.01)

    listed = list_jobs(client, page_size=2, sort_by="name")
    assert names(listed) == ["a-job", "b-job"] and listed["total_size"] == 3
    rest = list_jobs(client, page_size=2, sort_by="name", page_token=listed["next_page_token"])
    assert names(rest) == ["c-job"] and rest["total_size"] == 3 and "next_page_token" not in rest
    assert names(list_jobs(client, sort_by="name desc")) == ["c-job", "b-job", "a-job"]
    by_created = list_jobs(client, sort_by="created_at")
    assert sorted(job["id"] for job in by_created["jobs"]) == sorted(job["id"] for job in created)
    first = list_jobs(client, page_size=1, sort_by="id")
    ids = [job["id"] for job in first["jobs"]]
    token = first["next_page_token"]
    while token:
        page = list_jobs(client, page_size=1, page_token=token)
        ids += [job["id"] for job in page["jobs"]]
        token = page.get("next_page_token")
    assert ids == sorted(job["id"] for job in created)

    contains = json.dumps({"predicates": [{"key": "name", "op": "IS_SUBSTRING", "string_value": "-JOB"}]})
    assert len(list_jobs(client, filter=contains)["jobs"]) == 3
    one = json.dumps({"predicates": [{"key": "name", "op": 8, "stringValues": {"values": ["a-job", "c-job"]}}]})
    assert names(list_jobs(client, filter=one, sort_by="name")) == ["a-job", "c-job"]
    newer = json.dumps({"predicates": [{"key": "created_at", "op": "GREATER_THAN_EQUALS",
                                        "timestamp_value": "2000-01-01T00:00:00Z"}]})
    assert list_jobs(client, filter=newer)["total_size"] == 3

    in_experiment = {"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": exp["id"]}
    assert names(list_jobs(client, sort_by="name", **in_experiment)) == ["a-job", "b-job"]
    default = {"resource_reference_key.type": "EXPERIMENT", "resource_reference_key.id": default_experiment_id(client)}
    assert names(list_jobs(client, **default)) == ["c-job"]
    assert list_jobs(client, **{"resource_reference_key.type": "EXPERIMENT",
                                "resource_reference_key.id": "none"}) == {}
    assert list_jobs(client, **{"resource_reference_key.type": "NAMESPACE",
                                "resource_reference_key.id": "team"}) == {}
    assert list_jobs(client, **{"resource_reference_key.type": "NAMESPACE"})["total_size"] == 3
    by_job = {"resource_reference_key.type": "JOB", "resource_reference_key.id": created[0]["id"]}
    assert list_jobs(client, **by_job) == {}

    gateway_error(client.get(JOBS, query_string={"sort_by": "description"}), 400, 3,
                  'Failed to create list options: Invalid input error: Invalid sorting field: "description" on '
                  "listable type Job")
    gateway_error(client.get(JOBS, query_string={"filter": json.dumps({"predicates": [
        {"key": "enabled", "op": "EQUALS", "string_value": "true"}]})}), 400, 3,
        'Failed to create list options: Invalid input error: no support for filtering on unrecognized field "enabled"')
    gateway_error(client.get(JOBS, query_string={"resource_reference_key.type": "PIPELINE",
                                                 "resource_reference_key.id": "x"}), 400, 3,
                  "Validating filter failed.: Unrecognized resource reference type.: Invalid input error: "
                  "Unsupported resource type: PIPELINE")
    gateway_error(client.get(JOBS, query_string={"page_token": "garbage"}), 400, 3,
                  "Failed to create list options: Invalid input error: Invalid package token.")
    gateway_error(client.get(JOBS, query_string={"page_token": listed["next_page_token"], "sort_by": "created_at"}),
                  400, 3)


# -- enable, disable, delete -----------------------------------------------------------------------------------


def test_enable_and_disable_are_idempotent_and_move_updated_at_only_on_change(
    client: FlaskClient, manifests: dict[str, str], services: Services, scheduling: RecordingScheduling
) -> None:
    job = manifest_job(client, manifests["json"], "toggle",
                       trigger={"cron_schedule": {"cron": "0 0 0 * * *", "start_time": FAR_FUTURE}})
    job_id = job["id"]
    assert "enabled" not in job
    scheduling.changed.clear()
    set_job(services, job_id, updated_at=1000, next_fire_at=12345)

    # Disabling a disabled job: nothing changes, still 200.
    assert client.post(f"{JOBS}/{job_id}/disable").get_json() == {}
    assert get_job(client, job_id)["updated_at"] == "1970-01-01T00:16:40Z"
    assert scheduling.changed == []

    before = int(time.time())
    response = client.post(f"{JOBS}/{job_id}/enable")
    assert response.status_code == 200 and response.get_json() == {}
    enabled = get_job(client, job_id)
    assert enabled["enabled"] is True
    assert enabled["updated_at"] != "1970-01-01T00:16:40Z"
    row = stored_job(services, job_id)
    assert row is not None and row.updated_at >= before
    assert row.next_fire_at == 0  # due for the scheduler to look at now
    assert scheduling.changed == [job_id]

    set_job(services, job_id, updated_at=2000, next_fire_at=777)
    assert client.post(f"{JOBS}/{job_id}/enable").status_code == 200
    row = stored_job(services, job_id)
    assert row is not None and (row.updated_at, row.next_fire_at, row.enabled) == (2000, 777, True)

    assert client.post(f"{JOBS}/{job_id}/disable").status_code == 200
    row = stored_job(services, job_id)
    assert row is not None and not row.enabled and row.updated_at >= before
    assert row.next_fire_at == 777  # disabling leaves the schedule progress alone
    assert "enabled" not in get_job(client, job_id)
    assert scheduling.changed == [job_id, job_id]

    gone = str(uuid.uuid4())
    body = gateway_error(
        client.post(f"{JOBS}/{gone}/enable"), 404, 5,
        f"Enable/Disable job failed: Check job exist failed: ResourceNotFoundError: Job {gone} not found.")
    assert error_message(body) == f"Job {gone} not found."
    gateway_error(client.post(f"{JOBS}/{gone}/disable"), 404, 5,
                  f"Enable/Disable job failed: ResourceNotFoundError: Job {gone} not found.")


def test_delete_keeps_the_runs_of_the_job(client: FlaskClient, manifests: dict[str, str], services: Services,
                                          scheduling: RecordingScheduling) -> None:
    job = manifest_job(client, manifests["json"], "doomed", enabled=True)
    job_id = job["id"]
    # Only the scheduler links a run to its job: fire it (a job without a schedule fires once, now).
    (fired,) = JobFiring(ScheduleStateService(services.db), services.settings).fire_due().fired
    run_id = fired.run_id
    by_job = {"resource_reference_key.type": "JOB", "resource_reference_key.id": job_id}
    assert [r["id"] for r in client.get(f"{API}/runs", query_string=by_job).get_json()["runs"]] == [run_id]

    assert client.delete(f"{JOBS}/{job_id}").get_json() == {}
    assert scheduling.changed == [job_id, job_id]
    body = gateway_error(client.get(f"{JOBS}/{job_id}"), 404, 5, f"ResourceNotFoundError: Job {job_id} not found.")
    assert error_message(body) == f"Job {job_id} not found."
    gateway_error(client.delete(f"{JOBS}/{job_id}"), 404, 5,
                  f"Delete job failed: ResourceNotFoundError: Job {job_id} not found.")
    with services.db.transaction(write=False) as session:
        assert session.get(JobManifest, job_id) is None
        kept = session.get(Run, run_id)
        assert kept is not None and kept.job_id == job_id
    assert client.get(f"{API}/runs/{run_id}").status_code == 200
    assert list_jobs(client) == {}


# -- the experiment archive cascade ----------------------------------------------------------------------------


def test_archiving_an_experiment_disables_its_jobs_and_unarchive_does_not_enable_them(
    client: FlaskClient, manifests: dict[str, str], services: Services
) -> None:
    exp = experiment(client, "seasonal")
    mine = [manifest_job(client, manifests["json"], f"mine-{i}", enabled=True,
                         resource_references=[experiment_ref(exp["id"])],
                         trigger={"periodic_schedule": {"interval_second": 60, "start_time": FAR_FUTURE}})
            for i in range(2)]
    elsewhere = manifest_job(client, manifests["json"], "elsewhere", enabled=True)
    for job in (*mine, elsewhere):
        set_job(services, job["id"], updated_at=1000)

    assert client.post(f"{API}/experiments/{exp['id']}:archive").status_code == 200
    for job in mine:
        got = get_job(client, job["id"])
        assert "enabled" not in got
        assert got["updated_at"] != "1970-01-01T00:16:40Z"
    other = get_job(client, elsewhere["id"])
    assert other["enabled"] is True and other["updated_at"] == "1970-01-01T00:16:40Z"

    assert client.post(f"{API}/experiments/{exp['id']}:unarchive").status_code == 200
    for job in mine:
        assert "enabled" not in get_job(client, job["id"])
    # A job of an archived experiment can be enabled again explicitly.
    assert client.post(f"{JOBS}/{mine[0]['id']}/enable").status_code == 200
    assert get_job(client, mine[0]["id"])["enabled"] is True


def test_a_deleted_default_experiment_is_created_again(client: FlaskClient, manifests: dict[str, str]) -> None:
    """Deleting the Default experiment: the next job without an experiment re-creates it, as runs do."""
    default_id = default_experiment_id(client)
    assert client.delete(f"{API}/experiments/{default_id}").status_code == 200
    job = manifest_job(client, manifests["json"], "orphan")
    (reference,) = job["resource_references"]
    assert reference["name"] == "Default" and reference["key"]["id"] != default_id
