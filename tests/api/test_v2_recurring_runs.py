"""The v2beta1 RecurringRunService over HTTP on every database: create (wire shape, triggers, typed runtime
parameters, modes), get, list (experiment, filter with v2 names, paging, sort), enable/disable, delete; bad
input as 4xx JSON in the v2 error body; one set of job rows seen from both APIs; a recurring run created
through v2beta1 fired by the scheduler; recurring runs of KFP v2 (IR) specs, typed parameters and fires."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from kfp_backend.config import Settings
from kfp_backend.scheduler.firing import JobFiring
from kfp_backend.services.all_services import Services
from kfp_backend.services.ir_run_manifest import fired_ir_document
from kfp_backend.services.schedule_state import ScheduleStateService
from kfp_backend.store.models import Job, Run, RunManifest
from tests.api.recorded_hooks import RecordingScheduling, recording_app
from tests.api.test_v2_experiments import V2, multi_user, v2_error
from tests.api.test_v2_pipelines import PLATFORM, upload
from tests.api.test_v2_runs import typed_ir

__all__ = ["multi_user"]  # the fixture, shared with the experiments' tests

V1 = "/apis/v1beta1"
RECURRING = f"{V2}/recurringruns"
PAST_START = "2020-01-01T00:00:00Z"
FAR_FUTURE = "2999-01-01T00:00:00Z"
WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: v2-recurring-
spec:
  entrypoint: say
  arguments:
    parameters:
      - {name: word, value: hello}
      - {name: count, value: "1"}
      - {name: flags, value: "{}"}
  templates:
    - name: say
      container:
        image: alpine:3.19
        command: [echo, "{{workflow.parameters.word}}"]
"""
PERIODIC = {"periodic_schedule": {"interval_second": "3600", "start_time": FAR_FUTURE}}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    yield from recording_app(settings)


@pytest.fixture
def scheduling(services: Services) -> RecordingScheduling:
    assert isinstance(services.jobs.scheduling, RecordingScheduling)
    return services.jobs.scheduling


def ok(response: Any) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def create(client: FlaskClient, **fields: Any) -> dict:
    body = {"display_name": "recurring", "max_concurrency": "1", "trigger": PERIODIC, **fields}
    return ok(client.post(RECURRING, json=body))


def argo_version(client: FlaskClient, name: str = "argo") -> dict:
    """An Argo workflow uploaded through v2beta1: (pipeline id, version id)."""
    pipeline = ok(upload(client, "argo.yaml", WORKFLOW, name=name))
    versions = ok(client.get(f"{V2}/pipelines/{pipeline['pipeline_id']}/versions"))["pipeline_versions"]
    return {"pipeline_id": pipeline["pipeline_id"], "pipeline_version_id": versions[0]["pipeline_version_id"]}


def default_experiment(client: FlaskClient) -> str:
    return ok(client.get(f"{V2}/experiments"))["experiments"][0]["experiment_id"]


def refused(response: Any, text: str, status: int = 400, code: int = 3) -> dict:
    body = v2_error(response, status, code)
    assert text in body["message"], body
    return body


# -- create and get ---------------------------------------------------------------------------------------


def test_create_from_a_version_and_get_it(client: FlaskClient, services: Services,
                                          scheduling: RecordingScheduling) -> None:
    reference = argo_version(client)
    experiment = ok(client.post(f"{V2}/experiments", json={"display_name": "nightly"}))["experiment_id"]
    before = int(time.time())
    created = create(
        client, display_name="nightly", description="every night", pipeline_version_reference=reference,
        runtime_config={"parameters": {"word": "hi [[Index]]", "count": 3, "flags": {"a": [1, True]}}},
        max_concurrency=3, mode="ENABLE", no_catchup=True, experiment_id=experiment,
        trigger={"cron_schedule": {"start_time": "2030-01-02T03:04:05Z", "end_time": "2031-01-01T00:00:00Z",
                                   "cron": "0 0 * * * *"}},
    )
    assert list(created) == ["recurring_run_id", "display_name", "description", "pipeline_version_reference",
                             "runtime_config", "service_account", "max_concurrency", "trigger", "mode",
                             "created_at", "updated_at", "status", "no_catchup", "experiment_id"]
    assert created["pipeline_version_reference"] == reference
    assert created["runtime_config"] == {"parameters": {"word": "hi [[Index]]", "count": 3,
                                                        "flags": {"a": [1, True]}}}
    assert created["service_account"] == "pipeline-runner"
    assert created["max_concurrency"] == "3"
    assert created["trigger"] == {"cron_schedule": {"start_time": "2030-01-02T03:04:05Z",
                                                    "end_time": "2031-01-01T00:00:00Z", "cron": "0 0 * * * *"}}
    assert (created["mode"], created["status"], created["no_catchup"]) == ("ENABLE", "ENABLED", True)
    assert created["experiment_id"] == experiment
    assert created["created_at"] == created["updated_at"]
    assert time.strptime(created["created_at"], "%Y-%m-%dT%H:%M:%SZ").tm_year >= time.gmtime(before).tm_year
    run_id = created["recurring_run_id"]
    assert ok(client.get(f"{RECURRING}/{run_id}")) == created
    assert scheduling.changed == [run_id]

    # v1beta1 sees the same job, its parameters as text.
    job = ok(client.get(f"{V1}/jobs/{run_id}"))
    assert job["name"] == "nightly" and job["enabled"] is True and job["max_concurrency"] == "3"
    assert job["pipeline_spec"]["parameters"] == [
        {"name": "word", "value": "hi [[Index]]"}, {"name": "count", "value": "3"},
        {"name": "flags", "value": '{"a":[1,true]}'},
    ]
    assert {"key": {"type": "EXPERIMENT", "id": experiment}, "name": "nightly",
            "relationship": "OWNER"} in job["resource_references"]
    assert {"key": {"type": "PIPELINE_VERSION", "id": reference["pipeline_version_id"]}, "name": "argo",
            "relationship": "CREATOR"} in job["resource_references"]
    with services.db.transaction(write=False) as session:
        row = session.get(Job, run_id)
        assert row is not None and row.enabled and row.pipeline_id == reference["pipeline_id"]


def test_a_v1_job_is_a_recurring_run(client: FlaskClient) -> None:
    body = {"name": "from-v1", "pipeline_spec": {"workflow_manifest": WORKFLOW,
                                                 "parameters": [{"name": "count", "value": "7"}]},
            "max_concurrency": "2", "trigger": {"periodic_schedule": {"interval_second": 60}}}
    job = ok(client.post(f"{V1}/jobs", json=body))
    seen = ok(client.get(f"{RECURRING}/{job['id']}"))
    assert seen["display_name"] == "from-v1"
    assert seen["runtime_config"] == {"parameters": {"count": "7"}}  # v1's text stays text
    assert seen["trigger"] == {"periodic_schedule": {"interval_second": "60"}}
    assert (seen["mode"], seen["status"]) == ("DISABLE", "DISABLED")
    assert seen["experiment_id"] == default_experiment(client)
    assert seen["pipeline_spec"] == yaml.safe_load(WORKFLOW)
    assert "pipeline_version_reference" not in seen
    listed = ok(client.get(RECURRING))
    assert listed["total_size"] == 1
    (item,) = listed["recurringRuns"]
    assert item == {k: v for k, v in seen.items() if k != "pipeline_spec"}  # lists read no manifests
    ok(client.post(f"{RECURRING}/{job['id']}:enable"))
    assert ok(client.get(f"{V1}/jobs/{job['id']}"))["enabled"] is True
    ok(client.post(f"{V1}/jobs/{job['id']}/disable"))
    assert ok(client.get(f"{RECURRING}/{job['id']}"))["status"] == "DISABLED"


def test_inline_argo_spec_camel_case_and_defaults(client: FlaskClient) -> None:
    created = ok(client.post(RECURRING, json={
        "displayName": "inline", "pipelineSpec": yaml.safe_load(WORKFLOW), "maxConcurrency": 10,
        "trigger": {"periodicSchedule": {"intervalSecond": 5}}, "runtimeConfig": {"parameters": {"word": "x"}},
    }))
    assert created["pipeline_spec"] == yaml.safe_load(WORKFLOW)
    assert created["runtime_config"] == {"parameters": {"word": "x"}}
    # Mode unset: the recurring run is disabled.
    assert (created["mode"], created["status"]) == ("DISABLE", "DISABLED")
    assert created["trigger"] == {"periodic_schedule": {"interval_second": "5"}}
    assert "no_catchup" not in created and "description" not in created
    # No trigger: an empty trigger, as for a v1 job (fires once when enabled).
    once = create(client, pipeline_spec=yaml.safe_load(WORKFLOW), trigger={})
    assert once["trigger"] == {}
    assert "runtime_config" not in once  # without parameters, as upstream


def test_pipeline_id_alone_runs_its_default_version(client: FlaskClient) -> None:
    reference = argo_version(client, "by-pipeline")
    created = create(client, pipeline_version_reference={"pipeline_id": reference["pipeline_id"]})
    assert created["pipeline_version_reference"] == reference


# -- bad input -----------------------------------------------------------------------------------------------


def test_bad_input_is_a_400_in_the_v2_body(client: FlaskClient) -> None:
    spec = yaml.safe_load(WORKFLOW)
    reference = argo_version(client, "bad-input")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"pipeline_spec": spec, "max_concurrency": "0"},
         "The max concurrency of the job is out of range. Support 1-10. Received 0."),
        ({"pipeline_spec": spec, "max_concurrency": "11"}, "Support 1-10. Received 11."),
        ({"pipeline_spec": spec, "max_concurrency": "many"}, "max_concurrency"),
        ({"pipeline_spec": spec, "trigger": {**PERIODIC, "cron_schedule": {"cron": "0 0 * * * *"}}},
         "not both"),
        ({"pipeline_spec": spec, "trigger": {"cron_schedule": {"cron": "every day"}}},
         "Schedule cron is not a supported format"),
        ({"pipeline_spec": spec, "trigger": {"periodic_schedule": {"interval_second": 0}}},
         "Found invalid period schedule interval 0"),
        ({"pipeline_spec": spec, "trigger": {"periodic_schedule": {"interval_second": 5, "start_time": "soon"}}},
         "start_time"),
        ({"pipeline_spec": spec, "trigger": {"periodic_schedule": {"interval_second": 5,
                                                                   "start_time": "2030-01-02T00:00:00Z",
                                                                   "end_time": "2030-01-01T00:00:00Z"}}},
         "is before its start time"),
        ({"pipeline_spec": spec, "mode": "SOMETIMES"}, "mode"),
        ({"pipeline_spec": spec, "surprise": 1}, "surprise"),
        ({"pipeline_spec": spec, "trigger": {"periodic_schedule": {"interval_second": 5, "every": 1}}}, "every"),
        ({"pipeline_spec": spec, "pipeline_version_reference": reference}, "not both"),
        ({}, "Please specify a pipeline"),
        ({"pipeline_spec": {"nothing": "here"}}, "pipeline_spec must be"),
        ({"pipeline_spec": spec, "runtime_config": {"parameters": {"unknown": 1}}},
         "Unrecognized input parameter: unknown"),
        ({"pipeline_spec": spec, "runtime_config": {"parameters": {"word": "x"}, "pipeline_root": "/tmp/r"}},
         "pipeline_root applies to KFP v2 pipeline specs, not Argo workflows"),
        ({"pipeline_version_reference": reference, "runtime_config": {"pipeline_root": "/tmp/r"}},
         "pipeline_root applies to KFP v2 pipeline specs"),
        ({"pipeline_spec": spec, "runtime_config": {"pipeline_root": "a\u0000b"}}, "NUL"),
        ({"pipeline_spec": spec, "runtime_config": {"parameters": ["word"]}}, "parameters"),
        ({"pipeline_spec": spec, "runtime_config": {"parameters": {"word": "a\u0000b"}}}, "NUL"),
        ({"pipeline_spec": spec, "plugins_input": {"x": 1}}, "plugins_input is not supported"),
        ({"pipeline_spec": spec, "display_name": "n" * 256}, "Job name is too long"),
    ]
    for fields, text in cases:
        refused(client.post(RECURRING, json={"display_name": "bad", "max_concurrency": "1",
                                             "trigger": PERIODIC, **fields}), text)
    refused(client.post(RECURRING, data="{", content_type="application/json"), "")
    refused(client.post(RECURRING, json=[1]), "")
    assert ok(client.get(RECURRING)) == {}  # nothing was created


def test_unknown_references_are_404(client: FlaskClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    spec = yaml.safe_load(WORKFLOW)
    refused(create_response(client, pipeline_version_reference={"pipeline_id": missing}), missing, 404, 5)
    refused(create_response(client, pipeline_version_reference={"pipeline_version_id": missing}), missing, 404, 5)
    refused(create_response(client, pipeline_spec=spec, experiment_id=missing), missing, 404, 5)
    for path, method in ((missing, "get"), (missing, "delete"), (f"{missing}:enable", "post"),
                         (f"{missing}:disable", "post")):
        refused(getattr(client, method)(f"{RECURRING}/{path}"), missing, 404, 5)


def create_response(client: FlaskClient, **fields: Any) -> Any:
    return client.post(RECURRING, json={"display_name": "r", "max_concurrency": 1, "trigger": PERIODIC, **fields})


def ir_version(client: FlaskClient, name: str = "ir") -> dict:
    """The typed IR spec (word: STRING, n: NUMBER_INTEGER, flag: BOOLEAN, items: LIST) uploaded through v2beta1:
    (pipeline id, version id)."""
    pipeline = ok(upload(client, "ir.yaml", yaml.safe_dump(typed_ir()), name=name))
    versions = ok(client.get(f"{V2}/pipelines/{pipeline['pipeline_id']}/versions"))["pipeline_versions"]
    return {"pipeline_id": pipeline["pipeline_id"], "pipeline_version_id": versions[0]["pipeline_version_id"]}


def test_ir_recurring_runs_from_every_source_with_typed_parameters(client: FlaskClient) -> None:
    """IR specs are recurring runs like Argo workflows: by version reference, by their pipeline's default version,
    inline (with or without a platform spec), and as a v1beta1 job of the version. Their parameters are checked
    as an IR run's: typed per the spec's root inputs, undeclared ones refused."""
    reference = ir_version(client)
    values = {"word": "at [[Index]]", "n": 3, "flag": True, "items": [1, "a"]}
    for fields in ({"pipeline_version_reference": reference},
                   {"pipeline_version_reference": {"pipeline_id": reference["pipeline_id"]}},
                   {"pipeline_spec": typed_ir()},
                   {"pipeline_spec": {"pipeline_spec": typed_ir(), "platform_spec": PLATFORM}}):
        created = create(client, runtime_config={"parameters": values}, **fields)
        assert created["runtime_config"] == {"parameters": values}
        if "pipeline_spec" in fields:
            assert created["pipeline_spec"] == fields["pipeline_spec"]
        else:
            assert created["pipeline_version_reference"] == reference
    v1 = ok(client.post(f"{V1}/jobs", json={
        "name": "ir", "max_concurrency": 1, "pipeline_spec": {"parameters": [{"name": "n", "value": "[[Index]]"}]},
        "resource_references": [{"key": {"type": "PIPELINE_VERSION", "id": reference["pipeline_version_id"]},
                                 "relationship": "CREATOR"}]}))
    assert v1["pipeline_spec"]["parameters"] == [{"name": "n", "value": "[[Index]]"}]
    for parameters, message in (({"n": "three"}, "Invalid input parameter"), ({"n": 1.5}, "Invalid input parameter"),
                                ({"word": 3}, "is not a STRING"), ({"nope": 1}, "Unrecognized input parameter: nope")):
        refused(create_response(client, pipeline_version_reference=reference,
                                runtime_config={"parameters": parameters}), message)
    bad_v1 = client.post(f"{V1}/jobs", json={
        "name": "ir", "max_concurrency": 1, "pipeline_spec": {"parameters": [{"name": "n", "value": "x"}]},
        "resource_references": [{"key": {"type": "PIPELINE_VERSION", "id": reference["pipeline_version_id"]},
                                 "relationship": "CREATOR"}]})
    assert bad_v1.status_code == 400 and "Invalid input parameter" in bad_v1.get_json()["error"]
    assert ok(client.get(RECURRING))["total_size"] == 5


# -- list, enable, disable, delete ---------------------------------------------------------------------------


def test_list_by_experiment_filter_sort_and_pages(client: FlaskClient) -> None:
    spec = yaml.safe_load(WORKFLOW)
    experiment = ok(client.post(f"{V2}/experiments", json={"display_name": "e"}))["experiment_id"]
    ids = {name: create(client, display_name=name, pipeline_spec=spec,
                        experiment_id=experiment if name != "c" else "")["recurring_run_id"]
           for name in ("b", "a", "c")}
    by_experiment = ok(client.get(RECURRING, query_string={"experiment_id": experiment, "sort_by": "display_name"}))
    assert [r["display_name"] for r in by_experiment["recurringRuns"]] == ["a", "b"]
    desc = ok(client.get(RECURRING, query_string={"sort_by": "display_name desc"}))
    assert [r["display_name"] for r in desc["recurringRuns"]] == ["c", "b", "a"]
    named = json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": "c"}]})
    assert [r["recurring_run_id"] for r in ok(client.get(RECURRING, query_string={"filter": named}))
            ["recurringRuns"]] == [ids["c"]]
    by_id = json.dumps({"predicates": [{"key": "recurring_run_id", "operation": "IN",
                                        "string_values": {"values": [ids["a"], ids["b"]]}}]})
    assert ok(client.get(RECURRING, query_string={"filter": by_id}))["total_size"] == 2
    first = ok(client.get(RECURRING, query_string={"page_size": 2, "sort_by": "created_at"}))
    assert len(first["recurringRuns"]) == 2 and first["total_size"] == 3
    rest = ok(client.get(RECURRING, query_string={"page_size": 2, "page_token": first["next_page_token"]}))
    assert len(rest["recurringRuns"]) == 1 and "next_page_token" not in rest
    v1_op = json.dumps({"predicates": [{"key": "display_name", "op": "EQUALS", "string_value": "c"}]})
    refused(client.get(RECURRING, query_string={"filter": v1_op}), "operation")
    refused(client.get(RECURRING, query_string={"sort_by": "nonsense"}), "nonsense")
    refused(client.get(RECURRING, query_string={"page_token": "garbage"}), "")
    refused(client.get(RECURRING, query_string={"page_size": "-1"}), "")


def test_enable_disable_and_delete(client: FlaskClient, scheduling: RecordingScheduling) -> None:
    created = create(client, pipeline_spec=yaml.safe_load(WORKFLOW), mode="DISABLE")
    run_id = created["recurring_run_id"]
    assert created["status"] == "DISABLED"
    assert ok(client.post(f"{RECURRING}/{run_id}:enable")) == {}
    enabled = ok(client.get(f"{RECURRING}/{run_id}"))
    assert (enabled["mode"], enabled["status"]) == ("ENABLE", "ENABLED")
    assert ok(client.post(f"{RECURRING}/{run_id}:enable")) == {}  # again: a no-op that succeeds
    assert ok(client.post(f"{RECURRING}/{run_id}:disable")) == {}
    assert ok(client.get(f"{RECURRING}/{run_id}"))["status"] == "DISABLED"
    assert ok(client.delete(f"{RECURRING}/{run_id}")) == {}
    assert scheduling.changed == [run_id, run_id, run_id, run_id]
    refused(client.get(f"{RECURRING}/{run_id}"), run_id, 404, 5)
    assert client.get(f"{V1}/jobs/{run_id}").status_code == 404
    # A wrong method is UNIMPLEMENTED, as on the rest of v2beta1.
    v2_error(client.put(f"{RECURRING}/{run_id}"), 501, 12, detail=False)


# -- firing ----------------------------------------------------------------------------------------------------


def firing(services: Services) -> JobFiring:
    """The scheduler's firing, wired as the server wires it."""
    return JobFiring(ScheduleStateService(services.db), services.settings, ir_run_document=fired_ir_document)


def test_a_v2_periodic_recurring_run_fires_runs(client: FlaskClient, services: Services) -> None:
    """A past start time: the scheduler catches up on the slots since then, each a run of the job with the
    recurring run's parameters (text, as the Argo workflow takes them)."""
    now = int(time.time())
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30))
    reference = argo_version(client, "fired")
    created = create(client, display_name="fired", pipeline_version_reference=reference, mode="ENABLE",
                     max_concurrency=10, runtime_config={"parameters": {"word": "at [[Index]]", "count": 2}},
                     trigger={"periodic_schedule": {"interval_second": 10, "start_time": start}})
    job_id = created["recurring_run_id"]
    fired = firing(services).fire_due(now * 1000).fired
    assert [f.index for f in fired] == [1, 2, 3]
    with services.db.transaction(write=False) as session:
        runs = {run.id: run for run in session.query(Run).filter(Run.job_id == job_id)}
    assert set(runs) == {f.run_id for f in fired}
    for item in fired:
        run = runs[item.run_id]
        assert json.loads(run.parameters) == [{"name": "word", "value": f"at {item.index}"},
                                              {"name": "count", "value": "2"}]
        assert run.pipeline_version_id == reference["pipeline_version_id"]
    by_job = {"resource_reference_key.type": "JOB", "resource_reference_key.id": job_id}
    assert len(ok(client.get(f"{V1}/runs", query_string=by_job))["runs"]) == 3


# -- multi-user ------------------------------------------------------------------------------------------------


def test_multi_user_namespaces(multi_user: tuple[FlaskClient, dict[str, dict[str, str]]]) -> None:
    client, headers = multi_user
    alice, bob = headers["alice"], headers["bob"]
    experiment = ok(client.post(f"{V2}/experiments", json={"display_name": "mine", "namespace": "team-a"},
                                headers=alice))["experiment_id"]
    body = {"display_name": "r", "max_concurrency": 1, "trigger": PERIODIC, "pipeline_spec": yaml.safe_load(WORKFLOW),
            "experiment_id": experiment, "namespace": "team-a"}
    created = ok(client.post(RECURRING, json=body, headers=alice))
    assert created["namespace"] == "team-a"
    v2_error(client.post(RECURRING, json=body, headers=bob), 403, 7)
    v2_error(client.post(RECURRING, json={**body, "namespace": "team-b"}, headers=alice), 403, 7)
    listed = ok(client.get(RECURRING, query_string={"namespace": "team-a"}, headers=alice))
    assert [r["recurring_run_id"] for r in listed["recurringRuns"]] == [created["recurring_run_id"]]
    v2_error(client.get(RECURRING, query_string={"namespace": "team-a"}, headers=bob), 403, 7)
    v2_error(client.get(f"{RECURRING}/{created['recurring_run_id']}", headers=bob), 403, 7)
    v2_error(client.get(RECURRING), 401, 16)
    no_experiment = "Experiment id can not be empty in multi-user mode"
    refused = v2_error(client.post(RECURRING, json={k: v for k, v in body.items() if k != "experiment_id"},
                                   headers=alice), 400, 3)
    assert refused["message"] == ("Failed to create a recurring run: Failed to create a recurring run due to invalid "
                                  f"experimentId and namespace combination: Invalid input error: {no_experiment}")
    assert refused["details"][0]["message"] == no_experiment


def test_ir_recurring_runs_fire_typed_runs(client: FlaskClient, services: Services) -> None:
    """A v2beta1 recurring run of an IR version with a past start time catches up: each fired run is an IR run
    (its runtime document typed per the spec, `[[Index]]` substituted in a string), seen with its typed
    parameters and its pipeline root through v2beta1. A v1beta1 job of the same version fires too, its text
    `[[Index]]` an integer, with the default pipeline root."""
    now = int(time.time())
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30))
    reference = ir_version(client, "fired-ir")
    created = create(client, display_name="fired-ir", pipeline_version_reference=reference, mode="ENABLE",
                     max_concurrency=10, trigger={"periodic_schedule": {"interval_second": 10, "start_time": start}},
                     runtime_config={"parameters": {"word": "at [[Index]]", "n": 3, "items": [1, "a"]},
                                     "pipeline_root": "minio://bucket/team-root"})
    assert created["runtime_config"]["pipeline_root"] == "minio://bucket/team-root"
    assert ok(client.get(f"{RECURRING}/{created['recurring_run_id']}"))["runtime_config"] == created["runtime_config"]
    listed = ok(client.get(RECURRING))["recurringRuns"]
    assert listed[0]["runtime_config"] == created["runtime_config"]
    v1 = ok(client.post(f"{V1}/jobs", json={
        "name": "fired-v1", "max_concurrency": 10, "enabled": True,
        "pipeline_spec": {"parameters": [{"name": "n", "value": "[[Index]]"}]},
        "trigger": {"periodic_schedule": {"interval_second": 10, "start_time": start}},
        "resource_references": [{"key": {"type": "PIPELINE_VERSION", "id": reference["pipeline_version_id"]},
                                 "relationship": "CREATOR"}]}))
    fired = firing(services).fire_due(now * 1000).fired
    by_job: dict[str, list[Any]] = {}
    for item in fired:
        by_job.setdefault(item.job_id, []).append(item)
    assert [f.index for f in by_job[created["recurring_run_id"]]] == [1, 2, 3]
    assert [f.index for f in by_job[v1["id"]]] == [1, 2, 3]
    with services.db.transaction(write=False) as session:
        documents = {m.run_id: json.loads(m.workflow) for m in session.query(RunManifest)}
    for item in by_job[created["recurring_run_id"]]:
        expected = {"word": f"at {item.index}", "n": 3, "items": [1, "a"]}
        document = documents[item.run_id]
        assert document["runtime_config"] == {"parameter_values": {**expected, "flag": False},
                                              "pipeline_root": "minio://bucket/team-root"}
        assert document["metadata"]["name"] == item.run_name
        run = ok(client.get(f"{V2}/runs/{item.run_id}"))
        assert run["runtime_config"] == {"parameters": expected, "pipeline_root": "minio://bucket/team-root"}
        assert run["recurring_run_id"] == created["recurring_run_id"]
        assert run["pipeline_version_reference"] == reference
        assert run["state"] == "PENDING"
    for item in by_job[v1["id"]]:
        assert documents[item.run_id]["runtime_config"] == {
            "parameter_values": {"word": "hello", "n": item.index, "flag": False, "items": []}, "pipeline_root": ""}
