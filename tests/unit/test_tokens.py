"""API tokens on every database (stored as hashes, authenticated, revoked and expired at once), expiry
parsing, and the authentication mode chosen from the settings."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from kfp_backend.config import Settings, is_loopback_host
from kfp_backend.services import auth
from kfp_backend.services.auth import ANONYMOUS, AuthService, Caller, caller_from_user_header, parse_expiry
from kfp_backend.services.errors import InvalidArgument, NotFound, Unauthenticated
from kfp_backend.store import tokens_repo
from kfp_backend.store.db import Database
from kfp_backend.store.errors import DuplicateKeyError
from kfp_backend.store.models import ApiToken

NOW = 1_800_000_000


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url, pool_size=2)
    yield database
    database.dispose()


@pytest.fixture
def service(db: Database) -> AuthService:
    return AuthService(db)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The services' clock, settable: `clock[0] = t`."""
    now = [NOW]
    monkeypatch.setattr(auth, "now_seconds", lambda: now[0])
    return now


def _unauthenticated(service: AuthService, credential: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        service.authenticate(credential)
    assert caught.value.grpc_code == 16
    return caught.value.external_message


def test_generated_tokens_are_prefixed_random_and_url_safe() -> None:
    tokens = {auth.generate_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(r"kfpb_[A-Za-z0-9_-]{43}", token), token
        assert auth.is_well_formed(token)


def test_only_the_hash_and_a_short_prefix_are_stored(db: Database, service: AuthService, clock: list[int]) -> None:
    info, secret = service.create_token("alice", ["team-b", "team-a", "team-b"], expires_at=NOW + 60)
    with db.transaction(write=False) as session:
        row = session.scalars(select(ApiToken)).one()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.display_prefix == secret[:11] == info.display_prefix
    stored = [str(getattr(row, column.key)) for column in ApiToken.__table__.columns]
    assert not any(secret in value or secret[11:20] in value for value in stored), stored
    assert (info.user, info.namespaces, info.created_at, info.expires_at, info.revoked_at) == (
        "alice", ("team-a", "team-b"), NOW, NOW + 60, None,
    )
    assert not hasattr(info, "secret") and not hasattr(info, "token_hash")


def test_a_valid_token_authenticates_as_its_user(service: AuthService) -> None:
    info, secret = service.create_token("alice", ["team-a"])
    caller = service.authenticate(secret)
    assert caller == Caller(user="alice", namespaces=("team-a",), token_id=info.id, via=auth.VIA_TOKEN)
    assert caller.allows_namespace("team-a") and not caller.allows_namespace("team-b")
    unlimited = service.authenticate(service.create_token("bob")[1])
    assert unlimited.user == "bob" and unlimited.namespaces == () and unlimited.allows_namespace("anything")


def test_unknown_and_malformed_tokens_are_refused(service: AuthService) -> None:
    _, secret = service.create_token("alice")
    assert _unauthenticated(service, auth.generate_token()) == "The bearer token is not valid."
    assert _unauthenticated(service, secret[:-1]) == "The bearer token is not valid."
    assert _unauthenticated(service, secret + "x") == "The bearer token is not valid."
    for malformed in ["", "a b", "tok,en", "x" * 513, "kfpb_\u00e9"]:
        assert _unauthenticated(service, malformed) == "The bearer token is malformed.", malformed
    with pytest.raises(Unauthenticated) as caught:
        service.authenticate("nope")
    assert caught.value.internal_message == (
        "Failed to authenticate the request: Unauthenticated: The bearer token is not valid."
    )


def test_revocation_takes_effect_at_once_everywhere(db_url: str, service: AuthService) -> None:
    info, secret = service.create_token("alice")
    other_replica = Database(db_url, pool_size=1)
    try:
        elsewhere = AuthService(other_replica)
        assert elsewhere.authenticate(secret).user == "alice"
        revoked, changed = service.revoke_token(info.id)
        assert changed and revoked.revoked_at is not None
        assert _unauthenticated(service, secret) == "The bearer token is revoked."
        assert _unauthenticated(elsewhere, secret) == "The bearer token is revoked."
        again, changed = elsewhere.revoke_token(info.id)
        assert not changed and again.revoked_at == revoked.revoked_at
    finally:
        other_replica.dispose()
    with pytest.raises(NotFound, match="Token nope not found"):
        service.revoke_token("nope")


def test_expiry_is_checked_on_every_request(service: AuthService, clock: list[int]) -> None:
    _, secret = service.create_token("alice", expires_at=NOW + 10)
    clock[0] = NOW + 9
    assert service.authenticate(secret).user == "alice"
    clock[0] = NOW + 10
    assert _unauthenticated(service, secret) == "The bearer token is expired."
    info = service.list_tokens()[0]
    assert info.state(NOW + 9) == "active" and info.state(NOW + 10) == "expired"


def test_listing_shows_every_token_without_secrets(service: AuthService, clock: list[int]) -> None:
    first, _ = service.create_token("alice")
    clock[0] += 1
    second, _ = service.create_token("bob", ["ns"], expires_at=NOW + 100)
    service.revoke_token(first.id)
    listed = service.list_tokens()
    assert [(t.id, t.user, t.state(NOW + 1)) for t in listed] == [(first.id, "alice", "revoked"),
                                                                  (second.id, "bob", "active")]


@pytest.mark.parametrize(
    ("user", "namespaces", "expires_in"),
    [("", [], None), (" alice", [], None), ("a" * 256, [], None), ("a\nb", [], None), ("a,b", [], None),
     ("alice", ["Team"], None), ("alice", ["-x"], None), ("alice", ["n" * 64], None), ("alice", [""], None),
     ("alice", [], 0), ("alice", [], -5)],
)
def test_bad_token_requests_are_refused(
    service: AuthService, clock: list[int], user: str, namespaces: list[str], expires_in: int | None
) -> None:
    with pytest.raises(InvalidArgument):
        service.create_token(user, namespaces, None if expires_in is None else NOW + expires_in)
    assert service.list_tokens() == []


def test_the_database_refuses_a_second_row_with_the_same_hash(db: Database) -> None:
    def row(token_id: str) -> ApiToken:
        return ApiToken(id=token_id, token_hash="f" * 64, display_prefix="kfpb_x", user_name="u", namespaces="[]",
                        created_at=NOW)

    with db.transaction() as session:
        tokens_repo.add_token(session, row("a"))
        with pytest.raises(DuplicateKeyError):
            tokens_repo.add_token(session, row("b"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", NOW + 90), ("15m", NOW + 900), ("12h", NOW + 43200), ("30d", NOW + 30 * 86400),
     ("1w", NOW + 7 * 86400), ("1d12h", NOW + 86400 + 43200), ("never", None), ("NEVER", None),
     ("2030-01-01", 1893456000), ("2030-01-01T00:00:00Z", 1893456000), ("2030-01-01T00:00:00", 1893456000),
     ("2030-01-01T02:00:00+02:00", 1893456000), ("2030-01-01T00:00:30.5Z", 1893456030)],
)
def test_expiry_parsing(text: str, expected: int | None) -> None:
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["0s", "0d", "10", "1y", "1d 2h", "tomorrow", "2020-01-01", "d", ""])
def test_bad_or_past_expiry(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_expiry(text, NOW)


def test_user_header_identity() -> None:
    assert caller_from_user_header(["alice@example.com"], "kubeflow-userid") == Caller(
        user="alice@example.com", via=auth.VIA_USER_HEADER
    )
    for values in (["a", "b"], ["a, b"], [""], ["  "], []):
        with pytest.raises(Unauthenticated):
            caller_from_user_header(values, "kubeflow-userid")
    assert ANONYMOUS.via == auth.VIA_NONE and ANONYMOUS.allows_namespace("any")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("LocalHost", True), ("0.0.0.0", False), ("::", False), ("", False), ("10.1.2.3", False),
     ("192.168.0.1", False), ("example.com", False), ("localhost.example.com", False), ("::ffff:10.0.0.1", False)],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_the_mode_decides_whether_authentication_is_required() -> None:
    assert Settings().auth == "auto" and Settings().auth_required is False  # the default: 127.0.0.1
    assert Settings(host="127.0.0.1", auth="auto").auth_required is False
    assert Settings(host="::1", auth="auto").auth_required is False
    assert Settings(host="localhost", auth="auto").auth_required is False
    assert Settings(host="0.0.0.0", auth="auto").auth_required is True
    assert Settings(host="::", auth="auto").auth_required is True
    assert Settings(host="10.0.0.7", auth="auto").auth_required is True
    assert Settings(host="127.0.0.1", auth="required").auth_required is True
    assert Settings(host="0.0.0.0", auth="disabled").auth_required is False
    from_env = Settings.from_env({"KFP_BACKEND_HOST": "0.0.0.0", "KFP_BACKEND_AUTH": "disabled",
                                  "KFP_BACKEND_TRUST_USER_HEADER": "true", "KFP_BACKEND_USER_HEADER": "x-user"})
    assert (from_env.auth_required, from_env.trust_user_header, from_env.user_header) == (False, True, "x-user")
    assert Settings().trust_user_header is False and Settings().user_header == "kubeflow-userid"


@pytest.mark.parametrize(("name", "raw"), [("KFP_BACKEND_AUTH", "on"), ("KFP_BACKEND_AUTH", "Required"),
                                           ("KFP_BACKEND_USER_HEADER", " "),
                                           ("KFP_BACKEND_TRUST_USER_HEADER", "maybe")])
def test_bad_auth_settings_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}: "):
        Settings.from_env({name: raw})
