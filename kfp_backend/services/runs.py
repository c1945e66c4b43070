"""Run rules: creation (validation, references, the runtime workflow), reading, listing, archive,
delete, terminate, retry, artifacts and step logs. Executing runs is the executor's business: it
learns about what happens here through the RunExecution hooks, called after each change commits.

Validation order and messages follow the real server's CreateRun (see docs/compatibility.md for the
few places where this server says more, or refuses what it cannot run).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Protocol

from sqlalchemy.orm import Session

from kfp_backend.config import Settings
from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import Caller
from kfp_backend.services.authorization import SINGLE_USER, Authorizer
from kfp_backend.services.clock import now_seconds
from kfp_backend.services.errors import Aborted, ApiError, FailedPrecondition, InvalidArgument, NotFound, error_context
from kfp_backend.services.ir_run_manifest import runtime_pipeline_run
from kfp_backend.services.list_scope import ScopedListing, scoped_query
from kfp_backend.services.listing import ListRequest, ListResult, next_page_token
from kfp_backend.services.pipeline_source import (
    PipelineSource,
    check_new,
    check_spec_texts,
    experiment_namespace,
    is_ir,
    resolve_references,
)
from kfp_backend.services.references import (
    Relationship,
    ResourceKey,
    ResourceReference,
    ResourceType,
    encode_references,
)
from kfp_backend.services.run_batches import BatchRequest, BatchStatusReader, NodeStatus, RunStatus
from kfp_backend.services.run_manifest import runtime_workflow
from kfp_backend.services.run_rows import new_manifest_row, new_run_row
from kfp_backend.services.run_status import load_object, render_workflow
from kfp_backend.services.spec_views import SpecView
from kfp_backend.services.text_fields import check_texts
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import runs_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.models import NAME_LENGTH, Run, RunManifest, RunMetric, RunNode
from kfp_backend.store.states import (
    COMPLETED_WORKFLOW_PHASES,
    ERROR,
    FAILED,
    OMITTED,
    RETRYABLE_RUN_STATUSES,
    RUNNING,
    SKIPPED,
    STORAGE_ARCHIVED,
    STORAGE_AVAILABLE,
    SUCCEEDED,
    TERMINABLE_RUN_STATUSES,
)

# Run, RunMetric and RunNode rows are part of this service's interface: api/ takes these types from here, not store/.

log = logging.getLogger(__name__)

# Node phases retry keeps as they are, and those it runs again.
_KEPT_PHASES = frozenset({SUCCEEDED, SKIPPED})
_RERUN_PHASES = frozenset({FAILED, ERROR, OMITTED})
LogReader = Callable[[str], "StepLog | None"]
# What ListRuns lists, and what its key scopes the runs to.
_RUN_LISTING = ScopedListing(
    repo.RUN_LISTABLE, authz.RUNS, "ListRuns",
    experiment=repo.scope_experiment, job=repo.scope_job,
    pipeline_version=repo.scope_pipeline_version, namespace=repo.scope_namespace,
)
# The same, with the web UI's extra sort columns (duration, pipeline_name).
_UI_RUN_LISTING = replace(_RUN_LISTING, listable=repo.UI_RUN_LISTABLE)


class StoredArtifacts(Protocol):
    """The artifact store as ReadArtifact and the node log endpoint read it (the executor's store, handed in
    by the wiring)."""

    def size(self, key: str) -> int | None: ...  # a stored artifact's length, without reading it

    def open(self, key: str) -> tuple[BinaryIO, int] | None: ...  # streamed: the object, open, and its length


class RunExecution(Protocol):
    """What the executor is told. Each hook is called after the change is committed; the database
    stays the truth (an executor that missed a call finds the same state in the rows)."""

    def run_created(self, run_id: str) -> None: ...

    def terminate_requested(self, run_id: str) -> None: ...

    def retry_requested(self, run_id: str) -> None: ...

    def run_deleted(self, run_id: str) -> None: ...


@dataclass(frozen=True)
class NewRun:
    """CreateRun's input (an api.Run)."""

    name: str
    description: str = ""
    pipeline_id: str = ""
    workflow_manifest: str = ""
    pipeline_manifest: str = ""
    # [{"name", "value"}] exactly as given; None when the request has none.
    parameters: Sequence[dict[str, str]] | None = None
    has_runtime_config: bool = False
    resource_references: Sequence[ResourceReference] = field(default_factory=tuple)
    service_account: str = ""
    # The pipeline root of a KFP v2 run (v2beta1 runtime_config.pipeline_root); "" for the default.
    pipeline_root: str = ""


@dataclass
class RunView(SpecView[Run]):
    """A run as the API shows it: a SpecView (the row and, on get/create, the manifest it was created from)
    and its metrics (report order)."""

    metrics: list[RunMetric] = field(default_factory=list)
    # The stored workflow status (phase, startedAt, finishedAt, message): on get, and on list when asked for.
    workflow_status: dict[str, Any] | None = None

    @property
    def run(self) -> Run:
        return self.row


@dataclass
class RunDetail:
    view: RunView
    # pipeline_runtime.workflow_manifest: the runtime workflow with its status.
    workflow_manifest: str
    # The run's node rows as (node id, node data) pairs, node-id order (get only).
    nodes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _run_not_found(run_id: str, operation: str) -> ApiError:
    return NotFound.resource("Run", run_id).wrap("Check run exist failed").wrap(operation)


@dataclass(frozen=True)
class StepLog:
    """A step's log (or a stored artifact), open for reading. Its reader closes `file` and reads no more than
    `size` bytes, its length when opened (the log of a running step grows on)."""

    file: BinaryIO
    size: int


def open_local_file(path: str) -> StepLog | None:
    """The file at `path`, open; None when there is none (or it cannot be read)."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
    except OSError:
        return None
    try:
        return StepLog(file, os.fstat(file.fileno()).st_size)
    except OSError:
        file.close()
        return None


class RunService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        authorizer: Authorizer = SINGLE_USER,
        execution: RunExecution | None = None,
        artifacts: StoredArtifacts | None = None,
        log_reader: LogReader | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._authz = authorizer
        self.execution = execution
        self._artifacts = artifacts
        self.log_reader: LogReader = log_reader or open_local_file
        self._batches = BatchStatusReader(db, authorizer)

    def attach_execution(self, execution: RunExecution | None) -> None:
        self.execution = execution

    # -- create ----------------------------------------------------------------------------------------

    def create(self, request: NewRun, *, caller: Caller, start: bool = True) -> RunDetail:
        """CreateRun, in one transaction. `start=False` (our extension): the run is stored held, status
        Pending, and no executor claims it until `start`."""
        with error_context("Validate create run request failed."):
            self._validate_fields(request)
        with transaction(self._db) as session:
            source, namespace = check_new(
                session, self._authz, caller, request, authz.RUNS, context="Validate create run request failed."
            )
            with error_context("Failed to create a new run."):
                detail = self._create(session, request, source, namespace, held=not start)
        run = detail.view.run
        log.info("run %s (%s) created in experiment %s%s", run.id, run.name, run.experiment_id,
                 "" if start else ", held until started")
        if start:
            self._notify("run_created", run.id)
        return detail

    def _validate_fields(self, request: NewRun) -> None:
        """Upstream's ValidateCreateRunRequest, in its order: the name, then (in create) what the run executes."""
        if not request.name:
            raise InvalidArgument("The run name is empty. Please specify a valid name.")
        if len(request.name) > NAME_LENGTH:
            raise InvalidArgument(f"Run name is too long. Support maximum length of {NAME_LENGTH} characters.")
        if len(request.service_account) > NAME_LENGTH:
            raise InvalidArgument(
                f"Service account name is too long. Support maximum length of {NAME_LENGTH} characters."
            )
        check_texts([
            ("run.name", request.name), ("run.description", request.description),
            ("run.service_account", request.service_account),
        ])
        check_spec_texts("run", request)

    def _create(
        self, session: Session, request: NewRun, source: PipelineSource, namespace: str | None, *, held: bool
    ) -> RunDetail:
        references = resolve_references(session, request.resource_references, source)
        document, spec_manifest = source.document, source.spec_manifest
        run_id = str(uuid.uuid4())
        now = now_seconds()
        parameters = [{"name": p["name"], "value": p.get("value", "")} for p in request.parameters or ()]
        with error_context("Failed to verify parameters."):
            if is_ir(document):
                workflow = runtime_pipeline_run(
                    document, run_id=run_id, run_name=request.name, now=now, parameters=parameters,
                    pipeline_root=request.pipeline_root,
                )
            else:
                workflow = runtime_workflow(
                    document,
                    run_id=run_id,
                    run_name=request.name,
                    parameters=parameters,
                    now=now,
                    service_account=request.service_account,
                    default_service_account=self._settings.default_service_account,
                )
        experiment = next(
            r for r in references if r.key.type == ResourceType.EXPERIMENT and r.relationship == Relationship.OWNER
        )
        if namespace is None:  # single-user mode: the experiment's all the same
            namespace = experiment_namespace(session, experiment.key.id)
        run = Run(**new_run_row(
            run_id=run_id,
            name=request.name,
            description=request.description,
            namespace=namespace,
            experiment_id=experiment.key.id,
            job_id=None,  # only the scheduler's runs belong to a job
            pipeline_id=request.pipeline_id,
            pipeline_name=source.pipeline_name,
            pipeline_version_id=source.version_id,
            service_account=(workflow.get("spec") or {}).get("serviceAccountName", "") or request.service_account,
            parameters=parameters,
            resource_references=encode_references(references),
            created_at=now,
            # What a client sees once the run starts (upstream fills it from the workflow's start).
            scheduled_at=now,
            held=held,
        ))
        workflow_json = json.dumps(workflow, separators=(",", ":"), ensure_ascii=False)
        manifest = RunManifest(**new_manifest_row(run_id=run_id, spec_manifest=spec_manifest, workflow=workflow_json))
        repo.add_run(session, run, manifest)
        return RunDetail(RunView(run, spec_manifest), render_workflow(workflow_json, {}, []))

    # -- read ------------------------------------------------------------------------------------------

    def get(self, run_id: str, *, caller: Caller) -> RunDetail:
        with transaction(self._db, write=False) as session:
            run = repo.get_run(session, run_id)
            if run is None:
                raise NotFound.resource("Run", run_id)
            self._authz.namespace(caller, run.namespace, authz.RUNS, authz.GET, run_id)
            manifest = repo.get_manifest(session, run_id)
            nodes = repo.list_nodes(session, run_id)
            metrics = repo.metrics_of_runs(session, [run_id]).get(run_id, [])
        spec_manifest = manifest.pipeline_spec_manifest if manifest is not None else ""
        status = load_object(manifest.workflow_status if manifest is not None else "")
        pairs = _node_pairs(nodes)
        rendered = ""
        if manifest is not None and manifest.workflow:
            rendered = render_workflow(manifest.workflow, status, pairs)
        return RunDetail(RunView(run, spec_manifest, metrics, workflow_status=status), rendered, pairs)

    def list(
        self, request: ListRequest, key: ResourceKey | None = None, *, caller: Caller, with_status: bool = False,
        ui_sorts: bool = False,
    ) -> ListResult:
        """ListRuns, in one transaction. `with_status`: each view carries its stored workflow status too
        (one more query for the page). `ui_sorts`: sort_by may also name the web UI's columns `duration` and
        `pipeline_name` (their page tokens are refused by the API's own lists)."""
        listing = _UI_RUN_LISTING if ui_sorts else _RUN_LISTING
        with transaction(self._db, write=False) as session:
            query, scope = scoped_query(session, self._authz, caller, request, key, listing)
            page = repo.list_runs(session, query, scope, listing.listable)
            run_ids = [run.id for run in page.items]
            # The page's metrics (and statuses) in one query each.
            metrics = repo.metrics_of_runs(session, run_ids)
            statuses = repo.workflow_statuses(session, run_ids) if with_status else {}
        items = [
            RunView(
                run, metrics=metrics.get(run.id, []),
                workflow_status=load_object(statuses.get(run.id)) if with_status else None,
            )
            for run in page.items
        ]
        return ListResult(items, page, next_page_token(query, page))

    # -- storage state and delete ----------------------------------------------------------------------

    def archive(self, run_id: str, *, caller: Caller) -> None:
        with transaction(self._db) as session:
            self._authz.run(session, caller, run_id, authz.ARCHIVE)
            if not repo.set_storage_state(session, run_id, STORAGE_ARCHIVED):
                raise NotFound.resource("Run", run_id).wrap("Archive run failed")

    def unarchive(self, run_id: str, *, caller: Caller) -> None:
        with transaction(self._db) as session:
            self._authz.run(session, caller, run_id, authz.UNARCHIVE)
            if not repo.set_storage_state(session, run_id, STORAGE_AVAILABLE):
                raise NotFound.resource("Run", run_id).wrap("Unarchive run failed")

    def delete(self, run_id: str, *, caller: Caller) -> None:
        """DeleteRun: stop what still runs (as deleting the Argo workflow kills its pods), then the rows."""
        with transaction(self._db) as session:
            run = repo.get_run(session, run_id, lock=True)
            if run is None:
                raise _run_not_found(run_id, "Delete run failed")
            self._authz.namespace(caller, run.namespace, authz.RUNS, authz.DELETE, run_id)
            unfinished = run.status not in COMPLETED_WORKFLOW_PHASES
            if unfinished:
                repo.mark_terminating(session, run_id, (run.status,))
        if unfinished:
            self._notify("terminate_requested", run_id)
        # A second transaction: the executor has been told to stop the run's steps before its rows go.
        with transaction(self._db) as session:
            if not repo.delete_run(session, run_id):
                raise _run_not_found(run_id, "Delete run failed")
        self._notify("run_deleted", run_id)

    # -- terminate and retry ---------------------------------------------------------------------------

    def start(self, run_id: str, *, caller: Caller) -> None:
        """Start a run created with start=false (our extension, `POST .../runs/{id}:start`). Starting a run that
        is not held (started before, created started, terminated while held) changes nothing: a retried
        start is harmless."""
        with transaction(self._db) as session:
            self._authz.run(session, caller, run_id, authz.START)
            if not repo.run_exists(session, run_id):
                raise _run_not_found(run_id, "Start run failed")
            started = repo.start_held(session, run_id, now_seconds())
        if started:
            log.info("run %s started", run_id)
            self._notify("run_created", run_id)  # to the executor it is a new run from now on

    def batch_status(self, request: BatchRequest, *, caller: Caller) -> list[RunStatus] | list[NodeStatus]:
        """Batch status (our extension): see services/run_batches.py."""
        return self._batches.read(request, caller=caller)

    def terminate(self, run_id: str, *, caller: Caller) -> None:
        with transaction(self._db) as session:
            self._authz.run(session, caller, run_id, authz.TERMINATE)
            if not repo.run_exists(session, run_id):
                raise _run_not_found(run_id, "Terminate run failed")
            # A held run is let go: an executor claims it and ends it before any step, as any terminated new run.
            if not repo.mark_terminating(session, run_id, TERMINABLE_RUN_STATUSES, release=True):
                raise InvalidArgument(f"Failed to terminate run {run_id}. Row not found.").wrap(
                    "Terminate run failed"
                )
        self._notify("terminate_requested", run_id)

    def retry(self, run_id: str, *, caller: Caller) -> None:
        """RetryRun (upstream's formulateRetryWorkflow on our rows), in one transaction.

        Succeeded/Skipped nodes stay; Failed/Error/Omitted DAG nodes are reset to Running; every other
        Failed/Error/Omitted node and every node of the exit handler is deleted, so it runs again.
        """
        with transaction(self._db) as session:
            run = repo.get_run(session, run_id, lock=True)
            if run is None:
                raise _run_not_found(run_id, "Retry run failed")
            self._authz.namespace(caller, run.namespace, authz.RUNS, authz.RETRY, run_id)
            if run.status not in RETRYABLE_RUN_STATUSES:
                message = "Workflow must be Failed/Error to retry"
                internal = f"BadRequestError: {message}: workflow cannot be retried"
                raise FailedPrecondition(message, internal=internal).wrap("Retry run failed.")
            manifest = repo.get_manifest(session, run_id)
            workflow = load_object(manifest.workflow if manifest is not None else "")
            metadata = workflow.get("metadata")
            workflow_name = metadata.get("name", "") if isinstance(metadata, dict) else ""
            on_exit_prefix = f"{workflow_name}.onExit"
            nodes = repo.list_nodes(session, run_id)
            for node in nodes:
                if node.phase not in _KEPT_PHASES and node.phase not in _RERUN_PHASES:
                    message = f"Workflow cannot be retried with node {node.node_id} in {node.phase} phase"
                    raise Aborted(message, internal=f"BadRequestError: {message}: workflow cannot be retried").wrap(
                        "Retry run failed."
                    )
            doomed: list[str] = []
            for node in nodes:
                data = load_object(node.data)
                if str(data.get("name", "")).startswith(on_exit_prefix):
                    doomed.append(node.node_id)
                elif node.phase in _KEPT_PHASES:
                    continue
                elif data.get("type") == "DAG":
                    data["phase"] = RUNNING
                    data.pop("message", None)
                    data.pop("finishedAt", None)
                    repo.update_node(
                        session, run_id, node.node_id, RUNNING,
                        json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                    )
                else:
                    doomed.append(node.node_id)
            repo.delete_nodes(session, run_id, doomed)
            status = load_object(manifest.workflow_status if manifest is not None else "")
            status["phase"] = RUNNING
            status.pop("message", None)
            status.pop("finishedAt", None)
            repo.reset_for_retry(session, run_id, json.dumps(status, separators=(",", ":"), ensure_ascii=False))
        self._notify("retry_requested", run_id)

    # -- artifacts and logs ----------------------------------------------------------------------------

    def read_artifact(self, run_id: str, node_id: str, artifact_name: str, *, caller: Caller) -> StepLog:
        """ReadArtifact: output artifact `artifact_name` of node `node_id` as stored (its .tgz), open for the
        caller to stream and close."""
        request_text = f'run_id:"{run_id}" node_id:"{node_id}" artifact_name:"{artifact_name}"'
        context = f"failed to read artifact '{request_text}'."
        node = self._authorized_node(run_id, node_id, authz.READ_ARTIFACT, caller, context)
        with error_context(context):
            key = _artifact_key(load_object(node.data), artifact_name) if node is not None else None
            size = self._artifacts.size(key) if key and self._artifacts is not None else None
            if size is not None and size > self._settings.max_artifact_read_bytes:
                # Its answer (base64 in JSON) is held whole by clients: refused rather than sent.
                raise FailedPrecondition(
                    f"artifact {artifact_name} is {size} bytes, more than ReadArtifact returns on this server "
                    f"({self._settings.max_artifact_read_bytes} bytes, KFP_BACKEND_MAX_ARTIFACT_READ_BYTES)"
                )
            opened = self._artifacts.open(key) if key and self._artifacts is not None else None
            if opened is None:
                raise NotFound.resource("artifact", f"runs/{run_id}/nodes/{node_id}/artifacts/{artifact_name}")
            return StepLog(*opened)

    def read_node_log(self, run_id: str, node_id: str, *, caller: Caller) -> StepLog:
        """The log of a step (our extension of the v1beta1 API), authorized as an artifact is; open, for
        the caller to stream and close (a log is not read into memory: it may be large)."""
        node = self._authorized_node(run_id, node_id, authz.READ_ARTIFACT, caller, "Read node log failed.")
        with error_context("Read node log failed."):
            if node is None:
                raise NotFound.resource("Node", node_id)
            data = load_object(node.data)
            path, key = data.get("_log_path"), data.get("_log_key")
            # This host's file (a running step's log grows there), else the copy stored when the step ended.
            step_log = self.log_reader(path) if isinstance(path, str) and path else None
            if step_log is None and isinstance(key, str) and key and self._artifacts is not None:
                opened = self._artifacts.open(key)
                step_log = StepLog(*opened) if opened is not None else None
            if step_log is None:
                raise NotFound(f"Node {node_id} of run {run_id} has no log.")
            return step_log

    def _authorized_node(self, run_id: str, node_id: str, verb: str, caller: Caller, context: str) -> RunNode | None:
        """The node of the run, once the caller may `verb` the run (404 under `context` for no run)."""
        with transaction(self._db, write=False) as session:
            self._authz.run(session, caller, run_id, verb)
            with error_context(context):
                if not repo.run_exists(session, run_id):
                    raise NotFound.resource("Run", run_id)
                return repo.get_node(session, run_id, node_id)

    # -- internals -------------------------------------------------------------------------------------

    def _notify(self, hook: str, run_id: str) -> None:
        if self.execution is None:
            return
        try:
            getattr(self.execution, hook)(run_id)
        except Exception:  # the change is committed; the executor finds it in the rows anyway
            log.exception("execution hook %s failed for run %s", hook, run_id)


def _node_pairs(nodes: Sequence[RunNode]) -> list[tuple[str, dict[str, Any]]]:
    return [(node.node_id, load_object(node.data)) for node in nodes]


def _artifact_key(node: dict[str, Any], artifact_name: str) -> str | None:
    outputs = node.get("outputs")
    artifacts = outputs.get("artifacts") if isinstance(outputs, dict) else None
    for artifact in artifacts if isinstance(artifacts, list) else ():
        if isinstance(artifact, dict) and artifact.get("name") == artifact_name:
            s3 = artifact.get("s3")
            key = s3.get("key") if isinstance(s3, dict) else None
            return key if isinstance(key, str) and key else None
    return None
