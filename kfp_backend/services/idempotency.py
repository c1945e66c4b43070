"""Idempotent creation: the rules of the `Idempotency-Key` request header (the IETF HTTPAPI draft's).

A key belongs to its caller: the user and the namespaces its credential is limited to (in single-user mode
there is one caller). The first request naming a key claims it by inserting the key's row (a primary key, not
a read then a write, so of concurrent requests exactly one wins, on every database and every API replica),
runs, and records its response when that is a success (2xx). Then, for 24 hours:

* the same key with the same request (its fingerprint, computed by the HTTP layer) answers that response
  again, and nothing is created;
* the same key with another request is refused (`IdempotencyKeyReused`, HTTP 422);
* the same key while the first request is still running is refused (`IdempotencyKeyInUse`, HTTP 409).

A request that fails (4xx or 5xx) releases its key: failures are not replayed, so a retry after a transient
failure, or after correcting the request, runs again. A claim whose request never finished (its process died)
is taken over by the next request after `IN_FLIGHT_SECONDS`. Expired keys are purged as requests with a key
come in, at most once per `PURGE_EVERY_SECONDS` per process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass

from kfp_backend.services.auth import Caller
from kfp_backend.services.clock import Clock, now_seconds
from kfp_backend.services.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidArgument
from kfp_backend.services.unit_of_work import transaction
from kfp_backend.store import idempotency_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.errors import DuplicateKeyError, WriteConflictError
from kfp_backend.store.models import IDEMPOTENCY_KEY_LENGTH, NAME_LENGTH

log = logging.getLogger(__name__)

KEY_TTL_SECONDS = 24 * 3600
# Longer than any create request takes (a pipeline URL's download gives up after its timeout, 30 s by default).
IN_FLIGHT_SECONDS = 600
PURGE_EVERY_SECONDS = 600
_KEY = re.compile(rf"[\x20-\x7e]{{1,{IDEMPOTENCY_KEY_LENGTH}}}")
# Claim attempts before giving up with 409: each lost attempt means another request changed the row meanwhile.
_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    """This request holds the key: run it, then `finish` (or `abandon`) the claim."""

    key_id: str
    claim_id: str


@dataclass(frozen=True)
class Replay:
    """The key's first request succeeded: answer its response again."""

    status: int
    content_type: str
    body: bytes


def check_key(key: str) -> None:
    if _KEY.fullmatch(key) is None:
        raise InvalidArgument(
            f"Invalid Idempotency-Key header: it must be 1 to {IDEMPOTENCY_KEY_LENGTH} printable ASCII characters."
        )


def key_id(caller: Caller, key: str) -> str:
    """The key's row id: the key within its caller (user and credential's namespaces), hashed."""
    identity = json.dumps([caller.user, sorted(caller.namespaces), key], separators=(",", ":"))
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


class IdempotencyService:
    def __init__(self, db: Database, clock: Clock = now_seconds) -> None:
        self._db = db
        self._clock = clock
        self._next_purge = 0

    def begin(self, key: str, fingerprint: str, *, caller: Caller) -> Claim | Replay:
        """Claim `key` for a request of `fingerprint`, or the response to answer again; raises InvalidArgument
        (a malformed key), IdempotencyKeyReused or IdempotencyKeyInUse."""
        check_key(key)
        now = self._clock()
        self._purge_now_and_then(now)
        new = repo.NewClaim(
            id=key_id(caller, key), caller=caller.user[:NAME_LENGTH], key=key, fingerprint=fingerprint,
            claim_id=str(uuid.uuid4()), created_at=now, expires_at=now + KEY_TTL_SECONDS,
        )
        for _ in range(_ATTEMPTS):
            if self._claim(new):
                return Claim(new.id, new.claim_id)
            # Taken: decide in a transaction of its own (see repo.claim).
            with transaction(self._db) as session:
                row = repo.find(session, new.id)
                if row is None:
                    continue  # released since: claim again
                abandoned = row.state == repo.PENDING and row.created_at + IN_FLIGHT_SECONDS <= now
                if row.expires_at <= now or abandoned:
                    if repo.take_over(session, new, row.claim_id):
                        return Claim(new.id, new.claim_id)
                    continue  # another request took it over first
                if row.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {key!r} was first sent with another request (method, path, query or "
                        "body); send a new key for a new request."
                    )
                if row.state == repo.PENDING:
                    raise _in_use(key)
                return Replay(row.response_status or 200, row.response_type or "application/json",
                              row.response_body or b"")
        raise _in_use(key)

    def _claim(self, new: repo.NewClaim) -> bool:
        try:
            with transaction(self._db) as session:
                repo.claim(session, new)
        except (DuplicateKeyError, WriteConflictError):
            return False
        return True

    def finish(self, claim: Claim, status: int, content_type: str, body: bytes) -> None:
        """The claimed request answered: keep a success (2xx) to answer again, release the key otherwise. A
        failure to record is logged, not raised: the request's work is done and its answer must still go out."""
        if not 200 <= status < 300:
            self.abandon(claim)
            return
        try:
            with transaction(self._db) as session:
                recorded = repo.finish(session, claim.key_id, claim.claim_id, status, content_type, body)
        except Exception:
            log.exception("could not record the response of idempotency key %s", claim.key_id)
            return
        if not recorded:
            log.warning("idempotency key %s was taken over before its request finished", claim.key_id)

    def abandon(self, claim: Claim) -> None:
        """The claimed request failed: release the key so it can be sent again. Never raises (the request's own
        error is what its caller must see); a key not released is taken over after IN_FLIGHT_SECONDS."""
        try:
            with transaction(self._db) as session:
                repo.release(session, claim.key_id, claim.claim_id)
        except Exception:
            log.exception("could not release idempotency key %s", claim.key_id)

    def purge_expired(self) -> int:
        """Delete every expired key now; returns how many."""
        with transaction(self._db) as session:
            return repo.purge_expired(session, self._clock())

    def _purge_now_and_then(self, now: int) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY_SECONDS
        try:
            purged = self.purge_expired()
        except Exception:
            log.exception("could not purge expired idempotency keys")
            return
        if purged:
            log.info("purged %d expired idempotency keys", purged)


def _in_use(key: str) -> IdempotencyKeyInUse:
    return IdempotencyKeyInUse(
        f"a request with Idempotency-Key {key!r} is still in progress; retry once it has been answered."
    )
