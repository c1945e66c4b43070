"""The authorization decision (services/authorization.py) on its own: who may act on which namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfp_backend.config import Settings
from kfp_backend.services import authorization as authz
from kfp_backend.services.auth import ANONYMOUS, Caller
from kfp_backend.services.authorization import SINGLE_USER, SYSTEM, Authorizer, multi_user_mode
from kfp_backend.services.errors import PermissionDenied
from kfp_backend.store import experiments_repo
from kfp_backend.store.db import Database
from kfp_backend.store.migrations import upgrade
from kfp_backend.store.models import Experiment
from kfp_backend.store.states import STORAGE_AVAILABLE

ALICE = Caller(user="alice", namespaces=("team-a",), token_id="t1")
BOTH = Caller(user="carol", namespaces=("team-a", "team-b"), token_id="t2")
ADMIN = Caller(user="admin", token_id="t3")
PROXIED = Caller(user="dave@example.com", via="user-header")


class _NoSession:
    def __getattr__(self, name: str) -> object:
        raise AssertionError("single-user mode reads nothing")


MULTI = Authorizer(multi_user=True)


def test_multi_user_mode_is_authentication_on() -> None:
    assert multi_user_mode(Settings(host="127.0.0.1", auth="auto")) is False
    assert multi_user_mode(Settings(host="0.0.0.0", auth="auto")) is True
    assert multi_user_mode(Settings(auth="required")) is True
    assert multi_user_mode(Settings(host="0.0.0.0", auth="disabled")) is False


@pytest.mark.parametrize("caller", [ALICE, BOTH, ADMIN, PROXIED, ANONYMOUS, SYSTEM])
def test_single_user_mode_allows_everything_and_reads_nothing(caller: Caller) -> None:
    for namespace in ("", "team-a", "team-z"):
        SINGLE_USER.namespace(caller, namespace, authz.RUNS, authz.DELETE)
    # The checks by id do not even look the resource up.
    SINGLE_USER.run(_NoSession(), caller, "any", authz.GET)  # type: ignore[arg-type]
    SINGLE_USER.pipeline(_NoSession(), caller, "any", authz.DELETE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("caller", "namespace", "allowed"),
    [(ALICE, "team-a", True), (ALICE, "team-b", False), (ALICE, "", False), (BOTH, "team-b", True),
     (BOTH, "team-c", False), (ADMIN, "team-z", True), (ADMIN, "", True), (PROXIED, "team-z", True),
     (SYSTEM, "team-z", True)],
)
def test_who_may_act_on_a_namespace(caller: Caller, namespace: str, allowed: bool) -> None:
    assert MULTI.allows(caller, namespace) is allowed
    if allowed:
        MULTI.namespace(caller, namespace, authz.EXPERIMENTS, authz.GET)
    else:
        with pytest.raises(PermissionDenied):
            MULTI.namespace(caller, namespace, authz.EXPERIMENTS, authz.GET)


def test_shared_pipelines_need_no_authorization() -> None:
    MULTI.pipeline_namespace(ALICE, "", authz.DELETE)
    with pytest.raises(PermissionDenied):
        MULTI.pipeline_namespace(ALICE, "team-b", authz.GET)


def test_the_refusal_is_upstreams() -> None:
    with pytest.raises(PermissionDenied) as refused:
        MULTI.namespace(ALICE, "team-b", authz.EXPERIMENTS, authz.GET, "training")
    error = refused.value
    assert error.grpc_code == 7
    attributes = ("&ResourceAttributes{Namespace:team-b,Verb:get,Group:pipelines.kubeflow.org,Version:v1beta1,"
                  "Resource:experiments,Subresource:,Name:training,}")
    assert error.external_message == (
        "User 'alice' is not authorized with reason: the credential is limited to namespace(s) team-a "
        f"(request: {attributes})")
    assert error.internal_message == (
        "Failed to authorize the request: Failed to authorize with API resource references: PermissionDenied: "
        f"{error.external_message}: Unauthorized access")


def test_multi_user_checks_by_id_read_the_namespace_in_the_operations_session(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'authz.db'}"
    upgrade(url)
    db = Database(url)
    try:
        with db.transaction() as session:
            experiments_repo.add_experiment(session, Experiment(
                id="e1", name="e", description="", description_key="", namespace="team-b", created_at=0,
                storage_state=STORAGE_AVAILABLE))
            MULTI.experiment(session, BOTH, "e1", authz.DELETE)
            with pytest.raises(PermissionDenied):
                MULTI.experiment(session, ALICE, "e1", authz.DELETE)
            MULTI.experiment(session, ALICE, "unknown", authz.DELETE)  # the operation answers its 404
    finally:
        db.dispose()
