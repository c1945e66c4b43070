"""Job (recurring run) rules: creation (the same pipeline-spec and reference rules as runs, plus the
schedule's), reading, listing, delete, enable and disable. Firing jobs is the scheduler's business: it
reads the rows written here, and learns about changes at once through the JobScheduling hook, called
after each change commits.

Validation order and messages follow the real server's CreateJob (see docs/compatibility.md for the
few places where this server says more).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy.orm import Session

from kfp_backend.config import Settings
from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller
from kfp_backend.services.authorization import SINGLE_USER, Authorizer
from kfp_backend.services.clock import now_seconds
from kfp_backend.services.errors import InvalidArgument, NotFound, error_context
from kfp_backend.services.ir_run_manifest import check_job_parameters
from kfp_backend.services.list_scope import ScopedListing, scoped_query
from kfp_backend.services.listing import ListRequest, ListResult, next_page_token
from kfp_backend.services.pipeline_source import (
    PipelineSource,
    check_new,
    check_parameters,
    check_spec_texts,
    experiment_namespace,
    is_ir,
    owner_experiment,
    resolve_references,
)
from kfp_backend.services.references import (
    ResourceKey,
    ResourceReference,
    encode_references,
)
from kfp_backend.services.run_manifest import DEFAULT_SERVICE_ACCOUNT
from kfp_backend.services.spec_views import SpecView
from kfp_backend.services.text_fields import check_texts
from kfp_backend.services.typed_parameters import TYPED_KEY, parameter_values, stored_parameters
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import jobs_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.models import NAME_LENGTH, Job, JobManifest, description_key
from kfp_backend.store.states import JOB_NO_STATUS

log = logging.getLogger(__name__)

TRIGGER_CRON = "cron"
TRIGGER_PERIODIC = "periodic"
TRIGGER_NONE = ""  # neither schedule: upstream fires such a job once, at creation
MIN_CONCURRENCY, MAX_CONCURRENCY = 1, 10
# Why a cron schedule is refused (robfig's message), or None when it parses: the scheduler's parser
# (scheduler.cron.cron_error), handed in by the wiring so that services import nothing of the scheduler.
CronCheck = Callable[[str], "str | None"]
# What ListJobs lists, and what its key scopes the jobs to.
_JOB_LISTING = ScopedListing(
    repo.JOB_LISTABLE, authz.JOBS, "ListJobs",
    experiment=repo.scope_experiment,
    job=lambda _job_id: repo.scope_nothing(),  # no job refers to a job
    pipeline_version=repo.scope_pipeline_version, namespace=repo.scope_namespace,
)


class JobScheduling(Protocol):
    """What the scheduler is told. Called after the change is committed; the database stays the truth
    (a scheduler that missed a call finds the same state in the rows)."""

    def job_changed(self, job_id: str) -> None: ...


@dataclass(frozen=True)
class NewTrigger:
    """api.Trigger: `kind` says which schedule was given (cron_schedule, periodic_schedule or neither)."""

    kind: str = TRIGGER_NONE
    cron: str = ""
    interval_seconds: int = 0
    start_time: int | None = None  # Unix seconds; None: not set
    end_time: int | None = None


@dataclass(frozen=True)
class NewJob:
    """CreateJob's input (an api.Job)."""

    name: str = ""
    description: str = ""
    pipeline_id: str = ""
    workflow_manifest: str = ""
    pipeline_manifest: str = ""
    # [{"name", "value"}] exactly as given; None when the request has none.
    parameters: Sequence[dict[str, str]] | None = None
    # v2beta1's typed runtime_config.parameters (instead of `parameters`); None when not given.
    parameter_values: dict[str, Any] | None = None
    has_runtime_config: bool = False
    # v2beta1's runtime_config.pipeline_root, for the runs of a KFP v2 (IR) spec; "" for the default.
    pipeline_root: str = ""
    resource_references: Sequence[ResourceReference] = field(default_factory=tuple)
    service_account: str = ""
    max_concurrency: int = 0
    trigger: NewTrigger = field(default_factory=NewTrigger)
    enabled: bool = False
    no_catchup: bool = False


@dataclass
class JobView(SpecView[Job]):
    """A job as the API shows it: a SpecView (the row and, on get/create, the manifest it runs)."""

    @property
    def job(self) -> Job:
        return self.row


def _format_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        cron_check: CronCheck,
        authorizer: Authorizer = SINGLE_USER,
        scheduling: JobScheduling | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._cron_check = cron_check
        self._authz = authorizer
        self.scheduling = scheduling

    @property
    def authorizer(self) -> Authorizer:
        return self._authz

    def attach_scheduling(self, scheduling: JobScheduling | None) -> None:
        self.scheduling = scheduling

    # -- create ----------------------------------------------------------------------------------------

    def create(self, request: NewJob, *, caller: Caller) -> JobView:
        """CreateJob, in one transaction."""
        if request.parameter_values is not None:
            # Stored with their text form: every check of v1's parameters applies to it.
            request = dataclasses.replace(
                request, parameters=stored_parameters(request.parameter_values), parameter_values=None
            )
        with error_context("Validate create job request failed."):
            self._validate_fields(request)
        with transaction(self._db) as session:
            source, namespace = check_new(
                session, self._authz, caller, request, authz.JOBS, context="Validate create job request failed.",
                check_more=lambda: self._validate_schedule(request),
            )
            with error_context("Failed to create a new job."):
                view = self._create(session, request, source, namespace)
        self._notify(view.job.id)
        return view

    def _validate_fields(self, request: NewJob) -> None:
        """Upstream's validateCreateJobRequest, in its order (the name may be empty); what is checked
        before the pipeline spec (in create) guards the columns."""
        if len(request.name) > NAME_LENGTH:
            raise InvalidArgument(f"Job name is too long. Support maximum length of {NAME_LENGTH} characters.")
        if len(request.service_account) > NAME_LENGTH:
            raise InvalidArgument(
                f"Service account name is too long. Support maximum length of {NAME_LENGTH} characters."
            )
        check_texts([
            ("job.name", request.name), ("job.description", request.description),
            ("job.service_account", request.service_account),
            ("job.trigger.cron_schedule.cron", request.trigger.cron),
            ("job.runtime_config.pipeline_root", request.pipeline_root),
        ])
        check_spec_texts("job", request)

    def _validate_schedule(self, request: NewJob) -> None:
        """After the pipeline spec, as upstream; the end time check is ours."""
        if not MIN_CONCURRENCY <= request.max_concurrency <= MAX_CONCURRENCY:
            raise InvalidArgument(
                f"The max concurrency of the job is out of range. Support {MIN_CONCURRENCY}-{MAX_CONCURRENCY}. "
                f"Received {request.max_concurrency}."
            )
        trigger = request.trigger
        if trigger.kind == TRIGGER_CRON:
            refusal = self._cron_check(trigger.cron)
            if refusal is not None:
                raise InvalidArgument(
                    "Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). "
                    f"Error: {refusal}"
                )
            if len(trigger.cron) > NAME_LENGTH:
                raise InvalidArgument(
                    f"Schedule cron is too long. Support maximum length of {NAME_LENGTH} characters."
                )
        if trigger.kind == TRIGGER_PERIODIC and trigger.interval_seconds < 1:
            raise InvalidArgument(
                f"Found invalid period schedule interval {trigger.interval_seconds}. "
                "Set at interval to least 1 second."
            )
        start, end = trigger.start_time, trigger.end_time
        if trigger.kind != TRIGGER_NONE and start and end and end < start:
            raise InvalidArgument(
                f"The end time of the schedule ({_format_time(end)}) is before its start time "
                f"({_format_time(start)})."
            )

    def _create(self, session: Session, request: NewJob, source: PipelineSource, namespace: str | None) -> JobView:
        references = resolve_references(session, request.resource_references, source)
        parameters = [_stored_entry(p) for p in request.parameters or ()]
        now = now_seconds()
        with error_context("Failed to verify parameters."):
            if is_ir(source.document):  # typed as its runs will type them (v2beta1 values, or v1's text)
                check_job_parameters(source.document, parameter_values(parameters), now=now)
            else:
                check_parameters(source.document, parameters)
        if request.pipeline_root and not is_ir(source.document):
            raise InvalidArgument("runtime_config.pipeline_root applies to KFP v2 pipeline specs, not Argo workflows.")
        experiment = owner_experiment(references)
        assert experiment is not None  # resolve_references adds the Default experiment
        if namespace is None:  # single-user mode: the experiment's all the same
            namespace = experiment_namespace(session, experiment.key.id)
        trigger = request.trigger
        scheduled = trigger.kind != TRIGGER_NONE
        job = Job(
            id=str(uuid.uuid4()),
            name=request.name,
            description=request.description,
            description_key=description_key(request.description),
            namespace=namespace,
            experiment_id=experiment.key.id,
            pipeline_id=request.pipeline_id,
            pipeline_name=source.pipeline_name,
            pipeline_version_id=source.version_id,
            service_account=_service_account(
                source.document, request.service_account, self._settings.default_service_account
            ),
            parameters=json.dumps(parameters, separators=(",", ":"), ensure_ascii=False),
            resource_references=encode_references(references),
            max_concurrency=request.max_concurrency,
            no_catchup=request.no_catchup,
            enabled=request.enabled,
            trigger_kind=trigger.kind,
            cron=trigger.cron if trigger.kind == TRIGGER_CRON else "",
            interval_seconds=trigger.interval_seconds if trigger.kind == TRIGGER_PERIODIC else 0,
            start_time=(trigger.start_time or 0) if scheduled else 0,
            end_time=(trigger.end_time or 0) if scheduled else 0,
            created_at=now,
            updated_at=now,
            status=JOB_NO_STATUS,
            last_scheduled_at=0,
            last_index=0,
            next_fire_at=repo.DUE_NOW,
            pipeline_root=request.pipeline_root or None,
        )
        manifest = JobManifest(job_id=job.id, pipeline_spec_manifest=source.spec_manifest)
        repo.add_job(session, job, manifest)
        return JobView(job, source.spec_manifest)

    # -- read ------------------------------------------------------------------------------------------

    def get(self, job_id: str, *, caller: Caller) -> JobView:
        with transaction(self._db, write=False) as session:
            job = repo.get_job(session, job_id)
            if job is None:
                raise NotFound.resource("Job", job_id)
            self._authz.namespace(caller, job.namespace, authz.JOBS, authz.GET, job_id)
            manifest = repo.get_manifest(session, job_id)
        return JobView(job, manifest.pipeline_spec_manifest if manifest is not None else "")

    def list(self, request: ListRequest, key: ResourceKey | None = None, *, caller: Caller) -> ListResult:
        """ListJobs, in one transaction."""
        with transaction(self._db, write=False) as session:
            query, scope = scoped_query(session, self._authz, caller, request, key, _JOB_LISTING)
            page = repo.list_jobs(session, query, scope)
        return ListResult([JobView(job) for job in page.items], page, next_page_token(query, page))

    # -- delete, enable, disable -----------------------------------------------------------------------

    def delete(self, job_id: str, *, caller: Caller) -> None:
        """DeleteJob: the job and its manifest; the runs it fired stay."""
        with transaction(self._db) as session:
            self._authz.job(session, caller, job_id, authz.DELETE)
            if not repo.delete_job(session, job_id):
                raise NotFound.resource("Job", job_id).wrap("Delete job failed")
        self._notify(job_id)

    def enable(self, job_id: str, *, caller: Caller) -> None:
        self._set_enabled(job_id, True, authz.ENABLE, caller)

    def disable(self, job_id: str, *, caller: Caller) -> None:
        self._set_enabled(job_id, False, authz.DISABLE, caller)

    def _set_enabled(self, job_id: str, enabled: bool, verb: str, caller: Caller) -> None:
        """updated_at moves only when `enabled` changes; a repeated call is a no-op that still succeeds."""
        with transaction(self._db) as session:
            self._authz.job(session, caller, job_id, verb)
            changed = repo.set_enabled(session, job_id, enabled, now_seconds())
            if not changed and not repo.job_exists(session, job_id):
                error = NotFound.resource("Job", job_id)
                if enabled:
                    error.wrap("Check job exist failed")
                raise error.wrap("Enable/Disable job failed")
        if changed:
            self._notify(job_id)

    # -- internals -------------------------------------------------------------------------------------

    def _notify(self, job_id: str) -> None:
        if self.scheduling is None:
            return
        try:
            self.scheduling.job_changed(job_id)
        except Exception:  # the change is committed; the scheduler finds it in the rows anyway
            log.exception("scheduling hook failed for job %s", job_id)


def _stored_entry(parameter: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter as stored: name and text value, and the typed value when v2beta1 sent one."""
    entry = {"name": parameter["name"], "value": parameter.get("value", "")}
    if TYPED_KEY in parameter:
        entry[TYPED_KEY] = parameter[TYPED_KEY]
    return entry


def _service_account(document: dict[str, Any], requested: str, default: str) -> str:
    """As for runs: the request's, else the workflow's own unless it is empty or the SDK's default."""
    if requested:
        return requested
    spec = document.get("spec")
    own = spec.get("serviceAccountName") if isinstance(spec, dict) else None
    if not isinstance(own, str) or not own or own == DEFAULT_SERVICE_ACCOUNT:
        return default
    return own
