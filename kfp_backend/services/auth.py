"""Authentication: API tokens (create, list, revoke, authenticate) and the `Caller` a request acts as.

Authorization is services/authorization.py: one check that services call with the caller the HTTP layer
authenticated (`flask.g.caller`, passed down explicitly: services never see a request). `Caller` carries
what it needs: the user, the namespaces the credential is limited to, and how the caller was identified.

Tokens are `kfpb_` + 43 URL-safe characters (`secrets.token_urlsafe(32)`: 256 random bits). Only the
SHA-256 of a token is stored. A token is a random high-entropy secret, not a password a person chose,
so a fast hash is enough: nobody can search 2^256 candidates, and a slow KDF (bcrypt, scrypt) would
only cost time on every request. The hash is looked up through a unique index, then compared in
constant time. Revocation and expiry are read from the database on every request (nothing cached), so a
revoked token stops working at once, on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from kfp_backend.services.clock import now_seconds
from kfp_backend.services.errors import InvalidArgument, NotFound, Unauthenticated
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import tokens_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.models import NAME_LENGTH, NAMESPACE_LENGTH, ApiToken

TOKEN_PREFIX = "kfpb_"
# What listings show of a token: the prefix and 6 of its 43 random characters (the rest, over 200
# random bits, stays secret).
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6
# Longer credentials are refused before hashing (a token is 48 characters).
MAX_TOKEN_LENGTH = 512
# RFC 6750 b64token; anything else in a bearer credential is malformed.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

# How a caller was identified.
VIA_TOKEN = "token"
VIA_USER_HEADER = "user-header"
VIA_NONE = "none"  # authentication is off


@dataclass(frozen=True)
class Caller:
    """Who a request acts as."""

    user: str
    # The namespaces the credential is limited to; empty: not limited by the credential.
    namespaces: tuple[str, ...] = ()
    token_id: str | None = None
    via: str = VIA_TOKEN

    def allows_namespace(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces


# The caller of every request when authentication is off.
ANONYMOUS = Caller(user="", via=VIA_NONE)


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: str
    user: str
    namespaces: tuple[str, ...]
    display_prefix: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None

    def state(self, now: int) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_well_formed(credential: str) -> bool:
    """Whether `credential` is syntactically a bearer token (RFC 6750), whether or not ours."""
    return 0 < len(credential) <= MAX_TOKEN_LENGTH and _B64TOKEN.fullmatch(credential) is not None


def parse_expiry(text: str, now: int) -> int | None:
    """`--expires`: a duration (`90m`, `12h`, `30d`, `1w`, `1d12h`, `3600s`), an ISO 8601 date or time
    (UTC unless it names an offset), or `never`. Returns UTC seconds, or None for never."""
    value = text.strip()
    if value.lower() == "never":
        return None
    if _DURATION.fullmatch(value):
        seconds = sum(int(n) * _DURATION_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))
        if seconds <= 0:
            raise InvalidArgument(f"Expiry {text!r} is not in the future.")
        return now + seconds
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise InvalidArgument(
            f"Expiry {text!r} is neither a duration (e.g. 30d, 12h, 1d12h) nor an ISO 8601 date or time."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    expires_at = int(moment.timestamp())
    if expires_at <= now:
        raise InvalidArgument(f"Expiry {text!r} is not in the future.")
    return expires_at


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        user=row.user_name,
        namespaces=tuple(json.loads(row.namespaces)),
        display_prefix=row.display_prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def _validate_user(user: str) -> None:
    if not user or user != user.strip():
        raise InvalidArgument("User name is empty or has leading or trailing spaces.")
    if len(user) > NAME_LENGTH:
        raise InvalidArgument(f"User name is too long. Support maximum length of {NAME_LENGTH} characters.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == "," for c in user):
        raise InvalidArgument("User name contains a control character or a comma.")


def validate_namespace(namespace: str) -> None:
    """A Kubernetes namespace name (a DNS label), as tokens name them and multi-user mode stores them."""
    if len(namespace) > NAMESPACE_LENGTH or not _NAMESPACE.fullmatch(namespace):
        raise InvalidArgument(
            f"Namespace {namespace!r} is not a valid namespace name (lower-case letters, digits and '-', "
            f"at most {NAMESPACE_LENGTH} characters, starting and ending with a letter or digit)."
        )


class AuthService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create_token(
        self, user: str, namespaces: tuple[str, ...] | list[str] = (), expires_at: int | None = None
    ) -> tuple[TokenInfo, str]:
        """A new token for `user`; returns it with its secret, which is not stored and never shown again."""
        _validate_user(user)
        for namespace in namespaces:
            validate_namespace(namespace)
        now = now_seconds()
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("The token's expiry is not in the future.")
        secret = generate_token()
        row = ApiToken(
            id=str(uuid.uuid4()),
            token_hash=hash_token(secret),
            display_prefix=secret[:DISPLAY_PREFIX_LENGTH],
            user_name=user,
            namespaces=json.dumps(sorted(set(namespaces))),
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
        )
        with transaction(self._db) as session:
            repo.add_token(session, row)
        return _info(row), secret

    def list_tokens(self) -> list[TokenInfo]:
        with transaction(self._db, write=False) as session:
            return [_info(row) for row in repo.list_tokens(session)]

    def revoke_token(self, token_id: str) -> tuple[TokenInfo, bool]:
        """Revoke a token; returns it and whether this call revoked it (False: it already was)."""
        with transaction(self._db) as session:
            revoked = repo.revoke_token(session, token_id, now_seconds())
            row = repo.get_token(session, token_id)
            if row is None:
                raise NotFound.resource("Token", token_id).wrap("Revoke token failed.")
            return _info(row), revoked

    def authenticate(self, credential: str) -> Caller:
        """The caller a bearer token stands for; Unauthenticated when it is unknown, revoked or expired."""
        if not is_well_formed(credential):
            raise unauthenticated("The bearer token is malformed.")
        presented = hash_token(credential)
        with transaction(self._db, write=False) as session:
            row = repo.find_by_hash(session, presented)
        # The lookup went through the index; compare in constant time all the same.
        if row is None or not hmac.compare_digest(row.token_hash, presented):
            raise unauthenticated("The bearer token is not valid.")
        info = _info(row)
        state = info.state(now_seconds())
        if state != "active":
            raise unauthenticated(f"The bearer token is {state}.")
        return Caller(user=info.user, namespaces=info.namespaces, token_id=info.id, via=VIA_TOKEN)

    def caller_of_token(self, token_id: str) -> Caller:
        """The caller of a token already presented once (the web UI's session keeps only its id): read
        again on every request, so a revoked or expired token ends the session at once, on every replica."""
        with transaction(self._db, write=False) as session:
            row = repo.get_token(session, token_id)
        if row is None:
            raise unauthenticated("The session's token no longer exists.")
        info = _info(row)
        state = info.state(now_seconds())
        if state != "active":
            raise unauthenticated(f"The session's token is {state}.")
        return Caller(user=info.user, namespaces=info.namespaces, token_id=info.id, via=VIA_TOKEN)


def caller_from_user_header(values: list[str], header: str) -> Caller:
    """The caller a trusted proxy named in `header` (which must appear exactly once, non-empty)."""
    if len(values) != 1 or "," in values[0]:
        raise unauthenticated(f"Header '{header}' must appear exactly once.")
    user = values[0].strip()
    if not user:
        raise unauthenticated("Request header error: user identity is empty.")
    return Caller(user=user, via=VIA_USER_HEADER)


def unauthenticated(reason: str) -> Unauthenticated:
    return Unauthenticated(reason).wrap("Failed to authenticate the request")
