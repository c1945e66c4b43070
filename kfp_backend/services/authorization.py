"""Authorization: the one place that decides whether a caller may act on a namespace's resources.

Multi-user mode (upstream's `MULTIUSER=true`) is on exactly when authentication is; single-user mode
allows everything and reads nothing. Services call it with the `Caller` the HTTP layer authenticated, or
`SYSTEM` for in-process callers. The rules (who may act where, shared pipelines, upstream's 403) are in
docs/auth.md ("Namespaces" and "For developers").
"""

from __future__ import annotations

from kfp_backend.config import Settings
from kfp_backend.services.auth import Caller
from kfp_backend.services.errors import PermissionDenied
from kfp_backend.store import experiments_repo, jobs_repo, pipelines_repo, runs_repo
from kfp_backend.store.db import Database

# The `resource` of upstream's SubjectAccessReview (group pipelines.kubeflow.org, version v1beta1).
EXPERIMENTS = "experiments"
RUNS = "runs"
JOBS = "jobs"
PIPELINES = "pipelines"

# Its verbs.
CREATE = "create"
GET = "get"
LIST = "list"
DELETE = "delete"
UPDATE = "update"
ARCHIVE = "archive"
UNARCHIVE = "unarchive"
ENABLE = "enable"
DISABLE = "disable"
TERMINATE = "terminate"
RETRY = "retry"
REPORT_METRICS = "reportMetrics"
READ_ARTIFACT = "readArtifact"

SHARED_NAMESPACE = ""
VIA_SYSTEM = "system"
# What the scheduler, the executor and other in-process callers act as.
SYSTEM = Caller(user="kfp-backend", via=VIA_SYSTEM)

GROUP = "pipelines.kubeflow.org"
VERSION = "v1beta1"


def multi_user_mode(settings: Settings) -> bool:
    """Multi-user mode is on exactly when authentication is required."""
    return settings.auth_required


def permission_denied(caller: Caller, namespace: str, resource: str, verb: str, name: str = "") -> PermissionDenied:
    """Upstream's refusal: 403, `User '<user>' is not authorized with reason: <reason> (request: <attributes>)`."""
    if caller.namespaces:
        reason = f"the credential is limited to namespace(s) {', '.join(caller.namespaces)}"
    else:
        reason = "the credential gives no access to this namespace"
    attributes = (
        f"&ResourceAttributes{{Namespace:{namespace},Verb:{verb},Group:{GROUP},Version:{VERSION},"
        f"Resource:{resource},Subresource:,Name:{name},}}"
    )
    message = f"User '{caller.user}' is not authorized with reason: {reason} (request: {attributes})"
    return (
        PermissionDenied(message, internal=f"PermissionDenied: {message}: Unauthorized access")
        .wrap("Failed to authorize with API resource references")
        .wrap("Failed to authorize the request")
    )


class Authorizer:
    """Decides every access in multi-user mode; allows everything in single-user mode."""

    def __init__(self, db: Database | None = None, *, multi_user: bool = False) -> None:
        if multi_user and db is None:
            raise ValueError("multi-user authorization needs the database")
        self._db = db
        self.multi_user = multi_user

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> Authorizer:
        return cls(db, multi_user=multi_user_mode(settings))

    # -- the decision ----------------------------------------------------------------------------------

    def allows(self, caller: Caller, namespace: str) -> bool:
        if not self.multi_user or caller.via == VIA_SYSTEM:
            return True
        return caller.allows_namespace(namespace)

    def namespace(self, caller: Caller, namespace: str, resource: str, verb: str, name: str = "") -> None:
        """PermissionDenied unless `caller` may `verb` `resource` in `namespace`."""
        if not self.allows(caller, namespace):
            raise permission_denied(caller, namespace, resource, verb, name)

    def pipeline_namespace(self, caller: Caller, namespace: str, verb: str, name: str = "") -> None:
        """As `namespace` for pipelines, where the shared namespace needs no authorization (upstream's rule)."""
        if namespace != SHARED_NAMESPACE:
            self.namespace(caller, namespace, PIPELINES, verb, name)

    # -- by id: the resource's namespace is looked up ---------------------------------------------------

    def experiment(self, caller: Caller, experiment_id: str, verb: str) -> None:
        if not self.multi_user:
            return
        with self._transaction() as session:
            experiment = experiments_repo.get_experiment(session, experiment_id)
        if experiment is not None:
            self.namespace(caller, experiment.namespace, EXPERIMENTS, verb, experiment_id)

    def run(self, caller: Caller, run_id: str, verb: str) -> None:
        if not self.multi_user:
            return
        with self._transaction() as session:
            run = runs_repo.get_run(session, run_id)
        if run is not None:
            self.namespace(caller, run.namespace, RUNS, verb, run_id)

    def job(self, caller: Caller, job_id: str, verb: str) -> None:
        if not self.multi_user:
            return
        with self._transaction() as session:
            job = jobs_repo.get_job(session, job_id)
        if job is not None:
            self.namespace(caller, job.namespace, JOBS, verb, job_id)

    def pipeline(self, caller: Caller, pipeline_id: str, verb: str) -> None:
        if not self.multi_user:
            return
        with self._transaction() as session:
            pipeline = pipelines_repo.get_pipeline(session, pipeline_id)
        if pipeline is not None:
            self.pipeline_namespace(caller, pipeline.namespace, verb, pipeline_id)

    def version(self, caller: Caller, version_id: str, verb: str) -> None:
        """A pipeline version is in its pipeline's namespace."""
        if not self.multi_user:
            return
        with self._transaction() as session:
            version = pipelines_repo.get_version(session, version_id)
            pipeline = pipelines_repo.get_pipeline(session, version.pipeline_id) if version is not None else None
        if pipeline is not None:
            self.pipeline_namespace(caller, pipeline.namespace, verb, version_id)

    def _transaction(self):  # type: ignore[no-untyped-def]
        assert self._db is not None
        return self._db.transaction(write=False)


# The authorizer of services built without one (single-user: everything allowed, nothing read).
SINGLE_USER = Authorizer()
