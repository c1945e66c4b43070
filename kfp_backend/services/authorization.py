"""Authorization: the one place that decides whether a caller may act on a namespace's resources.

Multi-user mode (upstream's `MULTIUSER=true`) is on exactly when authentication is; single-user mode
allows everything and reads nothing. Services call it with the `Caller` the HTTP layer authenticated, or
`SYSTEM` for in-process callers. The rules (who may act where, shared pipelines, upstream's 403) are in
docs/auth.md ("Namespaces" and "For developers").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy.orm import Session

from kfp_backend.config import Settings
from kfp_backend.services.auth import Caller
from kfp_backend.services.errors import NamespaceDenied, PermissionDenied
from kfp_backend.store import experiments_repo, jobs_repo, pipelines_repo, runs_repo

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
START = "start"  # our extension: start a run created with start=false
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
    denied = NamespaceDenied(message, leaf=f"PermissionDenied: {message}: Unauthorized access", namespace=namespace,
                             resource=resource, verb=verb)
    return denied.wrap("Failed to authorize with API resource references").wrap("Failed to authorize the request")


class Authorizer:
    """Decides every access in multi-user mode; allows everything in single-user mode."""

    def __init__(self, *, multi_user: bool = False) -> None:
        self.multi_user = multi_user

    @classmethod
    def from_settings(cls, settings: Settings) -> Authorizer:
        return cls(multi_user=multi_user_mode(settings))

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

    # -- by id: the resource's namespace is looked up in the operation's own session -------------------

    def experiment(self, session: Session, caller: Caller, experiment_id: str, verb: str) -> None:
        load = lambda: experiments_repo.get_experiment(session, experiment_id)  # noqa: E731
        self._row(caller, EXPERIMENTS, verb, experiment_id, load)

    def run(self, session: Session, caller: Caller, run_id: str, verb: str) -> None:
        self._row(caller, RUNS, verb, run_id, lambda: runs_repo.get_run(session, run_id))

    def job(self, session: Session, caller: Caller, job_id: str, verb: str) -> None:
        self._row(caller, JOBS, verb, job_id, lambda: jobs_repo.get_job(session, job_id))

    def pipeline(self, session: Session, caller: Caller, pipeline_id: str, verb: str) -> None:
        self._row(caller, PIPELINES, verb, pipeline_id, lambda: pipelines_repo.get_pipeline(session, pipeline_id))

    def version(self, session: Session, caller: Caller, version_id: str, verb: str) -> None:
        """A pipeline version is in its pipeline's namespace."""

        def pipeline_of_version() -> HasNamespace | None:
            version = pipelines_repo.get_version(session, version_id)
            return pipelines_repo.get_pipeline(session, version.pipeline_id) if version is not None else None

        self._row(caller, PIPELINES, verb, version_id, pipeline_of_version)

    def _row(
        self, caller: Caller, resource: str, verb: str, name: str, load: Callable[[], HasNamespace | None]
    ) -> None:
        """Multi-user mode: authorize on the namespace of the row `load` reads; no row (an unknown id) passes,
        so that the operation answers its usual 404. Single-user mode reads nothing."""
        if not self.multi_user:
            return
        row = load()
        if row is None:
            return
        if resource == PIPELINES:
            self.pipeline_namespace(caller, row.namespace, verb, name)
        else:
            self.namespace(caller, row.namespace, resource, verb, name)


class HasNamespace(Protocol):
    namespace: str


# The authorizer of services built without one (single-user: everything allowed, nothing read).
SINGLE_USER = Authorizer()
